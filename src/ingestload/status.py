"""The periodic status line, in the spirit of seed 000's per-second print.

Example output::

    run 5f3a9c0b | target 2,775/s | sent 2,771/s | acked 2,770/s | total 13,850 | \
in-flight 21 | backpressure 0 | failed 0 | lateness p50 0.41 ms p99 1.9 ms max 3 ms | late 0 | dropped 0

Rates are computed from the change of cumulative totals between two lines. On a master,
whose totals are sums of worker reports that arrive every 3 s, that would alias (a 5 s
interval holds one report of a worker, or two): there each worker's rates come from its own
reports' timestamps (:class:`WorkerRates`) and are summed. With pacing
numbers (``pace``), ``target`` is what the schedule asked for over the interval (it
follows a ramp), and ``lateness`` is how late the interval's messages left against their
intended times; ``late`` (sent > 100 ms late) and ``dropped`` (``--max-lateness``) are
totals for the run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ingestload.rate.lateness import PaceSnapshot, describe_lateness, interval

COUNTER_KEYS = ("sent", "acked", "failed", "in_flight", "backpressure", "undelivered")


def add_counters(reports: list[Mapping[str, int]]) -> dict[str, int]:
    """Sum counter snapshots from several processes."""
    total = dict.fromkeys(COUNTER_KEYS, 0)
    for report in reports:
        for key in COUNTER_KEYS:
            total[key] += int(report.get(key, 0))
    return total


def format_rate(rate: float | None) -> str:
    """``2,775/s``, or ``unlimited`` for ``None``."""
    return "unlimited" if rate is None else f"{rate:,.0f}/s"


class WorkerRates:
    """Master: each worker's msg/s from the change between its last two reports, summed.

    A report carries the worker's cumulative ``sent``/``acked``/``target`` and the worker's
    own clock (``at``), so a worker's rate is exact over the span between its reports,
    whatever the master's status interval. A worker whose last report is older than
    :attr:`stale_after` seconds (master's clock) no longer counts.

    Example::

        rates = WorkerRates()
        rates.report("w1", at=100.0, values={"sent": 0, "acked": 0, "target": 0})
        rates.report("w1", at=103.0, values={"sent": 30_000, "acked": 29_990, "target": 30_000})
        rates.totals()      # {"sent": 10000.0, "acked": 9996.67, "target": 10000.0}
    """

    KEYS = ("sent", "acked", "target")

    def __init__(self, stale_after: float = 10.0) -> None:
        self.stale_after = stale_after
        self._last: dict[str, tuple[float, Mapping[str, float]]] = {}
        self._rates: dict[str, tuple[float, dict[str, float]]] = {}

    def report(
        self, worker: str, at: float, values: Mapping[str, float], received: float | None = None
    ) -> None:
        """File a worker's cumulative values as of ``at`` (its clock); ``received``: master's clock."""
        received = time.monotonic() if received is None else received
        last = self._last.get(worker)
        if last is not None and at > last[0]:
            span = at - last[0]
            rates = {
                key: (float(values.get(key, 0)) - float(last[1].get(key, 0))) / span for key in self.KEYS
            }
            self._rates[worker] = (received, rates)
        if last is None or at > last[0]:
            self._last[worker] = (at, dict(values))

    def totals(self, now: float | None = None) -> dict[str, float]:
        """Summed rates of the workers heard from within :attr:`stale_after` seconds."""
        now = time.monotonic() if now is None else now
        total = dict.fromkeys(self.KEYS, 0.0)
        for received, rates in self._rates.values():
            if now - received <= self.stale_after:
                for key in self.KEYS:
                    total[key] += rates[key]
        return total

    def clear(self) -> None:
        """Forget every worker (a new run begins)."""
        self._last.clear()
        self._rates.clear()


@dataclass
class StatusLine:
    """Turns successive cumulative counter snapshots into status lines."""

    run_id: str
    target: float | None
    """Target msg/s for the run (``None`` = unlimited)."""
    _last: dict[str, int] = field(default_factory=dict)
    _last_t: float | None = None
    _last_pace: PaceSnapshot | None = None

    def line(
        self,
        counters: Mapping[str, int],
        lag_s: float,
        now: float | None = None,
        pace: PaceSnapshot | None = None,
        verified: Mapping[str, int] | None = None,
        rates: Mapping[str, float] | None = None,
    ) -> str:
        """The next status line for ``counters`` (and ``pace``), cumulative since the run started.

        ``verified`` adds the verifier's live view: seen, unseen (acked, not seen yet),
        duplicated and corrupted. ``rates`` (``sent``/``acked``/``target`` msg/s, e.g. from
        :class:`WorkerRates`) replaces the rates computed from the change of the totals.
        """
        now = time.time() if now is None else now
        elapsed = (now - self._last_t) if self._last_t is not None else 0.0
        sent_rate = acked_rate = 0.0
        target = self.target
        if elapsed > 0:
            sent_rate = (counters.get("sent", 0) - self._last.get("sent", 0)) / elapsed
            acked_rate = (counters.get("acked", 0) - self._last.get("acked", 0)) / elapsed
            if pace is not None and self._last_pace is not None and target is not None:
                target = (pace.intended - self._last_pace.intended) / elapsed
        if rates is not None:
            sent_rate, acked_rate = rates.get("sent", 0.0), rates.get("acked", 0.0)
            if target is not None:
                target = rates.get("target", 0.0)
        recent = interval(self._last_pace, pace) if pace is not None and self._last_pace is not None else pace
        self._last, self._last_t, self._last_pace = dict(counters), now, pace
        parts = [
            f"run {self.run_id[:8]}",
            f"target {format_rate(target)}",
            f"sent {sent_rate:,.0f}/s",
            f"acked {acked_rate:,.0f}/s",
            f"total {counters.get('acked', 0):,}",
            f"in-flight {counters.get('in_flight', 0):,}",
            f"backpressure {counters.get('backpressure', 0):,}",
            f"failed {counters.get('failed', 0):,}",
        ]
        if pace is None or recent is None:
            parts.append(f"lag max {lag_s * 1000:,.0f} ms")
        else:
            parts += [
                f"lateness {describe_lateness(recent, lag_s)}",
                f"late {pace.late:,}",
                f"dropped {pace.dropped:,}",
            ]
        if verified is not None:
            parts += [
                f"seen {verified.get('seen', 0):,}",
                f"unseen {verified.get('unseen', 0):,}",
                f"dup {verified.get('duplicated', 0):,}",
                f"corrupt {verified.get('corrupted', 0):,}",
                f"misrouted {verified.get('misrouted', 0):,}",
            ]
        return " | ".join(parts)


def format_summary(counters: Mapping[str, int]) -> str:
    """The one-line account printed when a run stops."""
    return (
        f"sent={counters.get('sent', 0):,} acked={counters.get('acked', 0):,} "
        f"failed={counters.get('failed', 0):,} undelivered={counters.get('undelivered', 0):,} "
        f"backpressure={counters.get('backpressure', 0):,}"
    )
