"""Live rates per path and the rate history behind the chart, on the master (or the local process).

A process's senders and pacers give cumulative counters for the run; rates are their change
over time. Each sending process is one *source*: a local runner samples itself every second; a
master files each worker's report (every 3 s, stamped with the worker's own clock), so every
rate is exact over the span between two reports of the same source and the sources add up — as
:class:`~ingestload.status.WorkerRates` does for the status line.

Example::

    rates = LiveRates()
    rates.observe("local", 100.0, {"kafka": PathSample(0, 0, 0, 0, 0, 0, 0.0, LatenessHistogram())})
    rates.observe("local", 101.0, {"kafka": PathSample(1000, 999, 998, 1, 0, 0, 0.001, h)})
    rates.current()["kafka"].offered       # 999.0 msg/s
    history = RateHistory()
    history.add(101.0, rates.total())      # one point of the chart
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from ingestload.rate.lateness import EDGES, LatenessHistogram

#: A source whose last report is older than this (seconds, receiver's clock) no longer counts.
STALE_AFTER = 10.0
#: Points the history keeps; past it, neighbouring points are merged (the chart's resolution halves).
HISTORY_POINTS = 7200


class PathSample(NamedTuple):
    """Cumulative counters of one path in one process for the current run."""

    intended: float
    """Messages the schedule asked for so far (the target count)."""
    offered: int
    """Messages handed to the client (sent)."""
    acked: int
    """Messages acknowledged (delivery report OK, HTTP 2xx)."""
    in_flight: int
    """Sent, not answered yet (a gauge, not cumulative)."""
    late: int
    """Messages sent more than 100 ms after their intended time."""
    dropped: int
    """Messages skipped by ``--max-lateness``."""
    max_lateness: float
    """How late (seconds) the oldest message of the latest batch left."""
    lateness: LatenessHistogram
    """Offered messages per lateness bucket."""

    def to_wire(self) -> dict[str, Any]:
        """Plain data for a worker report."""
        return {**self._asdict(), "lateness": list(self.lateness.counts)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PathSample:
        return cls(
            float(data["intended"]),
            int(data["offered"]),
            int(data["acked"]),
            int(data["in_flight"]),
            int(data["late"]),
            int(data["dropped"]),
            float(data["max_lateness"]),
            LatenessHistogram(data["lateness"]),
        )


class PathRates(NamedTuple):
    """What the ingestload tab shows for one path (or all of them): rates over the latest span."""

    target: float
    """msg/s the schedule asked for."""
    offered: float
    """msg/s sent."""
    acked: float
    """msg/s acknowledged."""
    in_flight: int
    """Messages sent and not answered yet."""
    lateness_p50: float
    """Seconds; half of the span's messages left at most this late."""
    lateness_p99: float
    """Seconds; 99% of the span's messages left at most this late (``inf``: beyond 100 s)."""
    late: int
    """Messages sent > 100 ms late in the run so far."""
    dropped: int
    """Messages dropped by ``--max-lateness`` in the run so far."""


EMPTY_RATES = PathRates(0.0, 0.0, 0.0, 0, 0.0, 0.0, 0, 0)


def _percentile(histogram: LatenessHistogram, q: float, worst: float) -> float:
    """A lateness percentile, bounded by the exact worst lateness (buckets are coarse)."""
    value = histogram.percentile(q)
    return min(value, worst) if worst > 0 else value


def _sum_histograms(histograms: Iterable[LatenessHistogram]) -> LatenessHistogram:
    total = LatenessHistogram()
    for h in histograms:
        total = total + h
    return total


class _Span(NamedTuple):
    """One source's path between its last two samples."""

    seconds: float
    before: PathSample
    after: PathSample


class LiveRates:
    """Rates per path from the cumulative samples of every sending process (see module doc)."""

    def __init__(self, stale_after: float = STALE_AFTER) -> None:
        self.stale_after = stale_after
        self._last: dict[str, tuple[float, Mapping[str, PathSample]]] = {}
        self._spans: dict[str, tuple[float, dict[str, _Span]]] = {}

    def observe(
        self, source: str, at: float, paths: Mapping[str, PathSample], received: float | None = None
    ) -> None:
        """File ``source``'s cumulative samples as of ``at`` (its clock; ``received``: ours)."""
        received = time.monotonic() if received is None else received
        last = self._last.get(source)
        if last is not None and at <= last[0]:
            return  # the same report again, or one from before
        if last is not None:
            spans = {
                path: _Span(at - last[0], last[1][path], sample)
                for path, sample in paths.items()
                if path in last[1]
            }
            self._spans[source] = (received, spans)
        self._last[source] = (at, dict(paths))

    def clear(self) -> None:
        """Forget every source (a new run begins)."""
        self._last.clear()
        self._spans.clear()

    def _fresh_spans(self, now: float | None) -> list[dict[str, _Span]]:
        now = time.monotonic() if now is None else now
        return [spans for received, spans in self._spans.values() if now - received <= self.stale_after]

    def current(self, now: float | None = None) -> dict[str, PathRates]:
        """Rates per path, summed over the sources heard from lately."""
        by_path: dict[str, list[_Span]] = {}
        for spans in self._fresh_spans(now):
            for path, span in spans.items():
                by_path.setdefault(path, []).append(span)
        return {path: self._rates(spans) for path, spans in sorted(by_path.items())}

    def total(self, now: float | None = None) -> PathRates:
        """Rates of every path together."""
        spans = [span for spans in self._fresh_spans(now) for span in spans.values()]
        return self._rates(spans) if spans else EMPTY_RATES

    @staticmethod
    def _rates(spans: list[_Span]) -> PathRates:
        def rate(field: str) -> float:
            per_second = (
                float(getattr(s.after, field) - getattr(s.before, field)) / s.seconds
                for s in spans
                if s.seconds > 0
            )
            return sum(per_second, 0.0)

        lateness = _sum_histograms(s.after.lateness - s.before.lateness for s in spans)
        worst = max((s.after.max_lateness for s in spans), default=0.0)
        return PathRates(
            target=rate("intended"),
            offered=rate("offered"),
            acked=rate("acked"),
            in_flight=sum(s.after.in_flight for s in spans),
            lateness_p50=_percentile(lateness, 0.5, worst),
            lateness_p99=_percentile(lateness, 0.99, worst),
            late=sum(s.after.late for s in spans),
            dropped=sum(s.after.dropped for s in spans),
        )


_Point = tuple[float, float, float, float, float]


def _mean(a: _Point, b: _Point) -> _Point:
    return (
        (a[0] + b[0]) / 2,
        (a[1] + b[1]) / 2,
        (a[2] + b[2]) / 2,
        (a[3] + b[3]) / 2,
        (a[4] + b[4]) / 2,
    )


class RateHistory:
    """The chart's series: one point per sample of the run's total rates (bounded, see
    :data:`HISTORY_POINTS`: when full, pairs of points merge into their mean)."""

    KEYS = ("time", "target", "offered", "acked", "lateness_p99_ms")

    def __init__(self, limit: int = HISTORY_POINTS) -> None:
        self.limit = max(2, limit)
        self.points: list[_Point] = []

    def add(self, at: float, rates: PathRates) -> None:
        """Add the point of wall-clock time ``at`` (seconds since the epoch)."""
        p99 = rates.lateness_p99 if math.isfinite(rates.lateness_p99) else EDGES[-1]
        self.points.append((at, rates.target, rates.offered, rates.acked, p99 * 1000))
        if len(self.points) > self.limit:
            merged = [_mean(x, y) for x, y in zip(self.points[0::2], self.points[1::2], strict=False)]
            if len(self.points) % 2:
                merged.append(self.points[-1])
            self.points = merged

    def clear(self) -> None:
        self.points.clear()

    def series(self) -> dict[str, list[float]]:
        """Column-wise, as the chart takes it: ``{"time": […], "target": […], …}``."""
        columns: dict[str, list[float]] = {key: [] for key in self.KEYS}
        for point in self.points:
            for key, value in zip(self.KEYS, point, strict=True):
                columns[key].append(round(value, 3))
        return columns
