"""The pacer: an open-model send schedule for one path of one process.

The schedule is a rate curve (a constant ``--rate`` or a :class:`~ingestload.rate.profile.RateProfile`)
times this process's share of it (``scale``). The number of messages that should have
been sent by local time ``now`` is the integral of ``scale × rate`` since the schedule
was anchored::

    intended(now) = anchor_n + scale × curve.count_between(anchor_τ, τ(now)),   τ(now) = now + offset

``τ`` is curve time (seconds since the profile started) and ``offset`` maps this
process's monotonic clock onto it. When the rate, the share or the offset changes, the
schedule is re-anchored at the (fractional) count that was due at that moment, so no
message is gained or lost across the change and the count never drifts over long runs:
the intended count is always the integral of the target. A linear ramp is integrated
exactly (see :meth:`RateProfile.count_until`), not in one-second steps.

Users ask :meth:`Pacer.take` how many messages are due *now* and send them in one
batch; each batch's lateness against its intended times is recorded (bucketed, a few
operations per batch — see :mod:`ingestload.rate.lateness`).

Falling behind: by default a pacer **catches up** — messages that are due stay due and
go out as soon as the sender can, late, and the lateness, the ``late`` count (sent more
than 100 ms late) and offered < target show the shortfall (OpenMessaging Benchmark's
model; the total count still equals the integral of the target). With ``max_lateness``
set, messages more than that far behind are **dropped** instead — never produced,
counted in ``dropped`` (k6's ``dropped_iterations``) — so a stalled system under test
is not hit by a burst when it recovers. Either way nothing is absorbed silently.

Example::

    pacer = Pacer(rate=2775)
    n = pacer.take(limit=1000)        # due now (0 on the very first call, which anchors t0)
    sent = send(n)
    pacer.give_back(n - sent)         # refused by backpressure: still due
    gevent.sleep(pacer.delay())       # until the next message is due

    pacer.follow(profile, scale=0.5, curve_time=12.0)   # half of a profile, 12 s into it
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gevent import getcurrent

from ingestload.rate.lateness import LATE_AFTER, LatenessHistogram, PaceSnapshot
from ingestload.rate.profile import ConstantRate, RateCurve

#: Tolerance when flooring a fractional count, so that float noise never withholds a message.
_EPS = 1e-9
#: What :meth:`Pacer.delay` answers when nothing will become due (paused, stopped, ended).
IDLE_DELAY = 0.1


class Pacer:
    """Intended-time schedule shared by the users of one process (for one path).

    ``rate=None`` means unlimited (every :meth:`take` returns ``limit``); ``rate=0`` pauses.
    ``clock`` is injectable so the schedule can be tested without sleeping;
    ``max_lateness`` (seconds) drops messages further behind than that (default: catch up).
    """

    def __init__(
        self,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_lateness: float | None = None,
    ) -> None:
        self._clock = clock
        self._curve: RateCurve | None = None if rate is None else ConstantRate(rate)
        self._scale = 1.0
        self._offset: float | None = None
        self._anchor_tau = 0.0
        self._anchor_n = 0.0
        self._started = False
        self._stopped_at: float | None = None
        # the last batch each greenlet took, recorded once it can no longer be given back
        self._pending: dict[object, tuple[float, int, int, float]] = {}
        self.max_lateness = max_lateness
        self.issued = 0
        """Position in the schedule: messages handed out by :meth:`take` (minus those given
        back) plus those dropped."""
        self.stopped = False
        self.max_lag = 0.0
        """Largest lag (seconds) seen by :meth:`take` since :meth:`reset_max_lag`."""
        self._run_max_lag = 0.0
        self.late = 0
        """Messages sent more than :data:`~ingestload.rate.lateness.LATE_AFTER` late."""
        self.dropped = 0
        """Messages skipped for being more than ``max_lateness`` behind."""
        self.lateness = LatenessHistogram()
        """Lateness of every message sent this run."""

    # -- the schedule --------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The target rate right now (``None`` = unlimited)."""
        if self._curve is None:
            return None
        tau = self._clock() + self._offset if self._offset is not None else 0.0
        return self._scale * self._curve.rate_at(tau)

    @property
    def curve(self) -> RateCurve | None:
        return self._curve

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def started(self) -> bool:
        return self._started

    def intended(self, now: float) -> float:
        """How many messages should have been sent by ``now`` (fractional)."""
        if not self._started or self._curve is None or self._offset is None:
            return self._anchor_n
        if self._stopped_at is not None:
            now = min(now, self._stopped_at)
        tau = now + self._offset
        if tau <= self._anchor_tau:
            return self._anchor_n
        return self._anchor_n + self._scale * self._curve.count_between(self._anchor_tau, tau)

    def due_at(self, k: int) -> float:
        """Local time at which message number ``k`` (1-based) is due; ``inf`` if never.

        Messages that were already due when the schedule was last re-anchored are given the
        anchor time (their exact times belonged to the previous schedule).
        """
        if not self._started or self._curve is None or self._offset is None:
            return -math.inf if self._curve is None else math.inf
        more = k - self._anchor_n
        if more <= 0:
            return self._anchor_tau - self._offset
        if self._scale <= 0:
            return math.inf
        return self._curve.time_after(self._anchor_tau, more / self._scale) - self._offset

    def _reanchor(self, now: float) -> None:
        """Make ``now`` the anchor, keeping everything due so far due."""
        if not self._started:
            return
        self._anchor_n = float(self.issued) if self._curve is None else self.intended(now)
        assert self._offset is not None
        self._anchor_tau = now + self._offset

    def set_rate(self, rate: float | None, now: float | None = None) -> None:
        """Change to a constant rate from ``now`` on, keeping everything due so far due."""
        self.follow(None if rate is None else ConstantRate(rate), 1.0, now=now)

    def follow(
        self,
        curve: RateCurve | None,
        scale: float = 1.0,
        curve_time: float | None = None,
        now: float | None = None,
        since: float | None = None,
    ) -> None:
        """Follow ``scale × curve`` from ``now`` on, keeping everything due so far due.

        ``curve_time`` says where on the curve ``now`` is (seconds since the profile
        started) and starts the schedule at once; without it the current mapping is kept,
        or — for a pacer that has not started — the curve starts at the first :meth:`take`.
        ``since`` (with ``curve_time``, for a pacer that has not started): the curve time
        from which this pacer's share counts — ``0`` when it was part of the run from the
        start, so that what fell due while the plan was on its way is due at once.
        ``curve=None`` means unlimited.
        """
        now = self._clock() if now is None else now
        self._commit()
        self._reanchor(now)
        self._curve, self._scale = curve, scale
        if curve_time is not None:
            if not self._started:
                self._anchor_n = float(self.issued)
                if since is not None and curve is not None:
                    self._anchor_n += scale * curve.count_between(since, curve_time)
                self._started = True
            self._offset = curve_time - now
            self._anchor_tau = curve_time

    def start(self, now: float | None = None) -> None:
        """Anchor the schedule: the first message is due at ``now`` (curve time 0 if unset)."""
        now = self._clock() if now is None else now
        if self._offset is None:
            self._offset = -now
        self._anchor_tau = now + self._offset
        self._anchor_n = float(self.issued)
        self._started = True

    def stop(self, now: float | None = None) -> None:
        """Hand out nothing more (at test stop); the intended count stops growing.

        The first stop of a run counts: a process may be told to stop more than once (the
        master's drain message, then Locust's own stop, even at quit), and a later call must
        not move the end of the schedule — the run's target would grow with the time to quit.
        """
        self._commit()
        self.stopped = True
        if self._stopped_at is None:
            self._stopped_at = self._clock() if now is None else now

    def reset(self) -> None:
        """Forget the schedule and the counters (a new test run begins); the curve stays."""
        self._offset = None
        self._anchor_tau = 0.0
        self._anchor_n = 0.0
        self._started = False
        self._stopped_at = None
        self._pending.clear()
        self.issued = 0
        self.stopped = False
        self.max_lag = self._run_max_lag = 0.0
        self.late = self.dropped = 0
        self.lateness = LatenessHistogram()

    # -- handing out messages ----------------------------------------------------------------

    def take(self, limit: int, now: float | None = None) -> int:
        """How many messages to send now (at most ``limit``); counts them as issued."""
        if self.stopped or limit <= 0:
            return 0
        now = self._clock() if now is None else now
        me = getcurrent()
        mine = self._pending.pop(me, None)
        if mine is not None:
            self._record(*mine)
        if not self._started:
            self.start(now)
        if self._curve is None:
            self.issued += limit
            return limit
        if self.max_lateness is not None:
            self._drop_older_than(now - self.max_lateness)
        due = math.floor(self.intended(now) + _EPS) - self.issued
        if due <= 0:
            return 0
        lag = max(0.0, now - self.due_at(self.issued + 1))
        if lag > self.max_lag:
            self.max_lag = lag
            if lag > self._run_max_lag:
                self._run_max_lag = lag
        n = min(due, limit)
        self._pending[me] = (now, self.issued, n, lag)
        self.issued += n
        return n

    def give_back(self, count: int) -> None:
        """Return ``count`` of the messages this greenlet took last and could not send; they stay due.

        A user may yield between :meth:`take` and ``give_back`` (an HTTP request does): each
        greenlet's last batch is only recorded as sent at its next :meth:`take` (or at a
        snapshot), so its lateness covers exactly what went out. When several users take
        meanwhile, the returned messages are re-issued at later schedule positions, so their
        lateness, when sent, reads a little low; the counts stay exact.
        """
        self.issued -= count
        mine = self._pending.get(getcurrent())
        if mine is not None:
            now, first, n, oldest = mine
            self._pending[getcurrent()] = (now, first, max(0, n - count), oldest)

    def _commit(self) -> None:
        """Record the lateness of every batch taken and not yet recorded."""
        pending = list(self._pending.values())
        self._pending.clear()
        for batch in pending:
            self._record(*batch)

    def _record(self, now: float, first: int, n: int, oldest: float) -> None:
        """Record a batch of ``n`` messages from schedule position ``first``, taken at ``now``."""
        if n <= 0:
            return
        newest = max(0.0, now - self.due_at(first + n))
        self.lateness.add_range(newest, oldest, n)
        if oldest > LATE_AFTER:
            due_before = math.floor(self.intended(now - LATE_AFTER) + _EPS) - first
            self.late += max(0, min(n, due_before))

    def _drop_older_than(self, cutoff: float) -> None:
        if self.due_at(self.issued + 1) >= cutoff:
            return
        skip = math.floor(self.intended(cutoff) + _EPS) - self.issued
        if skip > 0:
            self.issued += skip
            self.dropped += skip

    # -- questions ---------------------------------------------------------------------------

    def backlog(self, now: float | None = None) -> int:
        """Messages due but not yet issued."""
        if not self._started or self._curve is None:
            return 0
        now = self._clock() if now is None else now
        return max(0, math.floor(self.intended(now) + _EPS) - self.issued)

    def lag(self, now: float | None = None) -> float:
        """Seconds the next unsent message is behind its intended time (0 when on schedule)."""
        if not self._started or self._curve is None:
            return 0.0
        now = self._clock() if now is None else now
        return max(0.0, now - self.due_at(self.issued + 1))

    def delay(self, now: float | None = None) -> float:
        """Seconds until the next message is due (0 when one is due now; 0.1 when none will be)."""
        if self.stopped:
            return IDLE_DELAY
        if not self._started or self._curve is None:
            return 0.0 if self._curve is None or self._curve.peak > 0 else IDLE_DELAY
        now = self._clock() if now is None else now
        wait = self.due_at(self.issued + 1) - now
        if math.isinf(wait):
            return IDLE_DELAY
        return max(0.0, wait)

    def reset_max_lag(self) -> float:
        """Return :attr:`max_lag` and start a new interval."""
        lag, self.max_lag = self.max_lag, 0.0
        return lag

    def offered(self) -> int:
        """Messages handed out and not given back (``issued − dropped``)."""
        return self.issued - self.dropped

    def snapshot(self, now: float | None = None) -> PaceSnapshot:
        """Cumulative pacing counters for the run, for status lines and worker reports."""
        now = self._clock() if now is None else now
        self._commit()
        intended = float(self.issued) if self._curve is None else self.intended(now)
        return PaceSnapshot(
            intended,
            self.offered(),
            self.late,
            self.dropped,
            self._run_max_lag,
            LatenessHistogram(self.lateness.counts),
        )
