"""What every subscription should have received: one read of Kafka for all subscribers.

Subscribers with the same topics and filter expect the same messages, so the read indexes
offsets by *subscription key* (topics, filter), not by subscriber: each partition is read
once, from the lowest start of any window on it to its end, each message's JSON is parsed
at most once, and each distinct key that matches it gets its offset. A verdict over a
thousand subscribers of five distinct subscriptions costs one read and five bitmaps per
partition.

:class:`MatchIndex` is the pure part (fed messages, tested without a broker);
:func:`read_expected` feeds it from Kafka by assignment (no consumer group) up to each
partition's end-of-partition event — not ListOffsets, which the embedded broker answers
too low (see :mod:`ingestload.kafka.admin`).

Example::

    expected = read_expected(consumer_config, ledgers)      # after the producers drained
    verdict = judge(ledgers, expected)
"""

from __future__ import annotations

import time
import uuid
import zlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from pyroaring import BitMap64

from ingestload.fanout.filters import FieldFilter, extract, value_key
from ingestload.fanout.ledger import SubscriberLedger, normalised_value
from ingestload.fanout.protocol import Positions, TopicPartition

Key = tuple[tuple[str, ...], FieldFilter | None]


@dataclass
class Expected:
    """The outcome of the one read: matching offsets per key and partition, and how far it got."""

    matches: dict[Key, dict[TopicPartition, BitMap64]]
    """Per subscription key and partition, the offsets of the messages that match it."""
    read_from: Positions
    """Per partition, the offset the read started at (messages below were not looked at)."""
    end: Positions
    """Per partition, Kafka's end offset (next offset) when the read reached it."""
    incomplete: list[str] = field(default_factory=list)
    """Why some partition could not be read to its end (empty when every one was)."""
    digests: dict[TopicPartition, tuple[int, array[int]]] = field(default_factory=dict)
    """Per partition: (first offset, the :func:`~ingestload.fanout.ledger.content_digest` of each
    offset from it) — what Kafka holds, to check what subscribers received (0: no record there)."""
    partitions: dict[str, set[int]] = field(default_factory=dict)
    """Per topic of any subscription: every partition Kafka has (a window that leaves one out is not
    known whole)."""

    def content_sum(self, tp: TopicPartition, offsets: Iterable[int]) -> int | None:
        """The sum (mod 2**64) of Kafka's content digests at ``offsets`` of ``tp`` (``None``: not read)."""
        found = self.digests.get(tp)
        if found is None:
            return None
        base, values = found
        size = len(values)
        total = 0
        for offset in offsets:
            index = offset - base
            if 0 <= index < size:
                total += values[index]
        return total & (2**64 - 1)


class MatchIndex:
    """Collects the offsets each subscription key matches (the pure half of the read)."""

    def __init__(self, keys: Iterable[Key]) -> None:
        self.keys: list[Key] = sorted(set(keys), key=repr)
        self.matches: dict[Key, dict[TopicPartition, BitMap64]] = {k: {} for k in self.keys}
        self._by_topic: dict[str, list[Key]] = {}
        self._accepted = {k: k[1].keys() for k in self.keys if k[1] is not None}
        for key in self.keys:
            for topic in key[0]:
                self._by_topic.setdefault(topic, []).append(key)

    def needs_document(self, topic: str) -> bool:
        """True when some key of ``topic`` has a filter (so values must be parsed)."""
        return any(k[1] is not None for k in self._by_topic.get(topic, ()))

    def digest(self, expected: Expected, topic: str, partition: int, offset: int, value: bytes) -> None:
        """File the content digest of one record (``value`` normalised) in ``expected.digests``."""
        tp = (topic, partition)
        found = expected.digests.get(tp)
        if found is None:
            found = expected.digests[tp] = (offset, array("I"))
        base, values = found
        index = offset - base
        if index < 0:
            return
        if index >= len(values):
            values.extend([0] * (index + 1 - len(values)))
        values[index] = zlib.crc32(value, offset & 0xFFFFFFFF)

    def add(self, topic: str, partition: int, offset: int, document: Any) -> None:
        """One message; ``document`` is its parsed JSON (``None`` when not JSON or not needed)."""
        for key in self._by_topic.get(topic, ()):
            flt = key[1]
            if flt is not None and (
                document is None or value_key(extract(document, flt.path)) not in self._accepted[key]
            ):
                continue
            per_partition = self.matches[key]
            bitmap = per_partition.get((topic, partition))
            if bitmap is None:
                bitmap = per_partition[(topic, partition)] = BitMap64()
            bitmap.add(offset)


def read_plan(ledgers: Iterable[SubscriberLedger]) -> tuple[list[Key], Positions]:
    """The keys to index and, per partition, the lowest start of any window on it."""
    keys: set[Key] = set()
    start: Positions = {}
    for ledger in ledgers:
        if not ledger.start:
            continue
        keys.add(ledger.key)
        for tp, offset in ledger.start.items():
            start[tp] = min(offset, start.get(tp, offset))
    return sorted(keys, key=repr), start


def read_expected(
    config: Mapping[str, str],
    ledgers: Iterable[SubscriberLedger],
    *,
    idle_timeout: float = 15.0,
    batch: int = 10_000,
) -> Expected:
    """Read every partition any ledger's window covers, from its lowest start to its end."""
    from confluent_kafka import Consumer, KafkaError
    from confluent_kafka import TopicPartition as KafkaTopicPartition

    from ingestload.kafka.config import COMMITTED_ONLY, CONSUMER_DEFAULTS, scrub

    keys, start = read_plan(ledgers)
    index = MatchIndex(keys)
    expected = Expected(index.matches, dict(start), {})
    if not start:
        return expected
    consumer = Consumer(
        {
            **CONSUMER_DEFAULTS,
            **config,
            **COMMITTED_ONLY,  # what a subscriber may be expected to get: committed records only
            "group.id": f"ingestload-fanout-expected-{uuid.uuid4().hex}",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        # Every partition of the subscribed topics, also those a gateway left out of every window:
        # read from their beginning, so that a window that omits one can be told not whole.
        topics = sorted({t for key in keys for t in key[0]})
        metadata = consumer.list_topics(timeout=10)
        for topic in topics:
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                continue
            expected.partitions[topic] = set(found.partitions)
            for partition in found.partitions:
                if (topic, partition) not in start:
                    start[(topic, partition)] = 0
                    expected.read_from[(topic, partition)] = 0
        consumer.assign([KafkaTopicPartition(t, p, o) for (t, p), o in sorted(start.items())])
        pending = set(start)
        last_progress = time.monotonic()
        while pending and time.monotonic() - last_progress < idle_timeout:
            messages = consumer.consume(batch, 0.5)
            if messages:
                last_progress = time.monotonic()
            for message in messages:
                error = message.error()
                tp = (str(message.topic()), int(message.partition() or 0))
                offset = int(message.offset() or 0)
                if error is None:
                    # Every value is parsed once: for the filters and for the content digest.
                    raw = message.value()
                    try:
                        document = orjson.loads(raw if raw is not None else b"null")
                        value = orjson.dumps(document)
                    except orjson.JSONDecodeError:
                        document, value = None, normalised_value(raw)
                    index.digest(expected, tp[0], tp[1], offset, value)
                    index.add(tp[0], tp[1], offset, document)
                elif error.code() == KafkaError._PARTITION_EOF:
                    expected.end[tp] = offset
                    pending.discard(tp)
                else:
                    expected.incomplete.append(f"{tp[0]}[{tp[1]}]: {scrub(str(error), config)}")
                    pending.discard(tp)
        for t, p in sorted(pending):
            expected.incomplete.append(f"{t}[{p}]: no end of partition within {idle_timeout:g}s")
    finally:
        consumer.close()
    return expected
