"""AckStats: Kafka acknowledgements into Locust's statistics at 100,000+ per second.

Every acknowledged message counts in Locust's stats exactly as one ``request`` event would
count it: request type ``KAFKA``, name = topic, response time = produce-to-ack in ms,
length = value bytes. Firing a real event per message costs ~3 µs in Locust's listener
alone (two ``StatsEntry.log`` calls), a third of the per-message budget at 100k msg/s. So
Locust's own stats listener (the one its runner adds) is served in bulk: acknowledgements
are gathered per topic and added to ``environment.stats`` with ``StatsEntry.extend`` — the
merge Locust's master uses for worker reports — at most every :data:`PUBLISH_INTERVAL` and
whenever the wall-clock second changes (so per-second counts land in the right second), and
always before anyone reads the totals (:meth:`AckStats.publish`).

Every *other* listener of ``request`` (a plugin exporting each request, a test's counter)
is called once per message with the usual keyword arguments, as ``EventHook.fire`` would
call it. Failed deliveries always fire a real event to every listener (they are rare and
carry an exception).

Example::

    stats = AckStats(environment, "KAFKA")
    stats.pending[msg.topic()].append(msg)   # in the delivery callback, per acknowledged message
    stats.flush()         # after each poll: publishes when due
    stats.publish()       # before reading totals (drain, stop)
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import locust.stats
from confluent_kafka import Message
from locust.exception import InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopTest, StopUser
from locust.stats import StatsEntry

_log = logging.getLogger("ingestload")
#: Exceptions a listener may raise on purpose to steer Locust: never swallowed.
_LOCUST_CONTROL_FLOW = (StopUser, StopTest, RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet)

#: Longest time acknowledged messages wait before they appear in Locust's stats.
PUBLISH_INTERVAL = 0.05
#: Locust's own bucketing (ms rounded to ~2 significant digits); a replacement installed at
#: runtime (``locust.stats.bucket_response_time = …``) is honoured.
_LOCUST_BUCKET = locust.stats.bucket_response_time

#: Shared by every per-message call: a fresh dict each costs measurable time at 100k/s.
#: Listeners must treat ``context`` as read-only (Locust's own do).
_NO_CONTEXT: dict[str, Any] = {}


def is_locust_stats_listener(handler: Any) -> bool:
    """True for the ``request`` listener a Locust runner adds to fill its stats."""
    return (
        getattr(handler, "__module__", None) == "locust.runners"
        and getattr(handler, "__qualname__", "") == "Runner.__init__.<locals>.on_request"
    )


def split_listeners(event: Any) -> tuple[int, list[Callable[..., Any]]]:
    """(how many of ``event``'s listeners are Locust's stats listener, the other listeners)."""
    handlers = getattr(event, "_handlers", None)
    if not isinstance(handlers, list):  # a Locust without the attribute: call everything
        return 0, [event.fire]
    own = sum(1 for h in handlers if is_locust_stats_listener(h))
    return own, [h for h in handlers if not is_locust_stats_listener(h)]


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

    __slots__ = ("_at", "_second", "environment", "event", "pending", "request_type")

    def __init__(self, environment: Any, request_type: str) -> None:
        self.environment = environment
        self.event = environment.events.request
        self.request_type = request_type
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
        own, others = split_listeners(self.event)
        if own:
            stats = self.environment.stats
            for topic, messages in pending.items():
                entry = self._entry(stats, topic, messages, now)
                for _ in range(own):  # (one runner, one listener; two would count twice, as Locust does)
                    stats.entries[(topic, self.request_type)].extend(entry)
                    stats.total.extend(entry)
        if others:
            self._call_each(others, pending)

    def _entry(self, stats: Any, topic: str, messages: list[Any], now: float) -> StatsEntry:
        """A StatsEntry holding what one request event per message would have logged at ``now``."""
        return stats_entry(
            stats, topic, self.request_type, response_times(messages), sum(map(len, messages)), now
        )

    def _call_each(self, listeners: list[Callable[..., Any]], pending: dict[str, list[Any]]) -> None:
        """Call ``listeners`` once per message, with what a request event carries."""
        request_type = self.request_type
        # One listener (an exporter, a counter) is called directly: a call and a keyword dict less
        # per message. Several go through call_listeners, which shields each from the others.
        call = listeners[0] if len(listeners) == 1 else partial(call_listeners, listeners)
        for topic, messages in pending.items():
            for msg, time_ms in zip(messages, response_times(messages), strict=True):
                try:
                    call(
                        request_type=request_type,
                        name=topic,
                        response_time=time_ms,
                        response_length=len(msg),
                        exception=None,
                        context=_NO_CONTEXT,
                    )
                except _LOCUST_CONTROL_FLOW:
                    raise
                except Exception:
                    _log.exception("Uncaught exception in request event listener %r", call)


def response_times(messages: list[Any]) -> list[float]:
    """Each acknowledged message's produce-to-ack time in ms (0.0 when librdkafka has none)."""
    return [latency * 1000.0 if latency is not None else 0.0 for latency in map(Message.latency, messages)]


def stats_entry(
    stats: Any, name: str, request_type: str, times: list[Any], content_length: int, now: float, none: int = 0
) -> StatsEntry:
    """A StatsEntry holding what one request event per response time in ``times`` (ms), plus ``none``
    events without one, would have logged at ``now``; ``content_length`` is their bytes together."""
    entry = StatsEntry(stats, name, request_type)
    entry.start_time = now
    entry.last_request_timestamp = now
    entry.num_requests = len(times) + none
    entry.num_none_requests = none
    entry.num_reqs_per_sec[int(now)] = len(times) + none
    entry.total_content_length = content_length
    if times:
        # Locust annotates response times as int; it logs whatever the event carried (floats here).
        entry.total_response_time = sum(times)
        entry.min_response_time = min(times)
        entry.max_response_time = max(times)
        entry.response_times = dict(bucket_counts(times))
    return entry


def call_listeners(listeners: list[Callable[..., Any]], **kwargs: Any) -> None:
    """Call each listener as ``EventHook.fire`` does: one that raises is logged, the rest still run,
    Locust's control-flow exceptions propagate."""
    for listener in listeners:
        try:
            listener(**kwargs)
        except _LOCUST_CONTROL_FLOW:
            raise
        except Exception:
            _log.exception("Uncaught exception in request event listener %r", listener)
