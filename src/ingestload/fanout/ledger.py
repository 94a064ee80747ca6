"""What one subscriber received, and the window in which it should have received it.

A :class:`SubscriberLedger` is one subscription as a subscriber saw it: the window the
gateway confirmed (``subscribed.from``, later ``partitions``), the end it confirmed
(``unsubscribed.to``), the last ``progress`` it vouched for, every (partition, offset) it
received (64-bit roaring bitmaps, so a ledger of millions of messages stays small),
duplicates, first arrivals below an offset already received (out of order, per partition),
drops the gateway announced, a content digest per partition (what each first arrival held, to be
compared with what Kafka holds at those offsets: :func:`content_digest`), and a latency histogram
per topic (envelope send time → received) with the lowest latency measured (a bound on the clock
skew between sender and subscriber). Its state:

=============  =================================================================================
pending        subscribe sent, never confirmed: no window
open           confirmed and still subscribed: the window ends at Kafka's end offsets (after drain)
closed         a clean ``unsubscribed``: the window is ``[from, to)``
broken         the connection ended without ``unsubscribed``: the end is unknown; the last
               ``progress`` is the most the gateway vouched for
=============  =================================================================================

A gateway that contradicts itself — an ``unsubscribed.to`` below an offset it already vouched for
with ``progress`` — does not shrink the window: the window ends at the higher of the two, and the
contradiction is kept (:attr:`SubscriberLedger.contradictions`) for the verdict to name.

Ledgers serialise to JSON-friendly dicts (:meth:`SubscriberLedger.to_dict`) and merge
(:meth:`SubscriberLedgers.merge`), so that Locust workers can send theirs to the master at
the drain, as they do their ack ledgers.

Example::

    ledger = SubscriberLedger("w1-u3-0", ("gov-alarm",))
    ledger.feed(frame, received_us)            # every parsed gateway frame, in order
    …
    ledger.disconnected()                      # the socket closed; no-op after a clean end
    SubscriberLedgers([ledger]).to_json()
"""

from __future__ import annotations

import base64
import collections
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
from pyroaring import BitMap64

from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.protocol import Positions, TopicPartition, positions_from_json, positions_json
from ingestload.messages.envelope import SENT_AT_OFFSET, SIZE

PENDING, OPEN, CLOSED, BROKEN = "pending", "open", "closed", "broken"
STATES = (PENDING, OPEN, CLOSED, BROKEN)
#: The HTTP path's envelope member inside a message's JSON (``--envelope-field``).
ENVELOPE_FIELD = "_ingestload"
#: Latency buckets keep this many significant bits (≤ 3.1% relative error), like HdrHistogram.
_BUCKET_BITS = 5


_MASK64 = 2**64 - 1


def content_digest(offset: int, value: bytes) -> int:
    """The digest of one message's content at its offset: CRC-32 of the value seeded with the offset,
    so that two values swapped between offsets do not cancel out. A partition's digest is the sum
    (mod 2**64) over the offsets received; the verdict sums Kafka's values at the same offsets.

    ``value`` is the normalised value: for JSON, ``orjson.dumps`` of the parsed document (both sides
    parse and re-render it, so a gateway may forward it byte for byte or re-serialise it), else the
    raw bytes."""
    return zlib.crc32(value, offset & 0xFFFFFFFF)


def normalised_value(raw: bytes | None) -> bytes:
    """Kafka's side of :func:`content_digest`: a JSON value re-rendered, anything else as it is."""
    if raw is None:
        return b"null"
    try:
        return orjson.dumps(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return raw


def _received_value(message: Mapping[str, Any]) -> bytes:
    """The subscriber's side of :func:`content_digest`: the value of a ``messages`` entry."""
    raw = message.get("value_base64")
    if raw is not None and message.get("value") is None:
        try:
            return base64.b64decode(raw)
        except (ValueError, TypeError):
            return b"\x00invalid base64"
    try:
        return orjson.dumps(message.get("value"))
    except TypeError:
        return b"\x00not renderable"


def latency_bucket(us: int) -> int:
    """The bucket (its lower bound, µs) of a latency: 5 significant bits, so p99 is within 3.1%."""
    if us < 32:
        return max(0, us)
    shift = us.bit_length() - _BUCKET_BITS
    return (us >> shift) << shift


def sent_at_of(envelope_hex: Any) -> int | None:
    """The send time (µs) from an envelope in hex, without decoding the rest."""
    if isinstance(envelope_hex, str) and len(envelope_hex) == 2 * SIZE:
        try:
            return int(envelope_hex[2 * SENT_AT_OFFSET : 2 * SENT_AT_OFFSET + 16], 16)
        except ValueError:
            return None
    return None


class SubscriberLedger:
    """One subscription, as its subscriber saw it (see the module doc)."""

    def __init__(
        self,
        subscriber: str,
        topics: Iterable[str],
        filter: FieldFilter | None = None,
        *,
        envelope_field: str = ENVELOPE_FIELD,
    ) -> None:
        self.subscriber = subscriber
        """Unique name of this subscription window across the whole test (worker, user, n)."""
        self.topics: tuple[str, ...] = tuple(sorted(set(topics)))
        self.filter = filter
        self.envelope_field = envelope_field
        self.state = PENDING
        self.subscription: str | None = None
        """The gateway's id for the subscription, once confirmed."""
        self.start: Positions = {}
        self.end: Positions | None = None
        self.end_reason: str | None = None
        self.vouched: Positions = {}
        self.received: dict[TopicPartition, BitMap64] = {}
        self.highest: dict[TopicPartition, int] = {}
        self.duplicates: collections.Counter[TopicPartition] = collections.Counter()
        self.out_of_order: collections.Counter[TopicPartition] = collections.Counter()
        self.announced_dropped = 0
        self.latency: dict[str, collections.Counter[int]] = {}
        self.no_envelope = 0
        """Messages received without an envelope (no latency for them)."""
        self.errors: list[str] = []
        """Error frames the gateway sent (first 20)."""
        self.content: dict[TopicPartition, int] = {}
        """Per partition: the sum (mod 2**64) of :func:`content_digest` over first arrivals."""
        self.unchecked: set[TopicPartition] = set()
        """Partitions whose content cannot be checked: two merged records of the subscription both
        received an offset there, and its digest cannot be taken out of the sums again."""
        self.contradictions: list[str] = []
        """What the gateway said that contradicts what it vouched for before (first 20)."""
        self.min_latency_us: int | None = None
        """The lowest latency measured (µs, may be negative): the subscriber's clock minus the
        sender's is at most this (the clock skew bound the verdict reports)."""
        self.host: str | None = None
        """The subscriber's host (same host as the senders: one clock, no skew)."""

    @property
    def key(self) -> tuple[tuple[str, ...], FieldFilter | None]:
        """What decides the expected messages: topics and filter."""
        return self.topics, self.filter

    # -- protocol events ---------------------------------------------------------------------

    def confirmed(self, subscription: str, start: Mapping[TopicPartition, int]) -> None:
        self.subscription = subscription
        self.start = dict(start)
        self.vouched = dict(start)
        self.state = OPEN

    def partitions_added(self, start: Mapping[TopicPartition, int]) -> None:
        for tp, offset in start.items():
            self.start.setdefault(tp, offset)
            self.vouched.setdefault(tp, offset)

    def progress(self, positions: Mapping[TopicPartition, int]) -> None:
        self.vouched.update(positions)

    def dropped(self, count: int) -> None:
        self.announced_dropped += count

    def ended(self, end: Mapping[TopicPartition, int], reason: str) -> None:
        window_end = dict(end)
        for tp, offset in end.items():
            vouched = self.vouched.get(tp)
            if vouched is not None and offset < vouched:
                # The gateway already said every message below `vouched` was pushed: it cannot take
                # that back by ending the window lower.
                window_end[tp] = vouched
                if len(self.contradictions) < 20:
                    self.contradictions.append(
                        f"{tp[0]}[{tp[1]}]: unsubscribed.to {offset} below progress {vouched} "
                        "it had vouched for"
                    )
        self.end = window_end
        self.vouched.update(window_end)
        self.end_reason = reason
        self.state = CLOSED

    def disconnected(self) -> None:
        """The connection ended; without a clean end before it, the window's end is unknown."""
        if self.state == OPEN:
            self.state = BROKEN

    def gave_up(self, reason: str) -> None:
        """The subscriber stopped listening before the gateway vouched for the window's end (its
        drain timed out): as for a lost connection, the end is unknown beyond the last ``progress``,
        and ``reason`` says why."""
        if self.state == OPEN:
            self.state = BROKEN
            self.end_reason = reason

    def record(
        self,
        topic: str,
        partition: int,
        offset: int,
        sent_at_us: int | None,
        received_us: int,
        value: bytes | None = None,
    ) -> None:
        """One received message (the hot path: a few hundred nanoseconds); ``value``, its normalised
        value (see :func:`content_digest`), goes into the partition's content digest."""
        key = (topic, partition)
        seen = self.received.get(key)
        if seen is None:
            seen = self.received[key] = BitMap64()
        if offset in seen:
            self.duplicates[key] += 1
            return
        seen.add(offset)
        if value is not None and key not in self.unchecked:
            self.content[key] = (self.content.get(key, 0) + zlib.crc32(value, offset & 0xFFFFFFFF)) & _MASK64
        if offset < self.highest.get(key, -1):
            self.out_of_order[key] += 1
        else:
            self.highest[key] = offset
        if sent_at_us is None:
            self.no_envelope += 1
            return
        latency = received_us - sent_at_us
        if self.min_latency_us is None or latency < self.min_latency_us:
            self.min_latency_us = latency
        buckets = self.latency.get(topic)
        if buckets is None:
            buckets = self.latency[topic] = collections.Counter()
        buckets[latency_bucket(latency)] += 1

    def feed(self, frame: Mapping[str, Any], received_us: int) -> None:
        """Apply one parsed gateway frame (``protocol.parse_server``), received at ``received_us``."""
        kind = frame["type"]
        if kind == "messages":
            field = self.envelope_field
            record = self.record
            for m in frame["messages"]:
                sent_at = sent_at_of(m.get("envelope"))
                if sent_at is None:
                    value = m.get("value")
                    if isinstance(value, dict):
                        sent_at = sent_at_of(value.get(field))
                record(m["topic"], m["partition"], m["offset"], sent_at, received_us, _received_value(m))
        elif kind == "progress":
            self.progress(positions_from_json(frame["positions"]))
        elif kind == "subscribed":
            self.confirmed(str(frame["subscription"]), positions_from_json(frame["from"]))
        elif kind == "partitions":
            self.partitions_added(positions_from_json(frame["from"]))
        elif kind == "dropped":
            self.dropped(int(frame["count"]))
        elif kind == "unsubscribed":
            self.ended(positions_from_json(frame["to"]), str(frame["reason"]))
        elif kind == "error" and len(self.errors) < 20:
            self.errors.append(f"{frame.get('error')}: {frame.get('detail')}")

    # -- figures -----------------------------------------------------------------------------

    def received_count(self) -> int:
        """Distinct messages received."""
        return sum(len(b) for b in self.received.values())

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscriber": self.subscriber,
            "topics": list(self.topics),
            "filter": None if self.filter is None else self.filter.to_json(),
            "envelope_field": self.envelope_field,
            "state": self.state,
            "subscription": self.subscription,
            "start": positions_json(self.start),
            "end": None if self.end is None else positions_json(self.end),
            "end_reason": self.end_reason,
            "vouched": positions_json(self.vouched),
            "received": [
                [t, p, base64.b64encode(b.serialize()).decode("ascii")]
                for (t, p), b in sorted(self.received.items())
            ],
            "highest": positions_json(self.highest),
            "duplicates": positions_json(self.duplicates),
            "out_of_order": positions_json(self.out_of_order),
            "announced_dropped": self.announced_dropped,
            "latency": {t: sorted(c.items()) for t, c in sorted(self.latency.items())},
            "no_envelope": self.no_envelope,
            "errors": list(self.errors),
            "content": positions_json(self.content),
            "unchecked": [[t, p] for t, p in sorted(self.unchecked)],
            "contradictions": list(self.contradictions),
            "min_latency_us": self.min_latency_us,
            "host": self.host,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubscriberLedger:
        raw_filter = data.get("filter")
        ledger = cls(
            str(data["subscriber"]),
            data["topics"],
            None if raw_filter is None else FieldFilter.from_json(raw_filter),
            envelope_field=str(data.get("envelope_field", ENVELOPE_FIELD)),
        )
        state = data["state"]
        if state not in STATES:
            raise ValueError(f"unknown ledger state {state!r}")
        ledger.state = state
        ledger.subscription = data.get("subscription")
        ledger.start = positions_from_json(data["start"])
        ledger.end = None if data.get("end") is None else positions_from_json(data["end"])
        ledger.end_reason = data.get("end_reason")
        ledger.vouched = positions_from_json(data["vouched"])
        ledger.received = {
            (t, int(p)): BitMap64.deserialize(base64.b64decode(b)) for t, p, b in data["received"]
        }
        ledger.highest = positions_from_json(data["highest"])
        ledger.duplicates = collections.Counter(positions_from_json(data["duplicates"]))
        ledger.out_of_order = collections.Counter(positions_from_json(data["out_of_order"]))
        ledger.announced_dropped = int(data["announced_dropped"])
        ledger.latency = {
            t: collections.Counter({int(b): int(n) for b, n in pairs}) for t, pairs in data["latency"].items()
        }
        ledger.no_envelope = int(data.get("no_envelope", 0))
        ledger.errors = [str(e) for e in data.get("errors", [])]
        ledger.content = positions_from_json(data.get("content", []))
        ledger.unchecked = {(str(t), int(p)) for t, p in data.get("unchecked", [])}
        ledger.contradictions = [str(e) for e in data.get("contradictions", [])]
        minimum = data.get("min_latency_us")
        ledger.min_latency_us = None if minimum is None else int(minimum)
        ledger.host = data.get("host")
        return ledger

    def merge(self, other: SubscriberLedger) -> None:
        """Fold in another record of the *same* subscription (e.g. split across reports)."""
        if other.subscriber != self.subscriber or other.key != self.key:
            raise ValueError(
                f"cannot merge ledgers of different subscriptions: {self.subscriber} / {other.subscriber}"
            )
        overlapping = set(self.unchecked | other.unchecked)
        for tp, bitmap in other.received.items():
            mine = self.received.get(tp)
            if mine is None:
                self.received[tp] = BitMap64(bitmap)
                continue
            both = mine.intersection_cardinality(bitmap)
            self.duplicates[tp] += both
            if both:
                overlapping.add(tp)
            mine |= bitmap
        for tp, offset in other.highest.items():
            self.highest[tp] = max(offset, self.highest.get(tp, -1))
        for tp, digest in other.content.items():
            self.content[tp] = (self.content.get(tp, 0) + digest) & _MASK64
        # Offsets received in both parts were digested twice: those partitions cannot be checked.
        for tp in overlapping:
            self.content.pop(tp, None)
        self.unchecked = overlapping
        if other.min_latency_us is not None and (
            self.min_latency_us is None or other.min_latency_us < self.min_latency_us
        ):
            self.min_latency_us = other.min_latency_us
        self.contradictions = (self.contradictions + other.contradictions)[:20]
        self.host = self.host or other.host
        self.duplicates.update(other.duplicates)
        self.out_of_order.update(other.out_of_order)
        self.announced_dropped += other.announced_dropped
        self.no_envelope += other.no_envelope
        for topic, buckets in other.latency.items():
            self.latency.setdefault(topic, collections.Counter()).update(buckets)
        for tp, offset in other.start.items():
            self.start[tp] = min(offset, self.start.get(tp, offset))
        for tp, offset in other.vouched.items():
            self.vouched[tp] = max(offset, self.vouched.get(tp, offset))
        # The most definite state wins: a clean end over an open window over a broken one.
        rank = {CLOSED: 3, OPEN: 2, BROKEN: 1, PENDING: 0}
        if rank[other.state] > rank[self.state]:
            self.state, self.end, self.end_reason = other.state, other.end, other.end_reason
            self.subscription = other.subscription or self.subscription
        self.errors = (self.errors + other.errors)[:20]

    def __repr__(self) -> str:
        return f"<SubscriberLedger {self.subscriber} {self.state} received={self.received_count()}>"


class SubscriberLedgers:
    """Every subscriber ledger of a test, by subscriber name; mergeable across processes."""

    def __init__(self, ledgers: Iterable[SubscriberLedger] = ()) -> None:
        self._ledgers: dict[str, SubscriberLedger] = {}
        for ledger in ledgers:
            self.add(ledger)

    def add(self, ledger: SubscriberLedger) -> None:
        current = self._ledgers.get(ledger.subscriber)
        if current is None:
            self._ledgers[ledger.subscriber] = ledger
        else:
            current.merge(ledger)

    def merge(self, other: SubscriberLedgers) -> None:
        for ledger in other:
            self.add(ledger)

    def __iter__(self) -> Iterator[SubscriberLedger]:
        return iter(self._ledgers.values())

    def __len__(self) -> int:
        return len(self._ledgers)

    def __contains__(self, subscriber: object) -> bool:
        return subscriber in self._ledgers

    def to_json(self) -> list[dict[str, Any]]:
        return [ledger.to_dict() for ledger in self._ledgers.values()]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> SubscriberLedgers:
        return cls(SubscriberLedger.from_dict(item) for item in data)
