"""The rate machinery of one Locust process: pacers, plans, shape, guard and pacing reports.

:class:`~ingestload.locust.process.ProcessState` owns one :class:`RateControl` and calls it at
``init`` (:meth:`RateControl.setup`), ``test_start``, at drain and ``test_stop``. What it
does in each kind of process:

=========  ===========================================================================
local      loads the profile (if any), installs :class:`RampingRateShape`, paces the
           whole target itself; checks the rate guard every second.
master     the same, but paces nothing: every second it sends each worker its plan
           (``ingestload_rate``: curve + scale per path + curve time), collects the
           workers' pacing snapshots from their reports and checks the guard.
worker     applies plans to its pacers (:class:`~ingestload.rate.plans.RateFollower`) and
           adds its pacing snapshot to every report (``ingestload_pace``).
=========  ===========================================================================

Example (a user class on another path: the HTTP ingest user, batching per request)::

    class IngestApiUser(User):
        ingestload_path = "api"                 # its share: --rate-split api=… (default: class weights)
        ingestload_user_capacity = 50.0         # msg/s one user sustains; sizes a profile's user pool
        wait_time = constant(0)

        def on_start(self):
            self.pacer = state_of(self.environment).pacer_for("api")

        @task
        def post_due(self):
            n = self.pacer.take(limit=BATCH)    # messages due now, at most one request's worth
            if not n:
                gevent.sleep(min(max(self.pacer.delay(), 0.001), 0.05))
                return
            accepted = self.post_batch(n)       # e.g. 0 on a 503
            self.pacer.give_back(n - accepted)  # still due; they go out with the next batch
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import gevent

from ingestload.errors import ConfigError
from ingestload.locust.rate_shape import RampingRateShape, user_capacity
from ingestload.rate.guard import RateGuard, Shortfall
from ingestload.rate.lateness import PaceSnapshot, format_pacing, sum_snapshots
from ingestload.rate.pacer import Pacer
from ingestload.rate.plans import (
    MSG_RATE,
    PacerSet,
    RateCoordinator,
    RateFollower,
    RatePlan,
    path_split,
    pool_size,
)
from ingestload.rate.profile import ConstantRate, RateCurve, RateProfile
from ingestload.rate.settings import RateSettings
from ingestload.verdicts import ExitCode

log = logging.getLogger("ingestload")


class PacedSettings(Protocol):
    """What the rate machinery reads from the settings: the rate feature's own
    (:class:`ingestload.settings.Settings` has it; user classes sizing a profile's pool may read more)."""

    @property
    def rate(self) -> RateSettings:
        """Target or profile, split, lateness, the rate guard."""


#: Seconds between plans sent to workers (and rate guard checks).
PLAN_INTERVAL = 1.0
#: Seconds between plan rounds while users are being spawned.
PLAN_INTERVAL_SPAWNING = 0.1
REPORT_KEY = "ingestload_pace"


def class_paths(user_classes: Any) -> dict[str, str]:
    """User class name → its ``ingestload_path`` (classes without one are not paced)."""
    return {c.__name__: c.ingestload_path for c in user_classes if getattr(c, "ingestload_path", None)}


class RateControl:
    """Pacers, plans, the profile shape, the rate guard and pacing reports of one process."""

    def __init__(self, environment: Any, runner: Any, role: str, settings: PacedSettings) -> None:
        self.environment = environment
        self.runner = runner
        self.role = role
        self.settings = settings
        self.class_paths = class_paths(environment.user_classes)
        # A worker waits (paused) for the master's plan; a local process is told at test start.
        self.pacers = PacerSet(
            sorted(set(self.class_paths.values())),
            rate=0 if role == "worker" else None,
            max_lateness=settings.rate.max_lateness,
        )
        self.follower = RateFollower()
        self.coordinator = RateCoordinator(None, {})
        self.profile: RateProfile | None = None
        self._profile_path: str | None = None
        self.guard: RateGuard | None = None
        self.worker_pace: dict[str, dict[str, PaceSnapshot]] = {}
        self._greenlets: list[gevent.Greenlet] = []
        self._division: dict[str, dict[str, float]] = {}
        # Master/local: the run's pacing account as it stood when the run stopped (after the drain,
        # with every worker's last report in); every report of the run shows this one.
        self._final: dict[str, PaceSnapshot] | None = None

    # -- init ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """``init``: load and check the profile and split, install the shape, register messages.

        Raises :class:`~ingestload.errors.ConfigError` (exit 2 before any load) on bad input.
        """
        events = self.environment.events
        if self.role == "worker":
            self.runner.register_message(MSG_RATE, self._on_plan)
            events.report_to_master.add_listener(self._on_report_to_master)
            return
        self.configure(self.settings)
        self._install_shape()
        events.spawning_complete.add_listener(self._on_spawning_complete)
        if self.role == "master":
            events.worker_report.add_listener(self._on_worker_report)

    def configure(self, settings: PacedSettings) -> None:
        """Master/local: the run's curve and split from ``settings`` (again at each test start)."""
        self.settings = settings
        self.pacers.set_max_lateness(settings.rate.max_lateness)
        shape = self.environment.shape_class
        path = settings.rate.profile or (shape.profile if isinstance(shape, RampingRateShape) else None)
        if path is not None and (self.profile is None or path != self._profile_path):
            self.profile = RateProfile.load(path)
            self._profile_path = path
        elif path is None:
            self.profile = None
        curve: RateCurve | None
        if self.profile is not None:
            curve = self.profile
        else:
            curve = ConstantRate(settings.rate.target) if settings.rate.target > 0 else None
        weights = {c.__name__: float(getattr(c, "weight", 1)) for c in self.environment.user_classes}
        self._check_split(settings.rate.split)
        self.coordinator = RateCoordinator(curve, path_split(settings.rate.split, self.class_paths, weights))
        self._division = {}
        self.guard = (
            RateGuard(settings.rate.min_ratio, settings.rate.min_window)
            if settings.rate.min_ratio is not None
            else None
        )

    def check(self, settings: PacedSettings) -> None:
        """Raise :class:`~ingestload.errors.ConfigError` for what :meth:`configure` would refuse or
        could not honour at the next test start (a profile that does not load, a split naming a
        path without users, a profile where no profile shape was installed at ``init`` or the other
        way round); changes nothing. The web UI checks a swarm request's form with it.
        """
        shape = self.environment.shape_class
        ours = isinstance(shape, RampingRateShape)
        path = settings.rate.profile or (shape.profile if ours else None)
        if settings.rate.profile and not ours:
            raise ConfigError(
                f"--rate-profile: {settings.rate.profile!r} can only be chosen when Locust starts "
                "(it installs the shape that sizes the users and ends the run); this session runs "
                "at a constant --rate"
            )
        if ours and path is None:
            raise ConfigError(
                "--rate-profile: this session was started with a rate profile; give one (another "
                "profile is fine) or restart Locust without --rate-profile to run at a constant --rate"
            )
        if path is not None:
            RateProfile.load(path)
        self._check_split(settings.rate.split)

    def _check_split(self, split: Mapping[str, float] | None) -> None:
        paths = sorted(set(self.class_paths.values()))
        for path, weight in (split or {}).items():
            if weight > 0 and path not in paths:
                close = difflib.get_close_matches(path, paths, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"--rate-split: no user class has path {path!r}{hint} "
                    f"(paths of this locustfile: {', '.join(paths) or 'none'}); its share would never be sent"
                )

    def _install_shape(self) -> None:
        shape = self.environment.shape_class
        if isinstance(shape, RampingRateShape):
            if self.profile is None:
                raise ConfigError(
                    f"{type(shape).__name__} needs a rate profile: pass --rate-profile PATH "
                    "or set profile = 'PATH' on the class"
                )
            shape.control = self
            return
        if self.profile is None:
            return
        if shape is not None:
            raise ConfigError(
                f"--rate-profile: the locustfile already has a load shape ({type(shape).__name__}); "
                "remove it or drop --rate-profile"
            )
        shape = RampingRateShape()
        shape.runner = self.runner
        shape.control = self
        self.environment.shape_class = shape
        log.info("rate profile %s", self.profile.describe())

    # -- PoolControl, for the shape ------------------------------------------------------------

    def profile_finished(self) -> bool:
        return self.coordinator.finished()

    def pool_size(self) -> int:
        workers = len(self._live_workers()) if self.role == "master" else 1
        classes = self.environment.user_classes
        peak = self.coordinator.curve.peak if self.coordinator.curve is not None else 0.0
        return pool_size(peak, user_capacity(classes, self.settings), workers, len(classes))

    # -- run lifecycle ------------------------------------------------------------------------

    def pacer_for(self, path: str) -> Pacer:
        return self.pacers.for_path(path)

    @property
    def unlimited(self) -> bool:
        return self.coordinator.curve is None if self.role != "worker" else self.pacers.unlimited

    def describe_target(self) -> str:
        """``2775 msg/s``, ``unlimited`` or the profile's one-line description."""
        curve = self.coordinator.curve
        if self.profile is not None:
            text = f"profile {self.profile.describe()}"
        else:
            text = "unlimited" if curve is None else f"{curve.peak:g} msg/s"
        split = self.coordinator.split
        if len(split) > 1:
            text += " split " + ", ".join(f"{path} {share:.0%}" for path, share in split.items())
        return text

    def on_test_start(self, run_id: str | None, settings: PacedSettings) -> None:
        self.settings = settings
        if self.role == "worker":
            self.pacers.set_max_lateness(settings.rate.max_lateness)
            if self.follower.run_id != run_id:
                self.pacers.reset()  # this run's plan has not arrived yet: paused until it does
            return
        try:
            self.configure(settings)
        except ConfigError as e:
            log.error("ingestload: %s (keeping the previous rate)", e)
        self.worker_pace.clear()
        self._final = None
        self.coordinator.begin(run_id)
        if self.role == "local":
            self.pacers.reset()
            if self.coordinator.clock_started:  # a constant rate: starts with the first send
                plan = self.coordinator.local_plan()
                self.pacers.follow(plan.curve, plan.scales, plan.curve_time, since=plan.since)
        else:
            self.distribute()
        self._spawn(self._plan_loop)

    def _on_spawning_complete(self, user_count: int = 0, **_: Any) -> None:
        """Every user is up: a profile's clock starts now (the first time only)."""
        if self.coordinator.run_id is None or not self.coordinator.start_clock():
            return
        if self.role == "local":
            plan = self.coordinator.local_plan()
            self.pacers.follow(plan.curve, plan.scales, plan.curve_time, since=plan.since)
        else:
            self.distribute()

    def planned_targets(self) -> dict[str, float | None]:
        """Master/local: messages the run has asked of each path so far — the curve's integral since
        its clock started times the path's share, wherever the users are (a worker that never ran
        its share still owes it); ``None`` for as fast as possible."""
        curve, split = self.coordinator.curve, self.coordinator.split
        if curve is None:
            return dict.fromkeys(split)
        due = curve.count_between(0.0, min(self.coordinator.curve_time(), curve.duration))
        return {path: due * share for path, share in split.items()}

    def asked_duration(self) -> float | None:
        """Seconds a profile asks the run to last (``None`` without a profile)."""
        curve = self.coordinator.curve
        return curve.duration if self.profile is not None and curve is not None else None

    def stop(self) -> None:
        """Drain: pacers hand out nothing more."""
        self.pacers.stop()

    def on_test_stop(self, run_id: str | None) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        if self.role != "worker" and run_id is not None:
            per_path = self.freeze()
            log.info("run %s pacing: %s", run_id, format_pacing(sum_snapshots(per_path.values()), per_path))
            if self.guard is not None and self.guard.tripped is not None:
                log.error("run %s failed the rate guard: %s", run_id, self.guard.tripped.describe())

    def freeze(self) -> dict[str, PaceSnapshot]:
        """Master/local, once the senders drained: fix the run's pacing account (per path) as it
        stands. Workers keep reporting until they quit and ``--html`` is written at quit, but
        every report of the run — console, HTML, the web UI — shows this one account."""
        if self._final is None:
            self._final = self.path_totals()
        return dict(self._final)

    # -- plans (master) -------------------------------------------------------------------------

    def _live_workers(self) -> list[Any]:
        from locust.runners import STATE_INIT, STATE_RUNNING, STATE_SPAWNING

        return [
            c for c in self.runner.clients.values() if c.state in (STATE_INIT, STATE_SPAWNING, STATE_RUNNING)
        ]

    def distribute(self) -> None:
        """Master: send every worker whose plan changed (with a profile: every worker) its plan."""
        workers = {w.id: dict(w.user_classes_count) for w in self._live_workers()}
        for worker_id, plan in self.coordinator.plans(workers, self.class_paths).items():
            self.runner.send_message(MSG_RATE, plan.to_wire(), client_id=worker_id)
        self._announce_division(workers)

    def _announce_division(self, workers: Mapping[str, Any]) -> None:
        """Master: one log line whenever the target's division among the workers changes (a
        worker joined, left, or got or lost users), with each worker's new share per path."""
        division = self.coordinator.division(workers)
        if not division or division == self._division:
            return
        self._division = division
        curve = self.coordinator.curve

        def share(fraction: float) -> str:
            return f"{fraction * curve.rate:,.0f}/s" if isinstance(curve, ConstantRate) else f"{fraction:.1%}"

        parts = [
            f"{worker} " + " ".join(f"{path} {share(f)}" for path, f in sorted(scales.items()))
            for worker, scales in division.items()
        ]
        run_id = self.coordinator.run_id
        log.info("run %s: rate divided among %d workers: %s", run_id, len(division), "; ".join(parts))

    def _plan_loop(self) -> None:
        from locust.runners import STATE_SPAWNING

        while True:
            # While users are being dispatched, plans follow them quickly: a worker's share waits
            # for its plan, and a share planned for a worker without users of the path is not sent.
            spawning = self.runner.state == STATE_SPAWNING
            gevent.sleep(PLAN_INTERVAL_SPAWNING if spawning else PLAN_INTERVAL)
            if self.role == "master":
                self.distribute()
            self.check_guard()

    def _on_plan(self, environment: Any, msg: Any, **_: Any) -> None:
        self.follower.apply(RatePlan.from_wire(msg.data), self.pacers, time.monotonic())

    # -- pacing numbers ---------------------------------------------------------------------------

    def path_totals(self) -> dict[str, PaceSnapshot]:
        """Cumulative pacing per path for the run (summed over workers on a master); once the run
        stopped, the account as it stood then (what the console printed)."""
        if self._final is not None:
            return dict(self._final)
        if self.role != "master":
            return self.pacers.snapshots()
        per_path: dict[str, list[PaceSnapshot]] = {}
        for snapshots in self.worker_pace.values():
            for path, snapshot in snapshots.items():
                per_path.setdefault(path, []).append(snapshot)
        return {path: sum_snapshots(s) for path, s in sorted(per_path.items())}

    def totals(self) -> PaceSnapshot:
        """Cumulative pacing of the run over every path (and worker)."""
        return sum_snapshots(self.path_totals().values())

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        data[REPORT_KEY] = {
            "run_id": self.follower.run_id,
            "paths": {path: s.to_wire() for path, s in self.pacers.snapshots().items()},
        }

    def _on_worker_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        report = data.get(REPORT_KEY)
        if report and report.get("run_id") == self.coordinator.run_id and self._final is None:
            self.worker_pace[client_id] = {
                path: PaceSnapshot.from_wire(s) for path, s in report.get("paths", {}).items()
            }

    # -- the rate guard ---------------------------------------------------------------------------

    def check_guard(self) -> Shortfall | None:
        """Feed the guard; on a shortfall longer than the window, fail the run (exit code 5)."""
        if self.guard is None:
            return None
        total = self.totals()
        shortfall = self.guard.update(time.monotonic(), total.intended, total.offered)
        if shortfall is not None:
            log.error(
                "rate guard: %s, below %.0f%% of target for more than %gs; the run will exit with code %d",
                shortfall.describe(),
                self.guard.min_ratio * 100,
                self.guard.window,
                ExitCode.RATE_SHORTFALL,
            )
            if getattr(self.environment, "process_exit_code", None) is None:
                self.environment.process_exit_code = ExitCode.RATE_SHORTFALL
        return shortfall

    def _spawn(self, fn: Any) -> None:
        greenlet = gevent.spawn(fn)
        greenlet.link_exception(lambda g: log.error("ingestload rate task failed: %r", g.exception))
        self._greenlets.append(greenlet)
