"""Rate plans: which process paces what share of which rate curve, on which path.

The target of a run is one curve — a constant ``--rate`` or a ``--rate-profile`` — split
between paths (``kafka``, ``api``: a user class declares ``ingestload_path``) by
``--rate-split`` or, by default, by the weights of the user classes of each path. With
workers, each path's part is divided among the workers in proportion to their users of
that path. What a process must pace is a :class:`RatePlan`: the curve and one *scale* per
path (its fraction of the curve); each path has its own :class:`~ingestload.rate.pacer.Pacer`
(:class:`PacerSet`), which integrates ``scale × curve`` itself, so a worker follows a
ramp exactly, not in the one-second steps in which plans arrive.

Clocks. Machines' clocks differ, so a plan never carries a wall-clock time. It carries
*curve time*: seconds since the master started the profile, measured on the master's
monotonic clock when it sent the plan. A worker maps its own monotonic clock onto curve
time from the first plan of a run (``curve_time − local receipt time``; the message's
transit, well under a millisecond on a LAN, shifts the profile by as much) and keeps
that mapping: re-anchoring on every plan would add each message's transit jitter to the
schedule, and a re-anchor shifts a ramp by the change. Only when the announced and the
local curve time drift apart by more than :data:`RESYNC_AFTER` (a frozen process, a clock
step) does :class:`RateFollower` re-anchor. Every re-anchor, and every change of share
(workers joining or leaving), keeps the integral: what was due stays due.

Example (what the master computes every second)::

    coordinator = RateCoordinator(RateProfile.load("mocks/profiles/spike.yaml"), {"kafka": 1.0})
    coordinator.begin("5f3a9c0b12d4e6f7")
    plans = coordinator.plans({"w1": {"Controllers": 2}, "w2": {"Controllers": 2}}, {"Controllers": "kafka"})
    # {'w1': RatePlan(scales={'kafka': 0.5}, curve_time=1.0, …), 'w2': …}
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ingestload.rate.lateness import PaceSnapshot
from ingestload.rate.pacer import Pacer
from ingestload.rate.profile import ConstantRate, RateCurve, curve_from_wire

MSG_RATE = "ingestload_rate"
#: Seconds of disagreement between the master's curve time and ours before we re-anchor.
RESYNC_AFTER = 0.25
#: Seconds a profile run goes on after the profile's end, so that every worker (whose curve
#: time trails the master's by the plan's transit) sends its last messages before the stop.
END_GRACE = 0.5


@dataclass(frozen=True)
class RatePlan:
    """What one process must pace: a share of the run's rate curve per path."""

    run_id: str | None
    """The run this plan belongs to."""
    curve: RateCurve | None
    """The whole run's target (``None`` = unlimited)."""
    scales: Mapping[str, float]
    """Path → this process's fraction of the curve (paths left out: 0)."""
    curve_time: float | None = None
    """Curve time when the plan was made (profiles); ``None`` for a constant rate, whose
    schedule starts at the first send instead."""
    since: float | None = None
    """Curve time from which this process's share counts: 0 for processes that were there
    when the profile started, the join time for one that joined later."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "curve": None if self.curve is None else self.curve.to_wire(),
            "scales": dict(self.scales),
            "curve_time": self.curve_time,
            "since": self.since,
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RatePlan:
        return cls(
            data.get("run_id"),
            curve_from_wire(data.get("curve")),
            {str(k): float(v) for k, v in (data.get("scales") or {}).items()},
            None if data.get("curve_time") is None else float(data["curve_time"]),
            None if data.get("since") is None else float(data["since"]),
        )

    def same_target(self, other: RatePlan | None) -> bool:
        """Same curve and scales as ``other`` (the curve time aside)."""
        return (
            other is not None
            and _wire(self.curve) == _wire(other.curve)
            and dict(self.scales) == dict(other.scales)
        )


def _wire(curve: RateCurve | None) -> dict[str, Any] | None:
    return None if curve is None else curve.to_wire()


# -- pure arithmetic of shares --------------------------------------------------------------


def path_split(
    split: Mapping[str, float] | None, class_paths: Mapping[str, str], class_weights: Mapping[str, float]
) -> dict[str, float]:
    """Fraction of the target per path: ``--rate-split`` weights, or the user classes' weights.

    Example::

        >>> path_split(None, {"K": "kafka", "A": "api"}, {"K": 3, "A": 1})
        {'kafka': 0.75, 'api': 0.25}
        >>> path_split({"kafka": 7, "api": 3}, {"K": "kafka"}, {"K": 1})
        {'kafka': 0.7, 'api': 0.3}
    """
    if split is None:
        weights: dict[str, float] = {}
        for cls, path in class_paths.items():
            weights[path] = weights.get(path, 0.0) + float(class_weights.get(cls, 1))
    else:
        weights = dict(split)
    total = sum(weights.values())
    if total <= 0:
        return dict.fromkeys(weights, 1.0 / len(weights)) if weights else {}
    return {path: w / total for path, w in weights.items()}


def worker_fractions(
    worker_users: Mapping[str, Mapping[str, int]], class_paths: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Each worker's fraction of each path: its users of that path ÷ all users of that path.

    A path nobody has users of yet (at the very start) is divided equally.

    Example::

        >>> worker_fractions({"a": {"K": 2}, "b": {"K": 1}}, {"K": "kafka"})
        {'a': {'kafka': 0.6666666666666666}, 'b': {'kafka': 0.3333333333333333}}
    """
    paths = sorted(set(class_paths.values()))
    fractions: dict[str, dict[str, float]] = {w: {} for w in worker_users}
    for path in paths:
        users = {
            w: sum(n for cls, n in counts.items() if class_paths.get(cls) == path)
            for w, counts in worker_users.items()
        }
        total = sum(users.values())
        for w, n in users.items():
            fractions[w][path] = n / total if total else 1.0 / len(users)
    return fractions


#: Requests per second one HTTP user keeps going: it has one request in flight at a time, and
#: a request to an ingest API that answers after Kafka acknowledged takes ~10–20 ms on a busy
#: machine. A user's capacity in msg/s is this times the messages per request.
API_USER_REQUESTS_PER_S = 50.0


def messages_per_request(batch_size: int, type_shares: Mapping[str, float] | None = None) -> float:
    """Messages in an average batch request when a take of ``batch_size`` is split by message type.

    IngestApiUser posts one request per message type present in a take (the batch path has a
    ``{msgType}``), so with the built-in mix a take of 20 makes ~3.4 requests of ~5.9 messages.
    The expected number of types present in a take of ``n`` is ``Σ 1 − (1 − share)ⁿ``.

    Example::

        >>> messages_per_request(20)
        20.0
        >>> round(messages_per_request(20, {"a": 0.5, "b": 0.5}), 2)
        10.0
    """
    n = max(1, batch_size)
    if not type_shares:
        return float(n)
    requests = sum(1.0 - (1.0 - share) ** n for share in type_shares.values() if share > 0)
    return n / max(1.0, requests)


def api_users_for(
    rate: float, batch_size: int, minimum: int = 1, type_shares: Mapping[str, float] | None = None
) -> int:
    """HTTP users (concurrency) that ``rate`` msg/s needs at ``batch_size`` messages per take.

    ``type_shares`` (the catalogue's mix) accounts for takes split into one request per type.

    Example::

        >>> api_users_for(2775, batch_size=1, minimum=10)
        56
        >>> api_users_for(10_000, batch_size=100, minimum=10)
        10
        >>> api_users_for(10_000, batch_size=20, minimum=10, type_shares={"a": 0.5, "b": 0.5})
        20
    """
    if rate <= 0 or not math.isfinite(rate):
        return minimum
    per_request = messages_per_request(batch_size, type_shares)
    return max(minimum, math.ceil(rate / (API_USER_REQUESTS_PER_S * per_request) - 1e-9))


def pool_size(peak: float, capacity: float, workers: int, classes: int) -> int:
    """Users for a fixed pool: enough for ``peak`` at ``capacity`` msg/s per user, at least one
    per user class on every worker, and the same number on every worker.

    Example::

        >>> pool_size(peak=20_000, capacity=100_000, workers=2, classes=1)
        2
        >>> pool_size(peak=450_000, capacity=100_000, workers=2, classes=1)
        6
    """
    workers, classes = max(1, workers), max(1, classes)
    needed = math.ceil(peak / capacity / workers - 1e-9) if capacity > 0 and math.isfinite(peak) else 1
    return max(classes, needed) * workers


# -- the pacers of one process ----------------------------------------------------------------


class PacerSet:
    """One :class:`Pacer` per path in this process, all following the same plan.

    Example::

        pacers = PacerSet(rate=0)                     # paused until a plan arrives
        kafka = pacers.for_path("kafka")
        pacers.follow(ConstantRate(2775), {"kafka": 1.0})
    """

    def __init__(
        self,
        paths: Iterable[str] = (),
        *,
        rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_lateness: float | None = None,
    ) -> None:
        self._clock = clock
        self._max_lateness = max_lateness
        self._initial = rate
        self._curve: RateCurve | None = None if rate is None else ConstantRate(rate)
        self._scales: Mapping[str, float] | None = None
        self._offset: float | None = None
        self.pacers: dict[str, Pacer] = {}
        for path in paths:
            self.for_path(path)

    def for_path(self, path: str) -> Pacer:
        """The pacer of ``path`` (created on first use, already following the current plan)."""
        pacer = self.pacers.get(path)
        if pacer is None:
            pacer = self.pacers[path] = Pacer(self._initial, self._clock, max_lateness=self._max_lateness)
            if self._scales is not None:
                now = self._clock()
                curve_time = None if self._offset is None else now + self._offset
                pacer.follow(self._curve, self._scales.get(path, 0.0), curve_time, now)
        return pacer

    def set_max_lateness(self, seconds: float | None) -> None:
        self._max_lateness = seconds
        for pacer in self.pacers.values():
            pacer.max_lateness = seconds

    def follow(
        self,
        curve: RateCurve | None,
        scales: Mapping[str, float],
        curve_time: float | None = None,
        now: float | None = None,
        since: float | None = None,
    ) -> None:
        """Every path follows ``scales[path] × curve`` (see :meth:`Pacer.follow`)."""
        now = self._clock() if now is None else now
        self._curve, self._scales = curve, dict(scales)
        if curve_time is not None:
            self._offset = curve_time - now
        for path, pacer in self.pacers.items():
            pacer.follow(curve, self._scales.get(path, 0.0), curve_time, now, since)

    def reset(self) -> None:
        """A new run: every pacer forgets its schedule and counters and pauses until told."""
        self.follow(ConstantRate(0), {})
        self._offset = None
        for pacer in self.pacers.values():
            pacer.reset()

    def stop(self) -> None:
        for pacer in self.pacers.values():
            pacer.stop()

    def reset_max_lag(self) -> float:
        """The largest lag of any path since the last call."""
        return max((p.reset_max_lag() for p in self.pacers.values()), default=0.0)

    def snapshots(self) -> dict[str, PaceSnapshot]:
        """Cumulative pacing counters per path."""
        now = self._clock()
        return {path: pacer.snapshot(now) for path, pacer in self.pacers.items()}

    @property
    def unlimited(self) -> bool:
        return self._curve is None


# -- both ends of the plan message -----------------------------------------------------------


class RateFollower:
    """Worker side: applies the plans the master sends to this process's pacers."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        """The run of the last plan applied."""
        self.plan: RatePlan | None = None
        self._offset: float | None = None
        self.resyncs = 0
        """How often the curve-time mapping was re-anchored after the first plan of a run."""

    def apply(self, plan: RatePlan, pacers: PacerSet, now: float) -> None:
        """Follow ``plan`` from local time ``now`` (when it was received)."""
        if plan.run_id != self.run_id:
            pacers.reset()
            self.run_id, self.plan, self._offset = plan.run_id, None, None
        curve_time = None
        if plan.curve_time is not None:
            estimate = plan.curve_time - now
            if self._offset is None or abs(estimate - self._offset) > RESYNC_AFTER:
                if self._offset is not None:
                    self.resyncs += 1
                self._offset = estimate
                curve_time = plan.curve_time
        if curve_time is not None or not plan.same_target(self.plan):
            pacers.follow(plan.curve, plan.scales, curve_time, now, plan.since)
        self.plan = plan


class RateCoordinator:
    """Master (or local) side: the run's curve, its clock, and each worker's plan."""

    def __init__(
        self,
        curve: RateCurve | None,
        split: Mapping[str, float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.curve = curve
        self.split = dict(split)
        self._clock = clock
        self.run_id: str | None = None
        self._t0: float | None = None
        self._sent: dict[str, RatePlan] = {}
        self._since: dict[str, float] = {}
        self._first_round = False

    @property
    def timeline(self) -> bool:
        """True when the curve changes over time (a profile), so plans carry curve time."""
        return self.curve is not None and math.isfinite(self.curve.duration)

    def begin(self, run_id: str | None) -> None:
        """A run starts. A constant rate applies at once; a profile waits for :meth:`start_clock`
        (called when every user is spawned, so that no process starts the profile late)."""
        self.run_id = run_id
        self._t0 = None if self.timeline else self._clock()
        self._sent.clear()
        self._since.clear()

    def start_clock(self) -> bool:
        """Curve time 0 is now; False when the clock was already running."""
        if self._t0 is not None:
            return False
        self._t0 = self._clock()
        self._first_round = True
        return True

    @property
    def clock_started(self) -> bool:
        return self._t0 is not None

    def curve_time(self) -> float:
        """Seconds since the clock started (0 before)."""
        return 0.0 if self._t0 is None else self._clock() - self._t0

    def finished(self) -> bool:
        """True once the profile has ended, plus :data:`END_GRACE` (never for a constant rate)."""
        return (
            self.curve is not None
            and self._t0 is not None
            and self.curve_time() >= self.curve.duration + END_GRACE
        )

    def local_plan(self) -> RatePlan:
        """The plan for a process that paces the whole target itself (LocalRunner)."""
        return RatePlan(self.run_id, self.curve, self.split, *((0.0, 0.0) if self.timeline else (None, None)))

    def division(self, workers: Iterable[str]) -> dict[str, dict[str, float]]:
        """Each of ``workers``' share of the curve per path, as last sent (workers without a plan
        yet are left out)."""
        return {w: dict(self._sent[w].scales) for w in sorted(workers) if w in self._sent}

    def plans(
        self, worker_users: Mapping[str, Mapping[str, int]], class_paths: Mapping[str, str]
    ) -> dict[str, RatePlan]:
        """The plans to send now: changed shares, and with a profile every worker's (to keep
        the curve time current for workers that join); none before a profile's clock starts."""
        if self.timeline and self._t0 is None:
            return {}
        fractions = worker_fractions(worker_users, class_paths)
        curve_time = self.curve_time() if self.timeline else None
        out: dict[str, RatePlan] = {}
        for worker, by_path in fractions.items():
            scales = {path: self.split.get(path, 0.0) * f for path, f in by_path.items()}
            since = None
            if curve_time is not None:
                # workers there when the clock started share the profile from 0; later ones from now
                since = self._since.setdefault(worker, 0.0 if self._first_round else curve_time)
            plan = RatePlan(self.run_id, self.curve, scales, curve_time, since)
            if self.timeline or not plan.same_target(self._sent.get(worker)):
                out[worker] = plan
                self._sent[worker] = plan
        self._first_round = False
        return out
