"""Verification sharded by partition: owners of partitions, and readers' states merged into one."""

import random

import orjson

from ingestload.verify.shards import export_partitions, import_partitions, shard_of
from ingestload.verify.verifier import Verifier
from tests.unit.fakes import RUN, kafka_msg


def test_every_partition_has_one_owner_and_a_topics_partitions_are_spread_evenly():
    """For 1 to 8 readers, each of a topic's partitions (1 to 64 of them) has exactly one owner among
    them, and the readers' shares differ by at most one partition."""
    for readers in range(1, 9):
        for partitions in (1, 3, 12, 64):
            for topic in ("gov-alarm", "gov-fault", "x"):
                owners = [shard_of(topic, p, readers) for p in range(partitions)]
                assert all(0 <= o < readers for o in owners)
                shares = [owners.count(r) for r in range(readers)]
                assert max(shares) - min(shares) <= 1, (readers, partitions, topic, shares)


def test_an_owner_does_not_change_when_partitions_are_added():
    """A partition keeps its owner whatever other partitions exist (one that appears later needs no
    new assignment of the others)."""
    before = {p: shard_of("t", p, 3) for p in range(6)}
    assert {p: shard_of("t", p, 3) for p in range(12) if p < 6} == before


def stream(seed):
    """Records over 2 topics × 4 partitions, with duplicates inside a partition and across two
    partitions of a topic, a corrupted record and a misrouted one; returns (batches, injected)."""
    rng = random.Random(seed)
    offsets = {}
    records = []
    for seq in range(2000):
        topic = rng.choice(["a", "b"])
        records.append((topic, rng.randrange(4), seq, {}))
    injected = {"duplicated": 0, "corrupted": 0, "misrouted": 0}
    for _ in range(7):  # copies on another partition of the same topic
        topic, _, seq, _ = rng.choice(records)
        records.append((topic, rng.randrange(4), seq, {}))
        injected["duplicated"] += 1
    topic, partition, seq, _ = records[100]
    records[100] = (topic, partition, seq, {"crc": 1})
    injected["corrupted"] += 1
    topic, partition, seq, _ = records[200]
    records[200] = (topic, partition, seq, {"meant_for": "b" if topic == "a" else "a"})
    injected["misrouted"] += 1
    messages = []
    for topic, partition, seq, extra in records:
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        messages.append(kafka_msg(1, seq, topic=topic, partition=partition, offset=offset, **extra))
    messages.sort(key=lambda m: (m.topic(), m.partition(), m.offset()))
    return [messages[i : i + 500] for i in range(0, len(messages), 500)], injected


def test_states_of_two_readers_merged_give_what_one_reader_of_everything_gives():
    """Two readers, each filing only the partitions it owns, their states merged through JSON: the same
    summary as one verifier that read every partition, and exactly the anomalies injected, duplicates
    across partitions owned by different readers included."""
    for seed in range(20):
        batches, injected = stream(seed)
        whole = Verifier(RUN)
        shards = [Verifier(RUN), Verifier(RUN)]
        for batch in batches:
            whole.process(batch, now_us=0)
            for number, shard in enumerate(shards):
                shard.process([m for m in batch if shard_of(m.topic(), m.partition(), 2) == number], now_us=0)
        merged = Verifier(RUN)
        for shard in shards:
            import_partitions(merged, orjson.loads(orjson.dumps(export_partitions(shard))))
        a, b = whole.summary(), merged.summary()
        assert {p: sorted(s) for p, s in a.seen.items()} == {p: sorted(s) for p, s in b.seen.items()}
        assert (a.records, a.duplicated, a.corrupted, a.misrouted, a.reordered, a.foreign) == (
            b.records,
            b.duplicated,
            b.corrupted,
            b.misrouted,
            b.reordered,
            b.foreign,
        )
        assert (a.seen_by_topic, a.anomalies_by_topic, a.duplicated_by_producer) == (
            b.seen_by_topic,
            b.anomalies_by_topic,
            b.duplicated_by_producer,
        )
        # Which copy's partition a cross-partition sample names follows the order partitions were met.
        assert {(i.producer_id, i.seq) for i in a.duplicate_samples} == {
            (i.producer_id, i.seq) for i in b.duplicate_samples
        }
        assert sorted(a.corrupted_samples) == sorted(b.corrupted_samples)
        assert sorted(a.misrouted_samples) == sorted(b.misrouted_samples)
        assert (b.duplicated, b.corrupted, b.misrouted) == (
            injected["duplicated"],
            injected["corrupted"],
            injected["misrouted"],
        ), seed
