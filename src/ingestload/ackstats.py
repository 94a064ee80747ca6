"""AckStats: Kafka acknowledgements into Locust's statistics at 100,000+ per second.

Every acknowledged message counts in Locust's stats exactly as one ``request`` event would
count it: request type ``KAFKA``, name = topic, response time = produce-to-ack in ms,
length = value bytes. Firing a real event per message costs ~3 µs in Locust's listener
alone (two ``StatsEntry.log`` calls), a third of the per-message budget at 100k msg/s. So
when Locust's own stats listener is the *only* listener of the ``request`` event, the
acknowledgements are gathered per topic and added to ``environment.stats`` in bulk with
``StatsEntry.extend`` — the merge Locust's master uses for worker reports — at most every
:data:`PUBLISH_INTERVAL` and whenever the wall-clock second changes (so per-second counts
land in the right second), and always before anyone reads the totals (:meth:`AckStats.publish`).

When anything else listens to ``request`` (a plugin exporting each request, a test's
counter), every message fires a real event instead, so that listener sees each one.
Failed deliveries always fire a real event (they are rare and carry an exception).

Example::

    stats = AckStats(environment, "KAFKA", fire)
    stats.pending[msg.topic()].append(msg)   # in the delivery callback, per acknowledged message
    stats.flush()         # after each poll: publishes when due
    stats.publish()       # before reading totals (drain, stop)
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import locust.stats
from confluent_kafka import Message
from locust.stats import StatsEntry

#: Longest time acknowledged messages wait before they appear in Locust's stats.
PUBLISH_INTERVAL = 0.05
#: Locust's own bucketing (ms rounded to ~2 significant digits); a replacement installed at
#: runtime (``locust.stats.bucket_response_time = …``) is honoured.
_LOCUST_BUCKET = locust.stats.bucket_response_time

_NO_CONTEXT: dict[str, Any] = {}


def locust_stats_only(event: Any) -> bool:
    """True when the only listener of ``event`` is the one a Locust runner adds to fill its stats."""
    handlers = getattr(event, "_handlers", None)
    if not isinstance(handlers, list) or len(handlers) != 1:
        return False
    handler = handlers[0]
    return (
        getattr(handler, "__module__", None) == "locust.runners"
        and getattr(handler, "__qualname__", "") == "Runner.__init__.<locals>.on_request"
    )


def bucket_counts(response_times: list[float]) -> Counter[int]:
    """``{bucket: count}`` as Locust's ``StatsEntry._log_response_time`` would build it."""
    bucket = locust.stats.bucket_response_time
    if bucket is not _LOCUST_BUCKET:
        return Counter(map(bucket, response_times))
    # Locust rounds to the ms below 100 ms: the builtin does that without a Python call each.
    if max(response_times) < 100:
        return Counter(map(round, response_times))
    counts = Counter(map(round, [t for t in response_times if t < 100]))
    counts.update(map(bucket, [t for t in response_times if t >= 100]))
    return counts


class AckStats:
    """Gathers acknowledged messages per topic and adds them to Locust's stats in bulk."""

    __slots__ = ("_at", "_fire", "_second", "environment", "event", "pending", "request_type")

    def __init__(self, environment: Any, request_type: str, fire: Callable[..., None]) -> None:
        self.environment = environment
        self.event = environment.events.request
        self.request_type = request_type
        self._fire = fire
        self.pending: defaultdict[str, list[Any]] = defaultdict(list)
        """Acknowledged messages (confluent-kafka ``Message``) not yet in the stats, by topic: the
        delivery callback appends to it directly (no call per message)."""
        self._at = 0.0
        self._second = 0

    def flush(self, now: float | None = None) -> None:
        """Publish when :data:`PUBLISH_INTERVAL` has passed or the second changed (call after each poll)."""
        if not self.pending:
            return
        now = time.time() if now is None else now
        if now - self._at >= PUBLISH_INTERVAL or int(now) != self._second:
            self.publish(now)

    def publish(self, now: float | None = None) -> None:
        """Put everything gathered so far into Locust's stats now."""
        if not self.pending:
            return
        now = time.time() if now is None else now
        pending = dict(self.pending)
        self.pending.clear()
        self._at, self._second = now, int(now)
        if not locust_stats_only(self.event):
            self._fire_each(pending)
            return
        stats = self.environment.stats
        for topic, messages in pending.items():
            entry = self._entry(stats, topic, messages, now)
            stats.entries[(topic, self.request_type)].extend(entry)
            stats.total.extend(entry)

    def _entry(self, stats: Any, topic: str, messages: list[Any], now: float) -> StatsEntry:
        """A StatsEntry holding what one request event per message would have logged at ``now``."""
        latencies = map(Message.latency, messages)
        times: list[Any] = [latency * 1000.0 if latency is not None else 0.0 for latency in latencies]
        entry = StatsEntry(stats, topic, self.request_type)
        entry.start_time = now
        entry.last_request_timestamp = now
        entry.num_requests = len(messages)
        entry.num_reqs_per_sec[int(now)] = len(messages)
        # Locust annotates response times as int; it logs whatever the event carried (floats here).
        entry.total_response_time = sum(times)
        entry.min_response_time = min(times)
        entry.max_response_time = max(times)
        entry.total_content_length = sum(map(len, messages))
        entry.response_times = dict(bucket_counts(times))
        return entry

    def _fire_each(self, pending: dict[str, list[Any]]) -> None:
        fire, request_type = self._fire, self.request_type
        for topic, messages in pending.items():
            for msg in messages:
                latency = msg.latency()
                fire(
                    request_type=request_type,
                    name=topic,
                    response_time=latency * 1000.0 if latency is not None else 0.0,
                    response_length=len(msg),
                    exception=None,
                    context=_NO_CONTEXT,
                )
