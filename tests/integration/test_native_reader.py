"""The verifier's native reader (ingestload.verify._scan) on records consumed from a real broker.

What each record is — clean, corrupted, without our header first, a tombstone — is known from what the
test produced, not from the code under test; the verifier's counts with the native reader must match
that, and must be what it counts through the ``Message`` methods alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Message, Producer

from ingestload.kafka.admin import ensure_topics, read_partitions
from ingestload.messages.envelope import HEADER, EnvelopeWriter, checksum, topic_tag
from ingestload.verify import scan
from ingestload.verify.verifier import Verifier

pytestmark = pytest.mark.integration

RUN = "5ca1ab1e5ca1ab1e"
VALUE = b'{"controller": 7, "reading": 21.5}'


@pytest.fixture
def native() -> Any:
    found = scan.scanner()
    if found is None:
        pytest.fail(f"the native reader is not available here: {scan.unavailable()}")
    return found


SENT_AT = 1_700_000_000_000_000


def produce(bootstrap: str, prefix: str) -> tuple[str, str, dict[tuple[str, int], list[bytes]]]:
    """Three topics; partition by partition, what was written (the envelope header of each record).
    Every envelope says it was sent at :data:`SENT_AT`."""
    good, other, third = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"
    ensure_topics({"bootstrap.servers": bootstrap}, [good, other, third], partitions=3)
    writer = EnvelopeWriter(RUN, 9)
    producer = Producer({"bootstrap.servers": bootstrap})
    sent: dict[tuple[str, int], list[bytes]] = {}
    now = SENT_AT
    seq = 0

    def send(topic: str, partition: int, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        producer.produce(topic, value, partition=partition, headers=headers)
        sent.setdefault((topic, partition), []).append(headers[-1][1])

    for partition in range(3):
        for i in range(5):
            envelope = writer.pack(seq, now, checksum(VALUE), topic_tag(good))
            seq += 1
            if partition == 1 and i == 2:  # corrupted on the way: the value no longer matches
                send(good, partition, VALUE.replace(b"21.5", b"21.6"), [(HEADER, envelope)])
            elif partition == 2 and i == 3:  # another header first
                send(good, partition, VALUE, [("trace", b"x"), (HEADER, envelope)])
            else:
                send(good, partition, VALUE, [(HEADER, envelope)])
    envelope = writer.pack(seq, now, checksum(VALUE), topic_tag(other))
    send(other, 0, None, [(HEADER, envelope)])  # a tombstone
    second = EnvelopeWriter(RUN, 10)
    for i in range(4):  # two producers, taking turns: clean, but not one producer's rising seqs
        by = writer if i % 2 else second
        send(other, 1, VALUE, [(HEADER, by.pack(100 + i, now, checksum(VALUE), topic_tag(other)))])
    for seq in (200, 202, 201):  # one producer, out of order
        send(other, 2, VALUE, [(HEADER, writer.pack(seq, now, checksum(VALUE), topic_tag(other)))])
    stranger = EnvelopeWriter("0123456789abcdef", 9)  # another run's
    send(third, 0, VALUE, [(HEADER, stranger.pack(300, now, checksum(VALUE), topic_tag(third)))])
    send(third, 1, VALUE, [(HEADER, writer.pack(301, now, checksum(VALUE), topic_tag(good)))])  # misrouted
    producer.flush(10)
    return good, other, sent


def consumed(bootstrap: str, sent: dict[tuple[str, int], list[bytes]]) -> list[Any]:
    """Every record written, partition after partition in the order of ``sent``."""
    found: dict[tuple[str, int], list[Any]] = {}
    for batch in read_partitions({"bootstrap.servers": bootstrap}, dict.fromkeys(sent, 0)):
        for message in batch:
            found.setdefault((message.topic(), message.partition()), []).append(message)
    return [message for key in sent for message in found[key]]


def scanned(native: Any, batch: list[Any], now_us: int = -1) -> Any:
    return native(batch, Message, bytes.fromhex(RUN), now_us)


def test_clean_runs_are_read_and_every_other_run_is_left_to_the_methods(
    kafka: str, prefix: str, native: Any
) -> None:
    good, other, sent = produce(kafka, prefix)
    third = f"{prefix}-c"
    batch = consumed(kafka, sent)
    found = scanned(native, batch, now_us=SENT_AT + 5_400)
    where = [
        (good, 0, 0, 5),
        (good, 1, 5, 10),
        (good, 2, 10, 15),
        (other, 0, 15, 16),
        (other, 1, 16, 20),
        (other, 2, 20, 23),
        (third, 0, 23, 24),
        (third, 1, 24, 25),
    ]
    assert [run[:4] for run in found.runs] == where
    # clean (this run's envelope first, its topic's tag, the value intact); ordered (one producer,
    # rising seqs); the ages of a clean run's records: all sent 5.4 ms before
    assert [run[4:] for run in found.runs] == [
        (True, True, {5: 5}),
        (False, False, None),  # a corrupted value
        (False, False, None),  # another header first
        (False, False, None),  # a tombstone
        (True, False, {5: 4}),  # two producers
        (True, False, {5: 3}),  # out of order
        (False, False, None),  # another run's
        (False, False, None),  # misrouted
    ]
    assert found.envelopes[: 5 * 41] == b"".join(sent[(good, 0)])
    assert list(found.seqs[:5]) == [0, 1, 2, 3, 4]
    assert list(found.producers[16:20]) == [10, 9, 10, 9]
    assert list(found.sent[20:23]) == [SENT_AT] * 3


def test_the_verdicts_counts_match_what_was_written(kafka: str, prefix: str, native: Any) -> None:
    good, _, sent = produce(kafka, prefix)
    verifier = Verifier(RUN)
    verifier.process(consumed(kafka, sent), now_us=SENT_AT + 2_000)
    summary = verifier.summary()
    assert summary.records == 23
    assert summary.corrupted == 2  # the changed value, and the tombstone's missing one
    assert summary.reordered == 1
    assert summary.misrouted == summary.foreign == 1
    assert summary.duplicated == 0
    assert {p: len(seen) for p, seen in summary.seen.items()} == {9: 22, 10: 2}
    assert summary.corrupted_samples[0].describe().startswith(f"{9:016x}#7 {good}[1]@2")
    ages = verifier.take_latency()  # every record of the run was sent 2 ms before; not another run's
    assert {topic: sum(buckets.values()) for topic, buckets in ages.items()} == {
        good: 15,
        f"{prefix}-b": 8,
        f"{prefix}-c": 1,
    }
    assert {ms for buckets in ages.values() for ms in buckets} == {2}


def test_records_read_twice_or_already_converted_are_filed_by_the_methods(
    kafka: str, prefix: str, native: Any
) -> None:
    good, _, sent = produce(kafka, prefix)
    batch = consumed(kafka, sent)[:5]
    again = [*batch, batch[-1]]  # an offset that does not rise: a log reset to look at
    assert scanned(native, again).runs == [(good, 0, 0, 6, False, False, None)]
    batch[0].headers()  # now a Python list: the native reader does not read those
    assert scanned(native, batch).runs == [(good, 0, 0, 5, False, False, None)]
    verifier = Verifier(RUN)
    verifier.process(batch)
    assert verifier.summary().records == 5
    assert verifier.summary().corrupted == 0


@pytest.mark.parametrize("age_us", [7_000, -1_500], ids=["sent before", "sent after (clock skew)"])
def test_without_the_native_reader_the_counts_are_the_same(
    kafka: str, prefix: str, native: Any, age_us: int
) -> None:
    _, _, sent = produce(kafka, prefix)
    with_native = Verifier(RUN)
    with_native.process(consumed(kafka, sent), now_us=SENT_AT + age_us)
    without = Verifier(RUN)
    with scan.methods_only():
        without.process(consumed(kafka, sent), now_us=SENT_AT + age_us)
    a, b = with_native.summary(), without.summary()
    assert a == b
    ages = with_native.take_latency()
    assert ages == without.take_latency()
    assert {ms for buckets in ages.values() for ms in buckets} == {age_us // 1000}


def test_another_message_type_is_never_read_natively(native: Any) -> None:
    class StandIn:
        pass

    assert native([StandIn()], StandIn, bytes.fromhex(RUN), -1) is None


def test_a_send_time_far_outside_any_clock_is_counted_as_python_counts_it(
    kafka: str, prefix: str, native: Any
) -> None:
    topic = f"{prefix}-far"
    ensure_topics({"bootstrap.servers": kafka}, [topic], partitions=1)
    writer = EnvelopeWriter(RUN, 11)
    producer = Producer({"bootstrap.servers": kafka})
    far = 2**62  # µs: a corrupted or hostile send time, not a clock
    envelope = writer.pack(0, far, checksum(VALUE), topic_tag(topic))
    producer.produce(topic, VALUE, partition=0, headers=[(HEADER, envelope)])
    producer.flush(10)
    batch = consumed(kafka, {(topic, 0): [envelope]})
    assert scanned(native, batch, now_us=SENT_AT).runs == [(topic, 0, 0, 1, True, True, None)]
    verifier = Verifier(RUN)
    verifier.process(batch, now_us=SENT_AT)
    assert verifier.take_latency() == {topic: {(SENT_AT - far) // 1000: 1}}
