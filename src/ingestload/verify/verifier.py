"""The verifier's core: what was seen on the run's topics, message by message.

:meth:`Verifier.process` takes batches of consumed messages and records, per partition and
producer, the seqs seen (pyroaring bitmaps), duplicates within a partition, checksum
mismatches, seqs that went backwards (reordering), foreign messages, and the end-to-end
latency (envelope ``sent_at`` → consumed) in 1 ms buckets per topic. Duplicates *across*
partitions, the seen sets and the anomalies are summarised by :meth:`Verifier.summary`.

Everything is kept per partition so that a partition whose log was reset or truncated
(a broker that lost data, an offset reset after an error) can be forgotten and read again:
the verdict must describe what is in Kafka at the end, not what streamed past earlier.

The hot loop is written for throughput (hundreds of thousands of messages per second in
one process): the envelope is read from the header with one ``unpack_from``, the value's
CRC-32 is checked, and state lookups are cached per partition. Messages without the
header go to a slow path that looks for the envelope inside a JSON body (HTTP path).

Example::

    verifier = Verifier("5f3a9c0b12d4e6f7")
    for batch in read_to_end(config, topics, start):
        verifier.process(batch)
    summary = verifier.summary()
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from pyroaring import BitMap

from ingestload.errors import EnvelopeError
from ingestload.messages.envelope import body_checksum, decode_text, header_of, is_of_run

_BODY = struct.Struct(">QQqI")  # producer, seq, sent_at_us, crc — at offset 9 of the header value
#: Seqs beyond what a 32-bit bitmap holds are not expected: 4.3 billion messages per producer and run.
MAX_SEQ = 2**32 - 1


class MessageId(NamedTuple):
    """Where to look up one message."""

    producer_id: int
    """Producer id from the envelope."""
    seq: int
    """The producer's sequence number."""
    topic: str | None
    """Topic, when known."""
    partition: int | None
    """Partition, when known."""
    offset: int | None
    """Offset, when known."""

    def describe(self) -> str:
        where = f" {self.topic}" if self.topic else ""
        if self.partition is not None:
            where += f"[{self.partition}]"
        if self.offset is not None:
            where += f"@{self.offset}"
        return f"{self.producer_id:016x}#{self.seq}{where}"


class _ProducerInPartition:
    __slots__ = ("last", "seen")

    def __init__(self) -> None:
        self.seen = BitMap()
        self.last = -1


@dataclass
class PartitionState:
    """What one partition has shown so far."""

    topic: str
    partition: int
    producers: dict[int, _ProducerInPartition] = field(default_factory=dict)
    records: int = 0
    """Messages of this run read from the partition (duplicates and corrupted ones included)."""
    duplicates: int = 0
    corrupted: int = 0
    reordered: int = 0
    foreign: int = 0
    last_offset: int = -1
    log_reset: bool = False
    """Offsets went backwards: what was read before may no longer be in the log."""
    duplicate_samples: list[MessageId] = field(default_factory=list)
    corrupted_samples: list[MessageId] = field(default_factory=list)


@dataclass
class SeenSummary:
    """Everything the verdict needs from the verifier."""

    seen: dict[int, BitMap]
    """Distinct seqs seen per producer."""
    records: int
    duplicated: int
    """Extra copies: records minus distinct messages, across all partitions."""
    corrupted: int
    reordered: int
    foreign: int
    duplicate_samples: list[MessageId]
    corrupted_samples: list[MessageId]
    topics_of: dict[int, set[str]]
    """Topics each producer was seen on."""
    seen_by_topic: dict[str, int]
    """Distinct messages of the run per topic (a copy on another partition counts again)."""


class Verifier:
    """Accumulates what the run's topics contain; not thread-safe."""

    def __init__(self, run_id: str, *, envelope_field: str = "_ingestload", sample_limit: int = 20) -> None:
        self.run_id = run_id
        self._run = bytes.fromhex(run_id)
        self.envelope_field = envelope_field
        self._field_bytes = f'"{envelope_field}"'.encode()
        self.sample_limit = sample_limit
        self.partitions: dict[tuple[str, int], PartitionState] = {}
        self.latency: dict[str, dict[int, int]] = {}
        """Per topic: e2e latency in whole ms → count, since the last :meth:`take_latency`."""
        self.seen_records = 0
        """Records of this run ever processed (not reduced by :meth:`forget`); for rates."""

    def _partition(self, topic: str, partition: int) -> PartitionState:
        key = (topic, partition)
        state = self.partitions.get(key)
        if state is None:
            state = self.partitions[key] = PartitionState(topic, partition)
        return state

    def process(
        self, messages: Iterable[Any], *, record_latency: bool = True, now_us: int | None = None
    ) -> None:
        """Record a batch of consumed ``confluent_kafka.Message`` objects (errors must be removed)."""
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        run = self._run
        unpack = _BODY.unpack_from
        crc32 = zlib.crc32
        from_body = self._from_body
        current: PartitionState | None = None
        current_topic = ""
        current_partition = -1
        producers: dict[int, _ProducerInPartition] = {}
        latency: dict[int, int] = {}
        records = 0
        for message in messages:
            topic = message.topic()
            partition = message.partition()
            if current is None or partition != current_partition or topic != current_topic:
                if current is not None:
                    current.records += records
                    self.seen_records += records
                    records = 0
                current = self._partition(topic, partition)
                current_topic, current_partition = topic, partition
                producers = current.producers
                latency = self.latency.setdefault(topic, {})
            offset = message.offset()
            if offset <= current.last_offset:
                current.log_reset = True  # the log went back: it was truncated or recreated
            current.last_offset = offset
            # The envelope: a Kafka header (Kafka path), else a member of the JSON value (HTTP path).
            header = header_of(message.headers())
            if header is not None:
                if not is_of_run(header, run):
                    current.foreign += 1
                    continue
                producer, seq, sent_at_us, crc = unpack(header, 9)
                intact = crc32(message.value() or b"") == crc
            else:
                found = from_body(message.value())
                if found is None:
                    current.foreign += 1
                    continue
                producer, seq, sent_at_us, intact = found
            if seq > MAX_SEQ:
                current.foreign += 1
                continue
            records += 1
            state = producers.get(producer)
            if state is None:
                state = producers[producer] = _ProducerInPartition()
            try:
                state.seen.add_checked(seq)
            except KeyError:
                self._duplicate(current, producer, seq, offset)
            if seq < state.last:
                current.reordered += 1
            state.last = seq
            if not intact:
                self._corrupted(current, producer, seq, offset)
            if record_latency:
                ms = (now_us - sent_at_us) // 1000
                latency[ms] = latency.get(ms, 0) + 1
        if current is not None:
            current.records += records
            self.seen_records += records

    def _from_body(self, value: bytes | None) -> tuple[int, int, int, bool] | None:
        """The HTTP path: (producer, seq, sent_at_us, intact) of an envelope inside a JSON object
        of this run, or ``None`` when the value is not one of ours."""
        if not value or value[:1] != b"{" or self._field_bytes not in value:
            return None
        try:
            body = orjson.loads(value)
            envelope = decode_text(body.pop(self.envelope_field))
        except (orjson.JSONDecodeError, EnvelopeError, AttributeError, KeyError):
            return None
        if envelope.run_id != self.run_id:
            return None
        intact = body_checksum(body) == envelope.checksum
        return envelope.producer_id, envelope.seq, envelope.sent_at_us, intact

    def _duplicate(self, state: PartitionState, producer: int, seq: int, offset: int) -> None:
        state.duplicates += 1
        if len(state.duplicate_samples) < self.sample_limit:
            state.duplicate_samples.append(MessageId(producer, seq, state.topic, state.partition, offset))

    def _corrupted(self, state: PartitionState, producer: int, seq: int, offset: int) -> None:
        state.corrupted += 1
        if len(state.corrupted_samples) < self.sample_limit:
            state.corrupted_samples.append(MessageId(producer, seq, state.topic, state.partition, offset))

    def forget(self, topic: str, partition: int) -> None:
        """Drop everything learnt from one partition (before reading it again)."""
        self.partitions.pop((topic, partition), None)

    def take_latency(self) -> dict[str, dict[int, int]]:
        """Latency buckets recorded since the last call, per topic."""
        taken, self.latency = self.latency, {}
        return {topic: buckets for topic, buckets in taken.items() if buckets}

    def summary(self) -> SeenSummary:
        """Seen sets per producer and the anomalies, across partitions."""
        per_producer: dict[int, list[BitMap]] = {}
        topics_of: dict[int, set[str]] = {}
        seen_by_topic: dict[str, int] = {}
        records = duplicates_within = corrupted = reordered = foreign = 0
        duplicate_samples: list[MessageId] = []
        corrupted_samples: list[MessageId] = []
        for state in self.partitions.values():
            records += state.records
            duplicates_within += state.duplicates
            corrupted += state.corrupted
            reordered += state.reordered
            foreign += state.foreign
            duplicate_samples.extend(state.duplicate_samples)
            corrupted_samples.extend(state.corrupted_samples)
            seen_by_topic.setdefault(state.topic, 0)
            for producer, entry in state.producers.items():
                per_producer.setdefault(producer, []).append(entry.seen)
                topics_of.setdefault(producer, set()).add(state.topic)
                seen_by_topic[state.topic] += len(entry.seen)
        seen: dict[int, BitMap] = {}
        distinct = 0
        for producer, bitmaps in per_producer.items():
            union = BitMap.union(*bitmaps) if len(bitmaps) > 1 else BitMap(bitmaps[0])
            seen[producer] = union
            distinct += len(union)
            if len(bitmaps) > 1 and len(duplicate_samples) < self.sample_limit:
                total = sum(len(b) for b in bitmaps)
                if total > len(union):
                    duplicate_samples.extend(self._cross_partition_samples(producer))
        return SeenSummary(
            seen=seen,
            records=records,
            duplicated=records - distinct,
            corrupted=corrupted,
            reordered=reordered,
            foreign=foreign,
            duplicate_samples=duplicate_samples[: self.sample_limit],
            corrupted_samples=corrupted_samples[: self.sample_limit],
            topics_of=topics_of,
            seen_by_topic=seen_by_topic,
        )

    def _cross_partition_samples(self, producer: int) -> list[MessageId]:
        holders = [
            (s, s.producers[producer].seen) for s in self.partitions.values() if producer in s.producers
        ]
        samples: list[MessageId] = []
        for i, (_, bitmap) in enumerate(holders):
            for other_state, other in holders[i + 1 :]:
                for seq in (bitmap & other)[: self.sample_limit]:
                    samples.append(MessageId(producer, seq, other_state.topic, other_state.partition, None))
                    if len(samples) >= self.sample_limit:
                        return samples
        return samples
