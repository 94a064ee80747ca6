"""The verifier's core: what was seen on the run's topics, message by message.

:meth:`Verifier.process` takes batches of consumed messages and files each record of the run,
per partition and producer:

* on the topic it was meant for (its envelope's topic tag names the partition's topic): its seq
  goes into the partition's seen set (a 64-bit roaring bitmap) — a seq already there is a
  **duplicate**, a seq below the producer's previous one in the partition is *reordered*;
* on any other topic: it is **misrouted** (every such record counts once), and its seq is kept
  apart so that the message is not called lost;
* whatever the topic: a value that fails its envelope's checksum is **corrupted**; the
  end-to-end latency (envelope ``sent_at`` → consumed) goes into 1 ms buckets per topic.

Records without an envelope of this run are *foreign* (counted, ignored). Duplicates *across*
partitions of the same topic, the seen sets and the anomalies per topic come from
:meth:`Verifier.summary`.

Everything is kept per partition so that a partition whose log was reset or recreated (a
broker that lost data, an offset reset after an error) can be forgotten and read again: the
verdict must describe what is in Kafka at the end, not what streamed past earlier. Each
partition also keeps the first and the last record read, so that the log can be checked later to
still hold them (see :mod:`ingestload.verify.readback`).

A batch is filed one run of a partition at a time, two ways that give the same result:

* **in bulk**, when the whole run is what a healthy Kafka path
  gives — every record with our envelope as its first header, of this run, meant for this topic,
  intact, at rising offsets, each producer's seqs rising past everything it had here. Each check is
  one pass in C over the run (``map`` over the message type's own methods, ``struct.iter_unpack``
  over the joined headers, the CRC-32, ``tuple.count``), and the seqs go into the seen sets with
  one ``update``: no Python bytecode per message (:meth:`Verifier._file_clean_run`). Where the
  native reader is there (:mod:`ingestload.verify.scan`), it makes those checks itself in one pass
  over the batch and hands over the envelopes' numbers (:meth:`Verifier._file_scanned_run`);
* **message by message** (:meth:`Verifier._file_each`), for any run that fails one of those checks
  (nothing of it was filed in bulk): duplicates, reordering, corruption, misrouting, foreign
  records, log resets and the HTTP path's JSON bodies are found and sampled there, exactly as
  before.

Example::

    verifier = Verifier("5f3a9c0b12d4e6f7")
    for batch in read_to_end(config, topics, start):
        verifier.process(batch)
    summary = verifier.summary()
"""

from __future__ import annotations

import struct
import sys
import time
from array import array
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress, groupby, islice, repeat
from operator import eq, floordiv, itemgetter, lt, sub
from typing import Any, NamedTuple

from pyroaring import BitMap64

from ingestload.messages.envelope import HEADER, RUN_ID, SIZE, checksum, header_of, topic_tag
from ingestload.verify.body import BodyReader, BodySpec, Found
from ingestload.verify.scan import Scanned, distrust, scanner

#: producer, seq, sent_at_us, crc, topic tag — at offset 9 of the header value.
_BODY = struct.Struct(">QQqII")
#: The whole envelope header: version, run id, producer, seq, sent_at_us, crc, topic tag.
_FIRST = itemgetter(0)
#: Where the envelope's fields sit in its header value (see :mod:`ingestload.messages.envelope`).
_PRODUCER_AT, _SEQ_AT, _SENT_AT, _CRC_AT, _TAG_AT = 9, 17, 25, 33, 37
_SWAP = sys.byteorder == "little"


def _column(joined: bytes, at: int, width: int) -> bytes:
    """One field of every envelope in ``joined`` (headers of :data:`SIZE` bytes end to end), as
    ``width``-byte big-endian values end to end: ``width`` strided slices, copied in C.

    Example::

        >>> _column(bytes(range(82)), 9, 2).hex()  # bytes 9-10 of the first and of the second
        '090a3233'
    """
    n = len(joined) // SIZE
    if width == 1:
        return joined[at::SIZE]
    out = bytearray(width * n)
    for k in range(width):
        out[k::width] = joined[at + k :: SIZE]
    return bytes(out)


def _array(code: str, values: Iterable[int]) -> bytes:
    """``values`` as big-endian unsigned numbers (``array`` type ``code``) end to end."""
    packed = array(code, values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def _numbers(code: str, column: bytes) -> array[int]:
    """The big-endian numbers of a :func:`_column` (``array`` type ``Q``: unsigned, ``q``: signed)."""
    numbers = array(code, column)
    if _SWAP:
        numbers.byteswap()
    return numbers


def _latencies(now_us: int, sent: array[int]) -> Iterable[tuple[int, int]]:
    """``(ms, count)``: how many of the messages sent at ``sent`` (µs) are ``ms`` old at ``now_us``.

    A batch's send times span few milliseconds: sorted, each millisecond's messages are found by
    one bisection (a Python step per distinct millisecond, not per message). When they span many,
    a count per message.

    Example::

        >>> sorted(_latencies(10_000, array("q", [9_000, 8_500, 9_999, 7_000, 8_001])))
        [(0, 1), (1, 3), (3, 1)]
    """
    if not sent:
        return ()
    times = sorted(sent)
    if (times[-1] - times[0]) // 1000 + 1 > len(times) // 8:
        return Counter(map(floordiv, map(sub, repeat(now_us), times), repeat(1000))).items()
    found = []
    i, n = 0, len(times)
    while i < n:
        ms = (now_us - times[i]) // 1000
        j = bisect_right(times, now_us - ms * 1000, i)  # the last one sent this many ms ago
        found.append((ms, j - i))
        i = j
    return found


#: A run with more producers than this is filed message by message (grouping costs a pass each).
_BULK_PRODUCERS = 8


def _groups(ids: Sequence[int], seqs: Sequence[int]) -> list[tuple[int, Any]] | None:
    """``seqs`` split by producer (``ids``, one per seq): ``[(producer, its seqs in order)]``, or None
    when there are more than :data:`_BULK_PRODUCERS` producers.

    Example::

        >>> _groups([7, 7, 9], [1, 2, 3])
        [(7, [1, 2]), (9, [3])]
    """
    distinct = set(ids)
    if len(distinct) > _BULK_PRODUCERS:
        return None
    if len(distinct) == 1:
        return [(ids[0], seqs)]
    return [(p, list(compress(seqs, map(eq, ids, repeat(p))))) for p in sorted(distinct)]


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
    detail: str | None = None
    """What is wrong with it, when known (a corrupted message: the members that differ)."""

    def describe(self) -> str:
        where = f" {self.topic}" if self.topic else ""
        if self.partition is not None:
            where += f"[{self.partition}]"
        if self.offset is not None:
            where += f"@{self.offset}"
        if self.detail:
            where += f" ({self.detail})"
        return f"{self.producer_id:016x}#{self.seq}{where}"


class _ProducerInPartition:
    __slots__ = ("duplicates", "last", "seen", "strays")

    def __init__(self) -> None:
        self.duplicates = 0
        """Copies of seqs already in :attr:`seen` (counted per producer: a producer-id clash must be
        told apart from real duplicates)."""
        self.seen = BitMap64()
        """Seqs on this partition, meant for its topic."""
        self.strays = BitMap64()
        """Seqs on this partition, meant for another topic (misrouted)."""
        self.last = -1


@dataclass
class PartitionState:
    """What one partition has shown so far."""

    topic: str
    partition: int
    producers: dict[int, _ProducerInPartition] = field(default_factory=dict)
    records: int = 0
    """Records of this run meant for this topic (duplicates and corrupted ones included)."""
    misrouted: int = 0
    """Records of this run meant for another topic."""
    duplicates: int = 0
    corrupted: int = 0
    reordered: int = 0
    foreign: int = 0
    last_offset: int = -1
    log_reset: bool = False
    """Offsets went backwards: what was read before may no longer be in the log."""
    first_message: Any = None
    """The first record read here (the one before the run's start, where there is one)."""
    last_message: Any = None
    """The last record read here (any record). If the log no longer holds these two at their
    offsets, it was replaced under the reader (see :mod:`ingestload.verify.readback`)."""
    duplicate_samples: list[MessageId] = field(default_factory=list)
    corrupted_samples: list[MessageId] = field(default_factory=list)
    misrouted_samples: list[MessageId] = field(default_factory=list)
    tag: int = 0
    """The envelope tag of this partition's topic."""
    enriched: int = 0
    """Intact messages to which the API added members of its own (HTTP path)."""
    enriched_members: dict[str, int] = field(default_factory=dict)
    """Each member the API added → how many messages."""
    corrupted_bodies: dict[MessageId, tuple[Any, int | None]] = field(default_factory=dict)
    """HTTP path: the corrupted samples' messages as found (envelope removed) and their send time
    (for the report to name what changed)."""

    def __post_init__(self) -> None:
        self.tag = topic_tag(self.topic)


@dataclass
class SeenSummary:
    """Everything the verdict needs from the verifier."""

    seen: dict[int, BitMap64]
    """Distinct seqs found per producer, on any topic."""
    records: int
    """Records meant for the topic they were found on."""
    duplicated: int
    """Extra copies on the topic a message was meant for: records minus distinct messages there."""
    corrupted: int
    misrouted: int
    """Records found on a topic other than the one they were meant for."""
    reordered: int
    foreign: int
    duplicate_samples: list[MessageId]
    corrupted_samples: list[MessageId]
    misrouted_samples: list[MessageId]
    topics_of: dict[int, set[str]]
    """Topics each producer was seen on."""
    seen_by_topic: dict[str, int]
    """Distinct messages of the run found on each topic (meant for it or not)."""
    anomalies_by_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per topic where found: duplicated, corrupted, misrouted (each sums to its total)."""
    enriched: int = 0
    """Intact messages with members the API added."""
    enriched_members: dict[str, int] = field(default_factory=dict)
    """Member the API added → messages."""
    corrupted_bodies: dict[MessageId, tuple[Any, int | None]] = field(default_factory=dict)
    """HTTP path: corrupted samples' messages as found (envelope removed) and their send time."""
    duplicated_by_producer: dict[int, int] = field(default_factory=dict)
    """Duplicated copies per producer id (sums to :attr:`duplicated`)."""


class Verifier:
    """Accumulates what the run's topics contain; not thread-safe."""

    def __init__(
        self,
        run_id: str,
        *,
        envelope_field: str = "_ingestload",
        body: BodySpec | None = None,
        sample_limit: int = 20,
    ) -> None:
        self.run_id = run_id
        self._run = bytes.fromhex(run_id)
        self.envelope_field = envelope_field
        self._body = BodyReader(body or BodySpec(envelope_field=envelope_field), run_id)
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
        batch = messages if isinstance(messages, list) else list(messages)
        if not batch:
            return
        kind = type(batch[0])
        if len(set(map(type, batch))) != 1:  # mixed message types: no shared methods to map over
            self._file_each(batch, record_latency, now_us)
            return
        stamp = now_us if record_latency else -1  # the native reader's "no latency"
        scanned = self._scan(batch, kind, stamp)
        if scanned is not None:
            for topic, partition, start, end, clean, ordered, latency in scanned.runs:
                run = batch[start:end]
                if clean:
                    filed = self._file_scanned_run(
                        kind, run, topic, partition, scanned, start, ordered, latency, stamp
                    )
                else:  # the methods tell whether it is clean after all (headers already converted)
                    filed = self._file_clean_run(kind, run, topic, partition, record_latency, now_us)
                if not filed:
                    self._file_each(run, record_latency, now_us)
            return
        topics = list(map(kind.topic, batch))
        start = 0
        for partition, same in groupby(map(kind.partition, batch)):
            end = start + len(list(same))
            topic = topics[start]
            if topics[start:end].count(topic) != end - start:  # one partition number, two topics
                self._file_each(batch[start:end], record_latency, now_us)
            else:
                run = batch[start:end]
                if not self._file_clean_run(kind, run, topic, partition, record_latency, now_us):
                    self._file_each(run, record_latency, now_us)
            start = end

    def _scan(self, batch: list[Any], kind: Any, now_us: int) -> Scanned | None:
        """The batch read natively (:mod:`.scan`) — its last record read again through the ``Message``
        methods, which must agree — or None."""
        scan = scanner()
        if scan is None:
            return None
        try:
            scanned = scan(batch, kind, self._run, now_us)
        except ValueError:  # a record without a topic: the methods' way files it
            return None
        if scanned is None:
            return None
        last = batch[-1]
        topic, partition, _, end, clean, _, _ = scanned.runs[-1]
        agrees = kind.topic(last) == topic and kind.partition(last) == partition and end == len(batch)
        if agrees and clean:
            headers = kind.headers(last)
            envelope = scanned.envelopes[-SIZE:]
            agrees = bool(headers) and headers[0] == (HEADER, envelope)
            agrees = agrees and _BODY.unpack_from(envelope, 9)[:3] == (
                scanned.producers[-1],
                scanned.seqs[-1],
                scanned.sent[-1],
            )
        if not agrees:
            distrust(f"it read {topic}[{partition}] where the Message methods read otherwise")
            return None
        return scanned

    def _file_scanned_run(
        self,
        kind: Any,
        run: list[Any],
        topic: str,
        partition: int,
        scanned: Scanned,
        start: int,
        ordered: bool,
        latency: dict[int, int] | None,
        now_us: int,
    ) -> bool:
        """File ``run``, a clean run as the native reader found it, in bulk — unless it repeats or
        reorders what was filed before; False then, and nothing changed. ``now_us`` < 0: no latency."""
        state = self._partition(topic, partition)
        if kind.offset(run[0]) <= state.last_offset:
            return False
        end = start + len(run)
        seqs = scanned.seqs[start:end]
        groups = (
            [(scanned.producers[start], seqs)] if ordered else _groups(scanned.producers[start:end], seqs)
        )
        if groups is None or not self._in_order(state, groups, ordered):
            return False
        if now_us < 0 or latency is not None:
            ages: Iterable[tuple[int, int]] = latency.items() if latency is not None else ()
        else:
            ages = _latencies(now_us, scanned.sent[start:end])
        self._file_groups(state, kind, run, groups, ages)
        return True

    @staticmethod
    def _in_order(state: PartitionState, groups: list[tuple[int, Any]], ordered: bool) -> bool:
        """Each producer's seqs in ``groups`` rise, past all it had in the partition (``ordered``: the
        native reader found them rising already; only the first is compared here)."""
        entries = state.producers
        for producer, mine in groups:
            entry = entries.get(producer)
            if entry is not None and len(entry.seen) and mine[0] <= entry.seen.max():
                return False  # a duplicate or a reordering, maybe: the loop tells which
            if not ordered and not all(map(lt, mine, islice(mine, 1, None))):
                return False
        return True

    def _file_groups(
        self,
        state: PartitionState,
        kind: Any,
        run: list[Any],
        groups: list[tuple[int, Any]],
        ages: Iterable[tuple[int, int]],
    ) -> None:
        """File a clean run: each producer's seqs, the partition's counts, the latency buckets."""
        entries = state.producers
        for producer, mine in groups:
            entry = entries.get(producer)
            if entry is None:
                entry = entries[producer] = _ProducerInPartition()
            entry.seen.update(mine)
            entry.last = mine[-1]
        if state.first_message is None:
            state.first_message = run[0]
        state.last_message = run[-1]
        state.last_offset = kind.offset(run[-1])
        state.records += len(run)
        self.seen_records += len(run)
        latency = self.latency.setdefault(state.topic, {})
        for ms, count in ages:
            latency[ms] = latency.get(ms, 0) + count

    def _file_clean_run(
        self, kind: Any, run: list[Any], topic: str, partition: int, record_latency: bool, now_us: int
    ) -> bool:
        """File ``run`` (records of one partition, in order) in bulk if it is clean (see the module
        docstring), read through the ``Message`` methods, and return True; otherwise change nothing and
        return False."""
        n = len(run)
        joined = self._envelopes(kind, run)
        if joined is None:
            return False
        state = self._partition(topic, partition)
        if _column(joined, RUN_ID.start, 8) != self._run * n:
            return False
        if _column(joined, _TAG_AT, 4) != state.tag.to_bytes(4, "big") * n:
            return False
        if kind.offset(run[0]) <= state.last_offset:
            return False
        groups = _groups(
            _numbers("Q", _column(joined, _PRODUCER_AT, 8)), _numbers("Q", _column(joined, _SEQ_AT, 8))
        )
        if groups is None or not self._in_order(state, groups, False):
            return False
        ages = _latencies(now_us, _numbers("q", _column(joined, _SENT_AT, 8))) if record_latency else ()
        self._file_groups(state, kind, run, groups, ages)
        return True

    @staticmethod
    def _envelopes(kind: Any, run: list[Any]) -> bytes | None:
        """The envelope headers of ``run`` end to end, through the ``Message`` methods — if every record
        has its envelope first, its value intact and its offset rising; else None."""
        n = len(run)
        try:
            names, headers = zip(*map(_FIRST, map(kind.headers, run)), strict=True)
            joined = b"".join(headers)
        except (TypeError, IndexError, ValueError):  # no headers, an empty list, a value of None
            return None
        if names.count(HEADER) != n or len(joined) != SIZE * n or set(map(len, headers)) != {SIZE}:
            return None
        try:
            crcs = _array("I", map(checksum, map(kind.value, run)))
        except TypeError:  # a value of None
            return None
        if crcs != _column(joined, _CRC_AT, 4):
            return None
        offsets = list(map(kind.offset, run))
        if not all(map(lt, offsets, islice(offsets, 1, None))):
            return None
        return joined

    def _file_each(self, messages: list[Any], record_latency: bool, now_us: int) -> None:
        """File ``messages`` one by one: every anomaly found, counted and sampled."""
        run = self._run
        unpack = _BODY.unpack_from
        crc32 = checksum
        file_body = self._file_body
        read_body = self._body.read
        current: PartitionState | None = None
        current_topic = ""
        current_partition = -1
        tag = 0
        producers: dict[int, _ProducerInPartition] = {}
        latency: dict[int, int] = {}
        records = total = 0
        previous = None
        for message in messages:
            topic = message.topic()
            partition = message.partition()
            if current is None or partition != current_partition or topic != current_topic:
                if current is not None:
                    current.records += records
                    current.last_message = previous
                    records = 0
                current = self._partition(topic, partition)
                if current.first_message is None:
                    current.first_message = message
                current_topic, current_partition, tag = topic, partition, current.tag
                producers = current.producers
                latency = self.latency.setdefault(topic, {})
            previous = message
            offset = message.offset()
            if offset <= current.last_offset:
                current.log_reset = True  # the log went back: it was truncated or recreated
            current.last_offset = offset
            # The envelope: a Kafka header (Kafka path), else a member of the JSON value (HTTP path).
            headers = message.headers()
            if headers and headers[0][0] == HEADER:
                header = headers[0][1]  # where our senders put it: no scan, no call
            else:
                header = header_of(headers)
            if header is not None:
                if len(header) != SIZE or header[RUN_ID] != run:
                    current.foreign += 1
                    continue
                producer, seq, sent_at_us, crc, meant = unpack(header, 9)
                intact = crc32(message.value() or b"") == crc
            else:  # the HTTP path: in the JSON body, one or several messages per record
                found = read_body(message.value())
                if found is None:
                    current.foreign += 1
                    continue
                producer, seq, sent_at_us, intact, meant, enriched, _ = found[0]
                if len(found) > 1 or enriched or not intact or sent_at_us is None:
                    filed = file_body(
                        current, producers, latency, message, offset, record_latency, now_us, found
                    )
                    records += filed
                    total += filed
                    continue
                # One intact message with its envelope member: filed below, as a Kafka-path record.
            total += 1
            state = producers.get(producer)
            if state is None:
                state = producers[producer] = _ProducerInPartition()
            if meant == tag:
                records += 1
                try:
                    state.seen.add_checked(seq)
                except KeyError:
                    self._sample(current, current.duplicate_samples, producer, seq, offset)
                    current.duplicates += 1
                    state.duplicates += 1
                if seq < state.last:
                    current.reordered += 1
                state.last = seq
            else:
                state.strays.add(seq)
                self._sample(current, current.misrouted_samples, producer, seq, offset)
                current.misrouted += 1
            if not intact:
                self._sample(current, current.corrupted_samples, producer, seq, offset)
                current.corrupted += 1
            if record_latency:
                ms = (now_us - sent_at_us) // 1000
                latency[ms] = latency.get(ms, 0) + 1
        if current is not None:
            current.records += records
            current.last_message = previous
        self.seen_records += total

    def _file_body(
        self,
        state: PartitionState,
        producers: dict[int, _ProducerInPartition],
        latency: dict[int, int],
        message: Any,
        offset: int,
        record_latency: bool,
        now_us: int,
        found: list[Found],
    ) -> int:
        """File the run's messages ``found`` in a JSON record value (HTTP path, :mod:`.body`) when they
        are more than one, enriched, corrupted or without a send time; returns how many of them were
        meant for this partition's topic."""
        tag = state.tag & self._body.tag_mask
        filed = 0
        for producer, seq, sent_at_us, intact, meant, enriched, body in found:
            entry = producers.get(producer)
            if entry is None:
                entry = producers[producer] = _ProducerInPartition()
            if meant == tag:
                filed += 1
                try:
                    entry.seen.add_checked(seq)
                except KeyError:
                    self._sample(state, state.duplicate_samples, producer, seq, offset)
                    state.duplicates += 1
                    entry.duplicates += 1
                if seq < entry.last:
                    state.reordered += 1
                entry.last = seq
            else:
                entry.strays.add(seq)
                self._sample(state, state.misrouted_samples, producer, seq, offset)
                state.misrouted += 1
            if enriched:
                state.enriched += 1
                counts = state.enriched_members
                for member in enriched:
                    counts[member] = counts.get(member, 0) + 1
            if not intact:
                samples = state.corrupted_samples
                if len(samples) < self.sample_limit:
                    self._sample(state, samples, producer, seq, offset)
                    state.corrupted_bodies[samples[-1]] = (body, sent_at_us)
                state.corrupted += 1
            if record_latency:
                if sent_at_us is None:  # strict mode: the API's produce time stands in
                    stamp = message.timestamp()[1]
                    if stamp <= 0:
                        continue
                    sent_at_us = stamp * 1000
                ms = (now_us - sent_at_us) // 1000
                latency[ms] = latency.get(ms, 0) + 1
        return filed

    def _sample(
        self, state: PartitionState, samples: list[MessageId], producer: int, seq: int, offset: int
    ) -> None:
        if len(samples) < self.sample_limit:
            samples.append(MessageId(producer, seq, state.topic, state.partition, offset))

    def forget(self, topic: str, partition: int) -> None:
        """Drop everything learnt from one partition (before reading it again)."""
        self.partitions.pop((topic, partition), None)

    def take_latency(self) -> dict[str, dict[int, int]]:
        """Latency buckets recorded since the last call, per topic."""
        taken, self.latency = self.latency, {}
        return {topic: buckets for topic, buckets in taken.items() if buckets}

    def summary(self) -> SeenSummary:
        """Seen sets per producer and the anomalies, across partitions."""
        by_topic: dict[str, list[PartitionState]] = {}
        for state in self.partitions.values():
            by_topic.setdefault(state.topic, []).append(state)
        found: dict[int, list[BitMap64]] = {}
        topics_of: dict[int, set[str]] = {}
        seen_by_topic: dict[str, int] = {}
        anomalies: dict[str, dict[str, int]] = {}
        records = duplicated = corrupted = misrouted = reordered = foreign = 0
        duplicate_samples: list[MessageId] = []
        corrupted_samples: list[MessageId] = []
        misrouted_samples: list[MessageId] = []
        corrupted_bodies: dict[MessageId, tuple[Any, int | None]] = {}
        enriched = 0
        enriched_members: dict[str, int] = {}
        by_producer: dict[int, int] = {}
        for topic, states in sorted(by_topic.items()):
            right: dict[int, list[BitMap64]] = {}
            anywhere: dict[int, list[BitMap64]] = {}
            topic_records = 0
            for state in states:
                topic_records += state.records
                corrupted += state.corrupted
                misrouted += state.misrouted
                reordered += state.reordered
                foreign += state.foreign
                duplicate_samples.extend(state.duplicate_samples)
                corrupted_samples.extend(state.corrupted_samples)
                misrouted_samples.extend(state.misrouted_samples)
                corrupted_bodies.update(state.corrupted_bodies)
                enriched += state.enriched
                for member, count in state.enriched_members.items():
                    enriched_members[member] = enriched_members.get(member, 0) + count
                for producer, entry in state.producers.items():
                    topics_of.setdefault(producer, set()).add(topic)
                    right.setdefault(producer, []).append(entry.seen)
                    anywhere.setdefault(producer, []).extend((entry.seen, entry.strays))
                    found.setdefault(producer, []).extend((entry.seen, entry.strays))
            seen_by_topic[topic] = sum(len(BitMap64.union(*bitmaps)) for bitmaps in anywhere.values())
            distinct = 0
            for producer, bitmaps in right.items():
                union = BitMap64.union(*bitmaps) if len(bitmaps) > 1 else bitmaps[0]
                distinct += len(union)
                extra = (
                    sum(map(len, bitmaps))
                    - len(union)
                    + sum(s.producers[producer].duplicates for s in states if producer in s.producers)
                )
                if extra:
                    by_producer[producer] = by_producer.get(producer, 0) + extra
                if len(bitmaps) > 1 and sum(map(len, bitmaps)) > len(union):
                    duplicate_samples.extend(self._cross_partition_samples(states, producer))
            records += topic_records
            duplicated += topic_records - distinct
            anomalies[topic] = {
                "duplicated": topic_records - distinct,
                "corrupted": sum(s.corrupted for s in states),
                "misrouted": sum(s.misrouted for s in states),
            }
        seen = {p: BitMap64.union(*bitmaps) for p, bitmaps in found.items()}
        limit = self.sample_limit
        return SeenSummary(
            seen=seen,
            records=records,
            duplicated=duplicated,
            corrupted=corrupted,
            misrouted=misrouted,
            reordered=reordered,
            foreign=foreign,
            duplicate_samples=duplicate_samples[:limit],
            corrupted_samples=corrupted_samples[:limit],
            misrouted_samples=misrouted_samples[:limit],
            topics_of=topics_of,
            seen_by_topic=seen_by_topic,
            anomalies_by_topic=anomalies,
            enriched=enriched,
            enriched_members=enriched_members,
            corrupted_bodies={
                i: corrupted_bodies[i] for i in corrupted_samples[:limit] if i in corrupted_bodies
            },
            duplicated_by_producer=by_producer,
        )

    def _cross_partition_samples(self, states: list[PartitionState], producer: int) -> list[MessageId]:
        """Messages of ``producer`` found on two partitions of one topic (a few, for the report)."""
        holders = [(s, s.producers[producer].seen) for s in states if producer in s.producers]
        samples: list[MessageId] = []
        for i, (_, bitmap) in enumerate(holders):
            for other_state, other in holders[i + 1 :]:
                for seq in islice(bitmap & other, self.sample_limit):
                    samples.append(MessageId(producer, seq, other_state.topic, other_state.partition, None))
                    if len(samples) >= self.sample_limit:
                        return samples
        return samples
