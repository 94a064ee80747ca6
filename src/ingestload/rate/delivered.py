"""The load verdict: was the load that was asked for delivered to the system under test?

The Kafka verdict proves that what was acknowledged arrived; it cannot see a run that sent too
little. A run whose every POST was answered 404, whose API users never started (no ``--host``),
or whose worker for one path died at start would otherwise end PASS — half the load, or none,
reported as complete. So every run is also judged on its load, per path (``kafka``, ``api``):

=====================  ========================================================================
target                 messages the schedule asked of the path until the stop (the rate curve's
                       integral × the path's share, computed where the rate is planned — never
                       summed from the workers' own reports, so a worker that never ran still
                       counts); ``None`` for ``--rate 0`` (as fast as possible)
sent                   messages handed to the path's client (from the final ledgers)
failed                 sends certainly not written: the API refused them (4xx/5xx, a refused
                       connection) or the broker did
=====================  ========================================================================

Status: **FAIL** when a path with a target sent nothing, sent less than ``min_offered_ratio`` of
its target (less a second's worth of it: the start and the stop), or had more than
``max_failed_ratio`` of its sends fail; **INCONCLUSIVE** instead of a
shortfall FAIL when workers never sent their ledgers (what they sent is unknown), and when the run
stopped well before the duration asked for (``-t`` or the profile) for another reason than a signal;
otherwise **PASS**. Defaults (:class:`LoadThresholds`) fail the runs above and pass a healthy one.

Example::

    verdict = judge_load([PathLoad("api", target=5_000, sent=5_000, failed=5_000)], LoadThresholds())
    verdict.status, verdict.reasons[0]
    # ('FAIL', 'api: 5,000 of 5,000 sends failed (100.00%) > --max-failed-ratio 0.01 (…)')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS, HopVerdict, Status

#: How much shorter than asked a run may be before it counts as stopped early: Locust's ``-t``
#: includes spawning, and the stop takes a moment.
EARLY_SLACK = 0.9


@dataclass(frozen=True)
class LoadThresholds:
    """What a run must deliver to pass its load verdict."""

    min_offered_ratio: float = 0.9
    """Each path's sent ÷ target must reach this (a tenth short: the system under test, or the load
    generator, could not keep up — more than timing noise at the end of a run)."""
    max_failed_ratio: float = 0.01
    """Each path's failed ÷ sent may not exceed this (k6's customary ``http_req_failed`` threshold)."""
    slack: float = 1.0
    """Seconds of a path's average rate it may be short on top of the ratio: the start (users
    spawning, plans reaching workers) and the stop cost a moment that a short run cannot make up."""


@dataclass(frozen=True)
class PathLoad:
    """What one path was asked for and did."""

    path: str
    """``kafka`` or ``api``."""
    target: float | None
    """Messages the schedule asked of this path until the stop; ``None``: as fast as possible."""
    sent: int
    """Messages handed to the path's client."""
    failed: int
    """Sends certainly not written (refused by the API or the broker)."""

    @property
    def offered_ratio(self) -> float | None:
        """sent ÷ target (``None`` without a target)."""
        return None if not self.target else self.sent / self.target

    def describe(self) -> str:
        target = "as fast as possible" if self.target is None else f"target {self.target:,.0f}"
        ratio = self.offered_ratio
        share = f" ({ratio:.2%})" if ratio is not None else ""
        return f"{self.path}: {target} sent {self.sent:,}{share} failed {self.failed:,}"


@dataclass(frozen=True)
class LoadVerdict:
    """The load verdict of one run."""

    status: Status
    """PASS, FAIL or INCONCLUSIVE."""
    reasons: tuple[str, ...]
    """Why (empty for a PASS)."""
    paths: tuple[PathLoad, ...]
    """Each path's numbers."""
    elapsed: float
    """Seconds from the test's start to its stop."""
    asked: float | None
    """Seconds asked for (``-t`` or the profile's length); ``None``: until stopped."""
    stopped_by: str | None
    """What stopped the run, when it was not the end asked for (e.g. ``a signal``)."""

    def report(self) -> str:
        """The console block: ``LOAD: PASS  kafka: target … sent … | api: …`` and reasons."""
        lines = [f"LOAD: {self.status}  " + " | ".join(p.describe() for p in self.paths)]
        ran = f"ran {self.elapsed:.1f}s" + ("" if self.asked is None else f" of the {self.asked:g}s asked")
        if self.stopped_by:
            ran += f", stopped by {self.stopped_by}"
        lines.append(f"  {ran}")
        lines += [f"  reason: {r}" for r in self.reasons]
        return "\n".join(lines)

    def hop(self) -> HopVerdict:
        """As the run publishes it: the ``load`` section of the verdict file."""
        return HopVerdict("load", "load", self.status, self.reasons, self.report(), self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "paths": {p.path: asdict(p) for p in self.paths},
            "elapsed": round(self.elapsed, 3),
            "asked": self.asked,
            "stopped_by": self.stopped_by,
        }


def judge_load(
    paths: Sequence[PathLoad],
    thresholds: LoadThresholds,
    *,
    elapsed: float = 0.0,
    asked: float | None = None,
    stopped_by: str | None = None,
    missing_workers: Iterable[str] = (),
) -> LoadVerdict:
    """Judge the load of a run (see the module doc)."""
    missing = sorted(missing_workers)
    failures: list[str] = []
    unknowns: list[str] = []
    for p in paths:
        shortfall: str | None = None
        if p.target is not None and p.target < 1:
            pass  # asked for less than one message (a stop right at the start): nothing is short
        elif p.sent == 0:
            of = "" if p.target is None else f" of a target of {p.target:,.0f}"
            shortfall = f"{p.path}: nothing sent{of}"
        elif p.target is not None and p.sent < _least(p.target, thresholds, elapsed):
            shortfall = (
                f"{p.path}: sent {p.sent:,} of a target of {p.target:,.0f} ({p.sent / p.target:.2%}) "
                f"< --min-offered-ratio {thresholds.min_offered_ratio:g}"
            )
        if shortfall is not None:
            if missing:
                unknowns.append(f"{shortfall}, and workers never sent their ledgers: {', '.join(missing)}")
            else:
                failures.append(shortfall)
        if p.sent and p.failed > thresholds.max_failed_ratio * p.sent:
            failures.append(
                f"{p.path}: {p.failed:,} of {p.sent:,} sends failed ({p.failed / p.sent:.2%}) "
                f"> --max-failed-ratio {thresholds.max_failed_ratio:g} (refused by the system under test)"
            )
    if asked is not None and stopped_by is None and elapsed < EARLY_SLACK * asked - 1.0:
        unknowns.append(f"the run stopped after {elapsed:.1f}s of the {asked:g}s asked")
    status = FAIL if failures else INCONCLUSIVE if unknowns else PASS
    return LoadVerdict(status, tuple(failures + unknowns), tuple(paths), elapsed, asked, stopped_by)


def _least(target: float, thresholds: LoadThresholds, elapsed: float) -> float:
    """The fewest messages a path with ``target`` may send: the ratio, less the slack's worth."""
    slack = target * thresholds.slack / elapsed if elapsed > 0 else 0.0
    return thresholds.min_offered_ratio * target - slack


def path_loads(targets: Mapping[str, float | None], ledgers: Iterable[Any]) -> list[PathLoad]:
    """Each path's :class:`PathLoad` from its planned target and the run's producer ledgers (whose
    ``meta["path"]`` names the path)."""
    sent: dict[str, int] = dict.fromkeys(targets, 0)
    failed: dict[str, int] = dict.fromkeys(targets, 0)
    for ledger in ledgers:
        path = str(ledger.meta.get("path", "kafka"))
        sent[path] = sent.get(path, 0) + int(ledger.sent)
        failed[path] = failed.get(path, 0) + len(ledger.failed)
    return [PathLoad(path, targets.get(path), sent[path], failed[path]) for path in sorted(sent)]
