"""The pacer: an open-model send schedule for one process.

Message ``k`` (from 0) has an intended send time; with a constant rate ``r`` started at
``t0`` it is ``t0 + (k + 1) / r``, so ``floor(r * (t - t0))`` messages are due by ``t``.
When the rate changes at time ``t`` the schedule is re-anchored at the (fractional) count
that was due at ``t``, so no message is gained or lost across the change and the count
never drifts over long runs: the intended count is always the integral of the rate.

Users ask :meth:`Pacer.take` how many messages are due *now* and send them in one batch;
a user that cannot keep up sees the backlog grow and the lag (how late the oldest due
message is) rise — the shortfall is visible, never absorbed.

Example::

    pacer = Pacer(rate=2775)
    n = pacer.take(limit=1000)        # due now (0 on the very first call, which anchors t0)
    sent = send(n)
    pacer.give_back(n - sent)         # refused by backpressure: still due
    gevent.sleep(pacer.delay())       # until the next message is due
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Pacer:
    """Intended-time schedule shared by the users of one process.

    ``rate=None`` means unlimited (every :meth:`take` returns ``limit``); ``rate=0`` pauses.
    ``clock`` is injectable so the schedule can be tested without sleeping.
    """

    def __init__(self, rate: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rate = rate
        self._anchor_t: float | None = None
        self._anchor_n = 0.0
        self.issued = 0
        """Messages handed out by :meth:`take` (minus those given back)."""
        self.stopped = False
        self.max_lag = 0.0
        """Largest lag (seconds) seen by :meth:`take` since :meth:`reset_max_lag`."""

    @property
    def rate(self) -> float | None:
        return self._rate

    @property
    def started(self) -> bool:
        return self._anchor_t is not None

    def intended(self, now: float) -> float:
        """How many messages should have been sent by ``now`` (fractional)."""
        if self._anchor_t is None or not self._rate:
            return self._anchor_n
        return self._anchor_n + (now - self._anchor_t) * self._rate

    def set_rate(self, rate: float | None, now: float | None = None) -> None:
        """Change the rate from ``now`` on, keeping everything due so far due."""
        now = self._clock() if now is None else now
        if self._anchor_t is not None:
            self._anchor_n = self.intended(now) if self._rate else max(self._anchor_n, float(self.issued))
            self._anchor_t = now
        self._rate = rate

    def start(self, now: float | None = None) -> None:
        """Anchor the schedule: the first message is due at ``now``."""
        now = self._clock() if now is None else now
        self._anchor_t = now
        self._anchor_n = float(self.issued)

    def stop(self) -> None:
        """Hand out nothing more (at test stop)."""
        self.stopped = True

    def reset(self) -> None:
        """Forget the schedule (a new test run begins); the rate stays."""
        self._anchor_t = None
        self._anchor_n = 0.0
        self.issued = 0
        self.stopped = False
        self.max_lag = 0.0

    def take(self, limit: int, now: float | None = None) -> int:
        """How many messages to send now (at most ``limit``); counts them as issued."""
        if self.stopped or limit <= 0:
            return 0
        now = self._clock() if now is None else now
        if self._anchor_t is None:
            self.start(now)
        if self._rate is None:
            self.issued += limit
            return limit
        if self._rate <= 0:
            return 0
        due = math.floor(self.intended(now) + 1e-9) - self.issued
        if due <= 0:
            return 0
        lag = self.lag(now)
        if lag > self.max_lag:
            self.max_lag = lag
        n = min(due, limit)
        self.issued += n
        return n

    def give_back(self, count: int) -> None:
        """Return ``count`` issued-but-unsent messages; they stay due."""
        self.issued -= count

    def backlog(self, now: float | None = None) -> int:
        """Messages due but not yet issued."""
        if self._anchor_t is None or not self._rate:
            return 0
        now = self._clock() if now is None else now
        return max(0, math.floor(self.intended(now) + 1e-9) - self.issued)

    def lag(self, now: float | None = None) -> float:
        """Seconds the next unsent message is behind its intended time (0 when on schedule)."""
        if self._anchor_t is None or not self._rate:
            return 0.0
        now = self._clock() if now is None else now
        intended_at = self._anchor_t + (self.issued + 1 - self._anchor_n) / self._rate
        return max(0.0, now - intended_at)

    def delay(self, now: float | None = None) -> float:
        """Seconds until the next message is due (0 when one is due now; 0.1 when paused)."""
        if self.stopped or (self._rate is not None and self._rate <= 0):
            return 0.1
        if self._anchor_t is None or self._rate is None:
            return 0.0
        now = self._clock() if now is None else now
        intended_at = self._anchor_t + (self.issued + 1 - self._anchor_n) / self._rate
        return max(0.0, intended_at - now)

    def reset_max_lag(self) -> float:
        """Return :attr:`max_lag` and start a new interval."""
        lag, self.max_lag = self.max_lag, 0.0
        return lag
