"""An independent reader for the tests: what of a run is in Kafka, found by code that shares nothing
with ingestload's verifier or readers — its own consumer loop, its own envelope parsing and building,
its own CRC-32 and its own canonical JSON, written from the envelope's description in docs/paths.md
(version 2, run id, producer id, seq, sent-at µs, CRC-32 of the value, CRC-32 of the meant-for topic;
on the HTTP path the same 41 bytes as 82 hex digits in a JSON member, the CRC over the message without
that member with sorted keys).

Unit tests build their messages with :func:`envelope` and :func:`crc32` here (tests/unit/fakes.py),
so that the verifier is checked against an envelope it did not write.

Tests that judge the verdict know the truth from what they injected; where they need what the
broker holds (a broker that lost its log, a count to compare with `acked`), they read it here.

    copies = read_copies(bootstrap, topics, run_id)
    by_message = group(copies)              # (producer, seq) -> [Copy, …]
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

# The envelope, as documented in docs/paths.md: version 2, run id, producer id, seq, sent-at (µs),
# CRC-32 of the value, CRC-32 of the name of the topic the message was meant for.
_ENVELOPE = struct.Struct(">B8sQQqII")


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32(data: bytes, start: int = 0) -> int:
    """CRC-32 (IEEE 802.3, reflected, as in zip and Ethernet), computed here byte by byte; ``start``
    continues from an earlier CRC (as ``zlib.crc32(data, start)`` is documented to)."""
    crc = start ^ 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def canonical(document) -> bytes:
    """A JSON document in the form the HTTP path's CRC covers: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def topic_tag(topic: str) -> int:
    return crc32(topic.encode())


def envelope(run_id: str, producer: int, seq: int, sent_at_us: int, crc: int, meant_for: str) -> bytes:
    """The 41-byte envelope of one message, built from the documented layout."""
    return _ENVELOPE.pack(2, bytes.fromhex(run_id), producer, seq, sent_at_us, crc, topic_tag(meant_for))


@dataclass(frozen=True)
class Copy:
    """One record of the run found on a topic."""

    topic: str
    partition: int
    offset: int
    producer: int
    seq: int
    meant_for: int
    """CRC-32 of the topic the sender meant it for."""
    intact: bool
    """The value matches the checksum in its envelope."""
    timestamp_ms: int = -1
    """The record's timestamp (the producer's clock when it was handed to its client)."""

    @property
    def misrouted(self) -> bool:
        return topic_tag(self.topic) != self.meant_for


def _envelope_of(message, run: bytes, field: str):
    for key, value in message.headers() or []:
        if key == "ingestload":
            if len(value) != _ENVELOPE.size or value[1:9] != run:
                return None
            _, _, producer, seq, _, crc, meant = _ENVELOPE.unpack(value)
            return producer, seq, meant, crc32(message.value() or b"") == crc
    try:
        body = json.loads(message.value())
        raw = bytes.fromhex(body.pop(field))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if len(raw) != _ENVELOPE.size or raw[1:9] != run:
        return None
    _, _, producer, seq, _, crc, meant = _ENVELOPE.unpack(raw)
    return producer, seq, meant, crc32(canonical(body)) == crc


def read_copies(
    bootstrap: str,
    topics: list[str],
    run_id: str,
    *,
    field: str = "_ingestload",
    stall_after: float = 60.0,
) -> list[Copy]:
    """Every record of ``run_id`` on every partition of ``topics``, read from the beginning to the end
    of each partition (call it once nothing writes any more). Raises if the reading stalls."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # what anyone reading committed data gets
        }
    )
    run = bytes.fromhex(run_id)
    copies: list[Copy] = []
    try:
        metadata = consumer.list_topics(timeout=20)
        partitions = [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]
        if not partitions:
            return copies
        consumer.assign(partitions)
        open_ = {(tp.topic, tp.partition) for tp in partitions}
        last = time.monotonic()
        while open_:
            if time.monotonic() - last > stall_after:
                raise AssertionError(f"oracle: reading stalled before the end of {sorted(open_)}")
            for message in consumer.consume(1000, 0.5):
                last = time.monotonic()
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_.discard((message.topic(), message.partition()))
                        continue
                    raise AssertionError(f"oracle: {error}")
                found = _envelope_of(message, run, field)
                if found is not None:
                    producer, seq, meant, intact = found
                    copies.append(
                        Copy(
                            message.topic(),
                            message.partition(),
                            message.offset(),
                            producer,
                            seq,
                            meant,
                            intact,
                            message.timestamp()[1],
                        )
                    )
    finally:
        consumer.close()
    return copies


def partition_ends(bootstrap: str, topics: list[str], *, committed: bool, timeout: float = 30.0) -> dict:
    """Each partition's end as ``topic[p]`` → offset: for a committed reader (its last stable offset)
    or, with ``committed=False``, the high watermark — from the end-of-partition event of a consumer
    of the oracle's own that reads from the end (not from a ListOffsets answer)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    ends: dict[str, int] = {}
    try:
        metadata = consumer.list_topics(timeout=20)
        wanted = [
            TopicPartition(topic, p, OFFSET_END)
            for topic in topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]
        consumer.assign(wanted)
        deadline = time.monotonic() + timeout
        while len(ends) < len(wanted):
            if time.monotonic() > deadline:
                raise AssertionError(f"oracle: no end for some of {topics} within {timeout:g}s")
            for message in consumer.consume(1000, 0.2):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends[f"{message.topic()}[{message.partition()}]"] = message.offset()
    finally:
        consumer.close()
    return ends


def group(copies: list[Copy]) -> dict[tuple[int, int], list[Copy]]:
    """The copies of each message, by (producer, seq)."""
    grouped: dict[tuple[int, int], list[Copy]] = defaultdict(list)
    for copy in copies:
        grouped[(copy.producer, copy.seq)].append(copy)
    return dict(grouped)


def tally(copies: list[Copy], sent: dict[int, tuple[int, int]] | None = None) -> dict[str, int]:
    """The anomalies as docs/verdict.md defines them, counted from the records themselves: every copy on a
    topic other than the one it was meant for is misrouted; every copy on its own topic beyond the first
    is duplicated; every copy whose value fails its checksum is corrupted. With ``sent`` (producer →
    (first seq, how many it sent), what the test knows), a distinct message whose seq its producer never
    sent is phantom, and not seen."""
    misrouted = sum(1 for c in copies if c.misrouted)
    right = [c for c in copies if not c.misrouted]
    distinct_right = {(c.producer, c.seq) for c in right}
    distinct = {(c.producer, c.seq) for c in copies}
    phantom = set()
    if sent is not None:
        for producer, seq in distinct:
            first, count = sent.get(producer, (0, 0))
            if not first <= seq < first + count:
                phantom.add((producer, seq))
    return {
        "records": len(copies),
        "seen": len(distinct - phantom),
        "phantom": len(phantom),
        "misrouted": misrouted,
        "duplicated": len(right) - len(distinct_right),
        "corrupted": sum(1 for c in copies if not c.intact),
    }


def wait_for_records(bootstrap: str, topics: list[str], at_least: int, timeout: float = 60.0) -> int:
    """Block (cooperatively under gevent) until ``topics`` hold at least ``at_least`` records in all;
    for timing a fault by progress, not by the clock. Raises when it does not happen in ``timeout``.

    Each partition's end is taken from the end-of-partition events of a consumer reading at the
    end, not from a ListOffsets answer: the embedded broker answers that with the start of the last
    record batch, which stays behind for good when a run's last batches are large (a backlog sent
    after a reconnect)."""
    import gevent

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    ends: dict[tuple[str, int], int] = {}
    assigned: set[tuple[str, int]] = set()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            metadata = consumer.list_topics(timeout=10)
            present = {
                (topic, p)
                for topic in topics
                if topic in metadata.topics
                for p in metadata.topics[topic].partitions
            }
            if present - assigned:
                consumer.incremental_assign([TopicPartition(t, p, OFFSET_END) for t, p in present - assigned])
                assigned |= present
            for message in consumer.consume(10_000, 0.1):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends[(message.topic(), message.partition())] = message.offset()
            if sum(ends.values()) >= at_least:
                return sum(ends.values())
            gevent.sleep(0.05)
        raise AssertionError(
            f"oracle: {sum(ends.values())} (fewer than {at_least}) records on {topics} after {timeout:g}s"
        )
    finally:
        consumer.close()
