"""Received fan-out messages into Locust's statistics: one ``WS`` request per message, in bulk.

Each message a subscriber receives counts in Locust's stats as one ``request`` event would:
request type ``WS``, name = topic, response time = the envelope's send time → received (the
fan-out end-to-end latency, ms); a message without an envelope counts as a request without a
response time. As for Kafka acknowledgements (:mod:`ingestload.locust.kafka_stats`, whose helpers
this reuses), firing a real event per message would cost Locust's stats listener more than the
whole subscriber costs per message (``bench/ws_client.py``), so Locust's own listener is served
in bulk (``StatsEntry.extend`` per topic, at most every
:data:`~ingestload.locust.kafka_stats.PUBLISH_INTERVAL`
and whenever the second changes), and every *other* listener of ``request`` is called once per
message, as ``EventHook.fire`` would call it — :class:`~ingestload.locust.kafka_stats.AckStats`' own
publishing, fed latencies instead of Kafka messages.

:class:`ObservedLedger` is the hook: a :class:`~ingestload.fanout.ledger.SubscriberLedger` whose
:meth:`record` (called once per received message) also hands the message's latency to the
process's :class:`WsStats`.

Example::

    stats = WsStats(environment)
    ledger = ObservedLedger(stats, "local-0", ["gov-alarm"])
    sub = Subscriber.connect(url, ledger.subscriber, ledger.topics, ledger=ledger)
    sub.pump(0.25)
    stats.flush()             # after each read: publishes when due
"""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from locust.stats import StatsEntry

from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.ledger import ENVELOPE_FIELD, SubscriberLedger
from ingestload.locust.kafka_stats import AckStats, call_listeners, stats_entry

WS = "WS"
_NO_CONTEXT: dict[str, Any] = {}


class WsStats(AckStats):
    """Received messages' latencies per topic, added to Locust's stats in bulk (as :class:`AckStats`
    does for acknowledgements: the same publishing, other items)."""

    __slots__ = ()

    def __init__(self, environment: Any, request_type: str = WS) -> None:
        super().__init__(environment, request_type)
        self.pending: defaultdict[str, list[Any]]
        """Per topic, the latency (ms, ``float``) of every received message not yet in the stats
        (``None``: no envelope); :meth:`ObservedLedger.record` appends to it."""

    def _entry(self, stats: Any, topic: str, latencies: list[Any], now: float) -> StatsEntry:
        # A subscriber's clock may run behind the producer's (another machine): never below 0.
        times = [ms if ms > 0 else 0.0 for ms in latencies if ms is not None]
        return stats_entry(stats, topic, self.request_type, times, 0, now, len(latencies) - len(times))

    def _call_each(self, listeners: list[Callable[..., Any]], pending: dict[str, list[Any]]) -> None:
        for topic, latencies in pending.items():
            for ms in latencies:
                call_listeners(
                    listeners,
                    request_type=self.request_type,
                    name=topic,
                    response_time=None if ms is None else max(ms, 0.0),
                    response_length=0,
                    exception=None,
                    context=_NO_CONTEXT,
                )

    def fire(self, name: str, response_time: float, exception: BaseException | None = None) -> None:
        """One ``WS`` request that is not a message — a subscription confirmed (its time to confirm),
        a connection refused or lost (with the error): a real event to every listener."""
        self.event.fire(
            request_type=self.request_type,
            name=name,
            response_time=response_time,
            response_length=0,
            exception=exception,
            context={},
        )


class ObservedLedger(SubscriberLedger):
    """A subscriber ledger that also counts every received message in Locust's stats (``WS``)."""

    def __init__(
        self,
        stats: WsStats,
        subscriber: str,
        topics: Iterable[str],
        filter: FieldFilter | None = None,
        *,
        envelope_field: str = ENVELOPE_FIELD,
    ) -> None:
        super().__init__(subscriber, topics, filter, envelope_field=envelope_field)
        self.host = socket.gethostname()  # the verdict compares it with the senders' hosts (one clock?)
        self._pending = stats.pending

    def record(
        self,
        topic: str,
        partition: int,
        offset: int,
        sent_at_us: int | None,
        received_us: int,
        value: bytes | None = None,
    ) -> None:
        """File the message, then its latency for Locust (every received copy is a ``WS`` request)."""
        SubscriberLedger.record(self, topic, partition, offset, sent_at_us, received_us, value)
        self._pending[topic].append(None if sent_at_us is None else (received_us - sent_at_us) / 1000.0)
