"""The verifier core on hand-made messages: seen sets, anomalies, the HTTP-path envelope."""

import json

import orjson

from ingestload.verify.verifier import Verifier
from tests.unit.fakes import RUN, Msg, http_msg, kafka_msg


def test_seen_sets_per_producer_across_partitions():
    """Seqs are collected per producer whatever partition they came from."""
    v = Verifier(RUN)
    v.process([kafka_msg(1, s, partition=s % 3, offset=s) for s in range(100)] + [kafka_msg(2, 0)])
    summary = v.summary()
    assert {p: len(b) for p, b in summary.seen.items()} == {1: 100, 2: 1}
    assert summary.duplicated == summary.corrupted == summary.foreign == 0
    assert summary.records == 101


def test_duplicates_within_and_across_partitions_are_counted_once_each():
    """An extra copy counts as one duplicate, on the same partition or another one."""
    v = Verifier(RUN)
    v.process([kafka_msg(1, 0, offset=0), kafka_msg(1, 1, offset=1), kafka_msg(1, 1, offset=2)])
    v.process([kafka_msg(1, 0, partition=1, offset=0), kafka_msg(1, 0, partition=2, offset=0)])
    summary = v.summary()
    assert summary.duplicated == 3
    assert len(summary.seen[1]) == 2
    assert {(d.seq, d.partition) for d in summary.duplicate_samples} >= {(1, 0)}


def test_checksum_mismatch_is_corruption():
    """A value that does not match the envelope's CRC is counted corrupted (and still seen)."""
    v = Verifier(RUN)
    v.process([kafka_msg(1, 0), kafka_msg(1, 1, crc=12345)])
    summary = v.summary()
    assert summary.corrupted == 1
    assert summary.corrupted_samples[0].seq == 1
    assert len(summary.seen[1]) == 2


def test_foreign_messages_are_ignored_and_counted():
    """Messages without an envelope, or of another run, do not count as seen."""
    v = Verifier(RUN)
    v.process([Msg("t", 0, 0, b"hello"), kafka_msg(1, 0, run="ffffffffffffffff"), kafka_msg(1, 1)])
    summary = v.summary()
    assert summary.foreign == 2
    assert list(summary.seen[1]) == [1]


def test_reordering_within_a_partition():
    """A seq lower than the previous one from the same producer and partition is a reordering."""
    v = Verifier(RUN)
    v.process([kafka_msg(1, s, offset=i) for i, s in enumerate([0, 1, 3, 2, 4])])
    v.process([kafka_msg(1, 5, partition=1), kafka_msg(1, 9, partition=2)])
    assert v.summary().reordered == 1


def test_http_envelope_in_json_body_with_canonical_checksum():
    """The HTTP-path envelope is read from the body; re-serialised JSON passes, a changed value is corrupt."""
    v = Verifier(RUN)
    good = http_msg(7, 0, {"b": 2, "a": {"x": 1}})
    # Re-serialised as another stack would: keys in another order, spaces, with the standard library
    # (not the orjson the verifier parses with).
    document = json.loads(http_msg(7, 1, {"a": {"x": 1}, "b": 2}).value())
    reordered = Msg("t", 0, 1, json.dumps(dict(reversed(list(document.items()))), indent=2).encode())
    tampered_body = orjson.loads(http_msg(7, 2, {"a": 1}).value())
    tampered_body["a"] = 2
    tampered = Msg("t", 0, 2, orjson.dumps(tampered_body))
    v.process([good, reordered, tampered, Msg("t", 0, 3, b'{"_ingestload": "nope"}')])
    summary = v.summary()
    assert list(summary.seen[7]) == [0, 1, 2]
    assert summary.corrupted == 1
    assert summary.foreign == 1


def test_custom_envelope_field():
    """The JSON member name is configurable."""
    v = Verifier(RUN, envelope_field="meta_env")
    v.process([http_msg(3, 0, {"a": 1}, field_name="meta_env"), http_msg(3, 1, {"a": 1})])
    summary = v.summary()
    assert list(summary.seen[3]) == [0]
    assert summary.foreign == 1


def test_latency_buckets_per_topic():
    """End-to-end latency is bucketed per topic in whole milliseconds from the envelope's sent_at."""
    v = Verifier(RUN)
    now_us = 10_000_000
    v.process(
        [
            kafka_msg(1, 0, topic="a", sent_at_us=now_us - 5_000),
            kafka_msg(1, 1, topic="b", sent_at_us=now_us - 250_400),
        ],
        now_us=now_us,
    )
    assert v.take_latency() == {"a": {5: 1}, "b": {250: 1}}
    assert v.take_latency() == {}


def test_forget_drops_a_partition_and_offsets_going_back_flag_a_reset():
    """forget() removes a partition's contribution; an offset going backwards marks the log as reset."""
    v = Verifier(RUN)
    v.process([kafka_msg(1, 0, offset=10), kafka_msg(1, 1, partition=1, offset=3)])
    v.process([kafka_msg(1, 2, offset=0)])
    assert v.partitions[("t", 0)].log_reset
    assert not v.partitions[("t", 1)].log_reset
    v.forget("t", 0)
    assert list(v.summary().seen[1]) == [1]


def test_a_copy_on_another_topic_is_misrouted_not_lost_nor_duplicated():
    """A record whose envelope names another topic is misrouted (each such copy counts once); the
    message is found (not lost) and a later copy on its own topic is not a duplicate."""
    v = Verifier(RUN)
    v.process(
        [
            kafka_msg(1, 0, topic="alarms", offset=0),
            kafka_msg(1, 1, topic="faults", meant_for="alarms", offset=0),
            kafka_msg(1, 2, topic="faults", meant_for="alarms", offset=1),
            kafka_msg(1, 2, topic="alarms", offset=1),
        ]
    )
    summary = v.summary()
    assert (summary.misrouted, summary.duplicated, summary.records) == (2, 0, 2)
    assert list(summary.seen[1]) == [0, 1, 2]
    assert {(m.seq, m.topic) for m in summary.misrouted_samples} == {(1, "faults"), (2, "faults")}
    assert summary.anomalies_by_topic["faults"]["misrouted"] == 2
    assert summary.anomalies_by_topic["alarms"] == {"duplicated": 0, "corrupted": 0, "misrouted": 0}


def test_misrouted_on_the_http_path_too():
    """The JSON-body envelope carries the same topic tag: a body on the wrong topic is misrouted."""
    v = Verifier(RUN)
    v.process([http_msg(3, 0, {"a": 1}, topic="events", meant_for="alarms")])
    summary = v.summary()
    assert (summary.misrouted, summary.duplicated, len(summary.seen[3])) == (1, 0, 1)


def test_seqs_past_2_32_are_counted_on_both_paths():
    """Seqs around and past 2**32 are seen, and their duplicates counted, on the header and body paths."""
    edge = 2**32
    v = Verifier(RUN)
    v.process(
        [kafka_msg(1, s, offset=i) for i, s in enumerate([edge - 1, edge, edge + 1, edge])]
        + [http_msg(2, s, {"a": s}, offset=10 + i) for i, s in enumerate([edge, 2**63, 2**63])]
    )
    summary = v.summary()
    assert list(summary.seen[1]) == [edge - 1, edge, edge + 1]
    assert list(summary.seen[2]) == [edge, 2**63]
    assert (summary.duplicated, summary.foreign) == (2, 0)


def test_anomalies_per_topic_add_up_to_the_totals():
    """Per-topic duplicated/corrupted/misrouted counts sum to the totals, cross-partition copies included."""
    v = Verifier(RUN)
    v.process(
        [
            kafka_msg(1, 0, topic="a", partition=0, offset=0),
            kafka_msg(1, 0, topic="a", partition=1, offset=0),
            kafka_msg(1, 1, topic="b", offset=0, crc=1),
            kafka_msg(1, 2, topic="b", meant_for="a", offset=1),
        ]
    )
    summary = v.summary()
    per_topic = summary.anomalies_by_topic
    for kind in ("duplicated", "corrupted", "misrouted"):
        assert sum(t[kind] for t in per_topic.values()) == getattr(summary, kind)
    assert per_topic["a"]["duplicated"] == 1
    assert per_topic["b"] == {"duplicated": 0, "corrupted": 1, "misrouted": 1}


def test_each_partition_keeps_its_last_record():
    """The last record read from each partition is kept (to check later that the log still holds it)."""
    v = Verifier(RUN)
    first, last = kafka_msg(1, 0, offset=5), Msg("t", 0, 6, b"foreign")
    v.process([first, last, kafka_msg(1, 1, partition=1, offset=0)])
    assert v.partitions[("t", 0)].last_message is last
    assert v.partitions[("t", 1)].last_message.offset() == 0
