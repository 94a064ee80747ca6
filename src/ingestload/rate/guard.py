"""The rate guard: fail a run whose offered rate stayed below target for too long.

``--min-rate-ratio 0.95 --min-rate-window 10s`` means: if, for longer than 10 seconds in
a row, we sent less than 95% of what the target asked for, the system under test (or the
load generator) could not keep up and the run fails with exit code 5
(:attr:`~ingestload.verdicts.ExitCode.RATE_SHORTFALL`) —
like a k6 threshold. The run goes on to its end (so the rest of the report, including
loss verification, still comes out); only the exit code changes.

The guard is fed cumulative (target, offered) counts — summed over workers from their
reports, each worker's pair taken at the same instant, so a report that arrives late
shifts both alike. Each update judges the interval since the previous one: *below* when
offered grew by less than ratio × target growth. Intervals with nothing due (the target
was 0, or no new report arrived) are skipped. Catching up counts: once a backlog is sent,
the interval is no longer below and the clock restarts.

Example::

    guard = RateGuard(min_ratio=0.95, window=10)
    for t in range(20):
        tripped = guard.update(t, intended=1000 * t, offered=500 * t)
    tripped  # Shortfall(start=0, end=11, target=11000.0, offered=5500)
"""

from __future__ import annotations

from typing import NamedTuple

#: Process exit code of a run failed by the rate guard.


class Shortfall(NamedTuple):
    """A stretch during which the offered rate stayed below the guard's ratio."""

    start: float
    """When it began (seconds, the caller's clock)."""
    end: float
    """The latest update that was still below."""
    target: float
    """Messages due during the stretch."""
    offered: int
    """Messages sent during the stretch."""

    def describe(self) -> str:
        seconds = max(self.end - self.start, 1e-9)
        return (
            f"offered {self.offered / seconds:,.0f}/s vs target {self.target / seconds:,.0f}/s "
            f"({self.offered / max(self.target, 1e-9):.1%}) for {seconds:.0f}s"
        )


class RateGuard:
    """Decides when the offered rate has stayed below ``min_ratio`` × target for ``window`` s."""

    def __init__(self, min_ratio: float, window: float) -> None:
        self.min_ratio = min_ratio
        self.window = window
        self.tripped: Shortfall | None = None
        """The first shortfall that lasted longer than the window (the run has failed)."""
        self._last: tuple[float, float, int] | None = None
        self._below: tuple[float, float, int] | None = None  # start, intended, offered at start

    def update(self, now: float, intended: float, offered: int) -> Shortfall | None:
        """Feed cumulative counts; returns the shortfall the first time it exceeds the window."""
        if self._last is None:
            self._last = (now, intended, offered)
            return None
        t0, i0, o0 = self._last
        due = intended - i0
        if due < 1:
            return None  # nothing new to judge
        self._last = (now, intended, offered)
        if offered - o0 >= self.min_ratio * due:
            self._below = None
            return None
        if self._below is None:
            self._below = (t0, i0, o0)
        start, i_start, o_start = self._below
        if self.tripped is None and now - start > self.window:
            self.tripped = Shortfall(start, now, intended - i_start, offered - o_start)
            return self.tripped
        return None
