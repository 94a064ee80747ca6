"""The gateway's core, without I/O: subscriptions, per-subscriber bounded queues, positions.

The front end (:mod:`ingestload.fanout.server`) feeds it Kafka records in offset order per
partition (:meth:`Hub.dispatch`) and the subscribers' requests, and asks it for the frames
to write to a connection that can take more (:meth:`Hub.take`). Everything the exactness
contract promises (see :mod:`ingestload.fanout.protocol`) is decided here, so it is tested
without sockets or brokers.

How a record reaches subscribers: subscribers with the same topics and filter form a
*group*; each record is matched once per group, and each subscriber's queue is extended
with its group's matches (a C-level ``deque.extend`` of shared, pre-rendered fragments). The
front end then writes every queue its socket will take, and :meth:`Hub.enforce` bounds what
is left waiting at ``queue_limit`` messages; beyond that the *policy* decides:

* ``drop-oldest`` — the oldest queued messages are dropped, counted, and announced to the
  subscriber in a ``dropped`` frame ahead of the next messages;
* ``disconnect`` — the queue is dropped (counted), the subscriber gets a final
  ``unsubscribed`` frame with reason ``slow_subscriber`` and its window's end, and the front
  end closes the connection.

Example::

    hub = Hub("w0", {("gov-alarm", 0): 100}, queue_limit=1000)
    frame = hub.subscribe(conn, Subscribe(("gov-alarm",), None, "view-1"), now=0.0)
    hub.dispatch([Record("gov-alarm", 0, 100, fragment, document)])
    hub.take(conn, now=0.1)      # [b'{"type":"messages","messages":[…]}', b'{"type":"progress",…}']
    hub.enforce(hub.subscribers) # the policy, on what the sockets did not take
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ingestload.fanout import protocol
from ingestload.fanout.errors import ProtocolError
from ingestload.fanout.filters import FieldFilter, extract, value_key
from ingestload.fanout.protocol import Positions, Subscribe, TopicPartition

DROP_OLDEST = "drop-oldest"
DISCONNECT = "disconnect"
POLICIES = (DROP_OLDEST, DISCONNECT)

REQUESTED, SLOW_SUBSCRIBER, SHUTTING_DOWN = "requested", "slow_subscriber", "shutting_down"


class Dispatched(NamedTuple):
    """What a dispatch decided beyond queueing."""

    broken: list[Hashable]
    """Connections whose window cannot be kept (Kafka's log went back): close them without an end."""


class Record(NamedTuple):
    """One Kafka message, ready to push."""

    topic: str
    """Topic it was read from."""
    partition: int
    """Partition it was read from."""
    offset: int
    """Its offset."""
    fragment: bytes
    """The message as pushed (:func:`ingestload.fanout.protocol.message_fragment`)."""
    document: Any
    """The value as parsed JSON for filters; ``None`` when it is not JSON."""


@dataclass(frozen=True)
class PushFaults:
    """Fault injection for tests (off by default): misbehave towards chosen subscribers."""

    skip_every: int = 0
    """Silently skip every Nth message pushed to a chosen subscriber (0 = off)."""
    duplicate_every: int = 0
    """Push every Nth message to a chosen subscriber twice (0 = off)."""
    label: str | None = None
    """Only subscribers whose ``id`` is this (``None``: every subscriber)."""

    @property
    def active(self) -> bool:
        return bool(self.skip_every or self.duplicate_every)

    def applies_to(self, label: str | None) -> bool:
        return self.active and (self.label is None or self.label == label)

    def describe(self) -> str:
        if not self.active:
            return "off"
        who = f"id={self.label}" if self.label is not None else "every subscriber"
        parts = [f"skip every {self.skip_every}"] if self.skip_every else []
        parts += [f"duplicate every {self.duplicate_every}"] if self.duplicate_every else []
        return f"{', '.join(parts)} ({who})"


@dataclass(eq=False)
class Subscriber:
    """One subscription of one connection (the hub's state for it)."""

    connection: Hashable
    subscription: str
    label: str | None
    topics: frozenset[str]
    filter: FieldFilter | None
    start: Positions
    queue: collections.deque[bytes] = field(default_factory=collections.deque)
    controls: list[bytes] = field(default_factory=list)
    """Frames to send before the next messages (``partitions``)."""
    pushed: int = 0
    dropped_pending: int = 0
    dropped_total: int = 0
    skipped: int = 0
    duplicated: int = 0
    fault_counter: int = 0
    faulty: bool = False
    progress_requested: bool = False
    progress_sent: Positions = field(default_factory=dict)
    last_progress_at: float = 0.0
    ending: tuple[str, Positions] | None = None
    """Set when the subscription ends: (reason, end positions); the queue drains first."""

    def describe(self) -> dict[str, Any]:
        return {
            "subscription": self.subscription,
            "id": self.label,
            "topics": sorted(self.topics),
            "filter": None if self.filter is None else self.filter.to_json(),
            "queued": len(self.queue),
            "pushed": self.pushed,
            "dropped": self.dropped_total,
            "ending": None if self.ending is None else self.ending[0],
        }


class _Group:
    """Subscribers with the same topics and filter: each record is matched once for all of them."""

    __slots__ = ("batch", "filter", "keys", "members", "topics")

    def __init__(self, topics: frozenset[str], filter: FieldFilter | None) -> None:
        self.topics = topics
        self.filter = filter
        self.keys = filter.keys() if filter is not None else frozenset()
        self.members: list[Subscriber] = []
        self.batch: list[bytes] = []


class Hub:
    """Subscriptions and their queues for one gateway process (see the module doc)."""

    def __init__(
        self,
        worker: str,
        positions: Mapping[TopicPartition, int],
        *,
        queue_limit: int = 10_000,
        policy: str = DROP_OLDEST,
        frame_messages: int = 1000,
        progress_interval: float = 1.0,
        faults: PushFaults | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        self.worker = worker
        self.positions: Positions = dict(positions)
        """Per partition, the next offset this hub will dispatch."""
        self.queue_limit = queue_limit
        self.policy = policy
        self.frame_messages = frame_messages
        self.progress_interval = progress_interval
        self.faults = faults or PushFaults()
        self.subscribers: dict[Hashable, Subscriber] = {}
        self._groups: dict[tuple[frozenset[str], FieldFilter | None], _Group] = {}
        self._by_topic: dict[str, list[_Group]] = {}
        self._serial = 0
        self.totals: collections.Counter[str] = collections.Counter()
        self.dirty: set[Hashable] = set()
        """Connections with something new to take since the front end last looked."""

    # -- topics --------------------------------------------------------------------------

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(t for t, _ in self.positions)

    def add_partitions(self, start: Mapping[TopicPartition, int]) -> None:
        """Partitions that appeared after the start, delivered from ``start``; subscribers of
        their topics are told (a ``partitions`` frame) before any of their messages."""
        new = {tp: o for tp, o in start.items() if tp not in self.positions}
        if not new:
            return
        self.positions.update(new)
        for sub in self.subscribers.values():
            if sub.ending is not None:
                continue
            mine = {tp: o for tp, o in new.items() if tp[0] in sub.topics}
            if mine:
                sub.start.update(mine)
                sub.controls.append(protocol.partitions(mine))
                self.dirty.add(sub.connection)

    def _positions_for(self, topics: Iterable[str]) -> Positions:
        wanted = set(topics)
        return {tp: o for tp, o in self.positions.items() if tp[0] in wanted}

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(self, connection: Hashable, request: Subscribe, now: float) -> bytes:
        """Start a subscription; returns the ``subscribed`` frame to send before anything else."""
        current = self.subscribers.get(connection)
        if current is not None:
            raise ProtocolError(
                "already_subscribed",
                f"this connection already has subscription {current.subscription}; "
                "unsubscribe first (one subscription per connection)",
            )
        unknown = sorted(set(request.topics) - self.topics)
        if unknown:
            raise ProtocolError(
                "unknown_topic",
                f"this gateway does not serve {', '.join(unknown)}; "
                f"it serves {', '.join(sorted(self.topics))}",
            )
        self._serial += 1
        start = self._positions_for(request.topics)
        sub = Subscriber(
            connection,
            f"{self.worker}-{self._serial}",
            request.id,
            frozenset(request.topics),
            request.filter,
            dict(start),
            faulty=self.faults.applies_to(request.id),
            progress_sent=dict(start),
            last_progress_at=now,
        )
        self.subscribers[connection] = sub
        key = (sub.topics, sub.filter)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(sub.topics, sub.filter)
            for topic in sub.topics:
                self._by_topic.setdefault(topic, []).append(group)
        group.members.append(sub)
        self.totals["subscribed"] += 1
        return protocol.subscribed(sub.subscription, request, start)

    def unsubscribe(self, connection: Hashable, reason: str = REQUESTED) -> None:
        """End a subscription cleanly: what is queued is sent, then ``unsubscribed`` with its end."""
        sub = self.subscribers.get(connection)
        if sub is None or sub.ending is not None:
            raise ProtocolError("not_subscribed", "this connection has no subscription to end")
        self._end(sub, reason)
        self.dirty.add(connection)

    def request_progress(self, connection: Hashable) -> None:
        sub = self.subscribers.get(connection)
        if sub is None:
            raise ProtocolError("not_subscribed", "progress needs a subscription; subscribe first")
        sub.progress_requested = True
        self.dirty.add(connection)

    def shutdown(self) -> None:
        """End every subscription (reason ``shutting_down``): each gets its queue and a clean end."""
        for sub in list(self.subscribers.values()):
            if sub.ending is None:
                self._end(sub, SHUTTING_DOWN)
                self.dirty.add(sub.connection)

    def disconnect(self, connection: Hashable) -> None:
        """The connection is gone: forget its subscription (no end was sent)."""
        sub = self.subscribers.pop(connection, None)
        if sub is None:
            return
        if sub.ending is None:
            self._leave_group(sub)
            self.totals["lost_connections"] += 1

    def _end(self, sub: Subscriber, reason: str) -> None:
        self._leave_group(sub)
        sub.ending = (reason, self._positions_for(sub.topics))

    def _leave_group(self, sub: Subscriber) -> None:
        key = (sub.topics, sub.filter)
        group = self._groups.get(key)
        if group is None:
            return
        group.members.remove(sub)
        if not group.members:
            del self._groups[key]
            for topic in sub.topics:
                groups = self._by_topic[topic]
                groups.remove(group)
                if not groups:
                    del self._by_topic[topic]

    # -- the hot path --------------------------------------------------------------------

    def dispatch(self, records: Sequence[Record]) -> Dispatched:
        """Queue ``records`` (offset order per partition) for every matching subscriber."""
        by_topic = self._by_topic
        positions = self.positions
        touched: list[_Group] = []
        reset: set[TopicPartition] = set()
        for record in records:
            tp = (record.topic, record.partition)
            if record.offset < positions.get(tp, 0):
                reset.add(tp)  # the log went back (a broker that lost it): see _reset
            positions[tp] = record.offset + 1
            groups = by_topic.get(record.topic)
            if not groups:
                continue
            for group in groups:
                if group.filter is not None and (
                    record.document is None
                    or value_key(extract(record.document, group.filter.path)) not in group.keys
                ):
                    continue
                if not group.batch:
                    touched.append(group)
                group.batch.append(record.fragment)
        self.totals["records"] += len(records)
        broken = self._reset(reset) if reset else []
        dirty = self.dirty
        for group in touched:
            batch = group.batch
            group.batch = []
            for sub in group.members:
                dirty.add(sub.connection)
                if sub.faulty:
                    self._extend_faulty(sub, batch)
                else:
                    sub.queue.extend(batch)
                    sub.pushed += len(batch)
            self.totals["deliveries"] += len(batch) * len(group.members)
        return Dispatched(broken)

    def enforce(self, connections: Iterable[Hashable]) -> list[Hashable]:
        """Apply the slow-subscriber policy to queues over the limit — call it after writing what
        the sockets would take, so that only what is left waiting counts. Returns the
        connections the disconnect policy ended (flush their end frame, then close them)."""
        ended: list[Hashable] = []
        limit = self.queue_limit
        for connection in connections:
            sub = self.subscribers.get(connection)
            if sub is None or sub.ending is not None:
                continue
            excess = len(sub.queue) - limit
            if excess <= 0:
                continue
            if self.policy == DROP_OLDEST:
                queue = sub.queue
                for _ in range(excess):
                    queue.popleft()
                sub.dropped_pending += excess
                sub.dropped_total += excess
                self.totals["dropped"] += excess
            else:
                dropped = len(sub.queue)
                sub.queue.clear()
                sub.dropped_total += dropped
                self.totals["dropped"] += dropped
                self.totals["slow_disconnects"] += 1
                self._end(sub, SLOW_SUBSCRIBER)
                ended.append(connection)
        return ended

    def _reset(self, partitions: set[TopicPartition]) -> list[Hashable]:
        """Kafka's log went back on ``partitions`` (offsets already delivered come again, with
        other messages): no window on them can be kept, so their subscriptions are forgotten
        without an end and the front end drops their connections (the subscribers' windows are
        then broken, and the verdict cannot pass them)."""
        topics = {t for t, _ in partitions}
        broken = [c for c, s in self.subscribers.items() if s.topics & topics]
        for connection in broken:
            self.disconnect(connection)
        self.totals["log_resets"] += len(partitions)
        return broken

    def _extend_faulty(self, sub: Subscriber, batch: list[bytes]) -> None:
        skip, dup = self.faults.skip_every, self.faults.duplicate_every
        for fragment in batch:
            sub.fault_counter += 1
            n = sub.fault_counter
            if skip and n % skip == 0:
                sub.skipped += 1
                self.totals["fault_skipped"] += 1
                continue
            sub.queue.append(fragment)
            sub.pushed += 1
            if dup and n % dup == 0:
                sub.queue.append(fragment)
                sub.duplicated += 1
                self.totals["fault_duplicated"] += 1

    # -- what to write ---------------------------------------------------------------------

    def pending(self, connection: Hashable, now: float) -> bool:
        """True when :meth:`take` would return frames for this connection now."""
        sub = self.subscribers.get(connection)
        if sub is None:
            return False
        return bool(
            sub.queue
            or sub.controls
            or sub.dropped_pending
            or sub.ending is not None
            or self._progress_due(sub, now)
        )

    def _progress_due(self, sub: Subscriber, now: float) -> bool:
        if sub.progress_requested:
            return True
        if now - sub.last_progress_at < self.progress_interval:
            return False
        return any(self.positions[tp] != o for tp, o in sub.progress_sent.items()) or len(
            sub.progress_sent
        ) != len(sub.start)

    def take(self, connection: Hashable, now: float) -> tuple[list[bytes], str | None]:
        """Every frame due on ``connection``, in order, and the end reason when the subscription
        ended with them (the subscriber is then forgotten)."""
        sub = self.subscribers.get(connection)
        if sub is None:
            return [], None
        frames = sub.controls
        sub.controls = []
        if sub.dropped_pending:
            frames.append(protocol.dropped(sub.dropped_pending, sub.dropped_total))
            sub.dropped_pending = 0
        queue = sub.queue
        step = self.frame_messages
        while queue:
            if len(queue) <= step:
                frames.append(protocol.messages(queue))
                queue.clear()
            else:
                frames.append(protocol.messages([queue.popleft() for _ in range(step)]))
        self.totals["frames"] += len(frames)
        if sub.ending is not None:
            reason, end = sub.ending
            frames.append(protocol.unsubscribed(sub.subscription, reason, end, sub.dropped_total))
            del self.subscribers[connection]
            self.totals[f"ended_{reason}"] += 1
            return frames, reason
        if self._progress_due(sub, now):
            current = self._positions_for(sub.topics)
            frames.append(protocol.progress(current))
            sub.progress_sent = current
            sub.progress_requested = False
            sub.last_progress_at = now
        return frames, None

    # -- stats -----------------------------------------------------------------------------

    def stats(self, limit: int = 1000) -> dict[str, Any]:
        """Counters, policy and (up to ``limit``) subscribers, for ``GET /stats``."""
        subs = list(self.subscribers.values())
        return {
            "worker": self.worker,
            "policy": self.policy,
            "queue_limit": self.queue_limit,
            "faults": self.faults.describe(),
            "subscribers": len(subs),
            "queued": sum(len(s.queue) for s in subs),
            "counts": dict(sorted(self.totals.items())),
            "positions": protocol.positions_json(self.positions),
            "subscriptions": [s.describe() for s in subs[:limit]],
        }
