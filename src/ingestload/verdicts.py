"""One vocabulary for the verdict of every hop (Kafka, fan-out, and those still to come).

Each hop judges on its own and says PASS, FAIL or INCONCLUSIVE; a run's status is their
combination (:func:`combine`), and the process exit code comes from one table
(:class:`ExitCode`), so that CI reads the same numbers whatever was judged.

Example::

    status = combine(kafka_verdict.status, fanout_verdict.status)   # FAIL > INCONCLUSIVE > PASS
    sys.exit(exit_code(status))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any


class Status(StrEnum):
    """A verdict's status. A ``str``: it compares equal to ``"PASS"`` and serialises as its name."""

    PASS = "PASS"
    """Everything the hop had to prove was proven, within the thresholds."""
    FAIL = "FAIL"
    """A definite anomaly above its threshold (it wins over missing information)."""
    INCONCLUSIVE = "INCONCLUSIVE"
    """Something needed for a verdict is missing: never PASS on missing data, never an invented loss."""


PASS, FAIL, INCONCLUSIVE = Status.PASS, Status.FAIL, Status.INCONCLUSIVE


class ExitCode(IntEnum):
    """Process exit codes of ``ingestload run``, ``locust`` with ingestload, and ``ingestload verify``."""

    PASS = 0
    """Every verdict PASS."""
    LOCUST_FAILURES = 1
    """Locust's own code for failed requests (only without a verdict: ``--verify false``)."""
    BAD_INPUT = 2
    """A bad option, file or address, reported in one line before any load starts."""
    FAIL = 3
    """A verdict FAIL."""
    INCONCLUSIVE = 4
    """A verdict INCONCLUSIVE (and none FAIL)."""
    RATE_SHORTFALL = 5
    """The verdicts passed, but the rate guard saw the offered rate below target for too long."""


#: The exit code of each status.
EXIT_CODES: dict[str, int] = {
    Status.PASS: ExitCode.PASS,
    Status.FAIL: ExitCode.FAIL,
    Status.INCONCLUSIVE: ExitCode.INCONCLUSIVE,
}


def exit_code(status: str) -> int:
    """The process exit code of a verdict status."""
    return int(EXIT_CODES[Status(status)])


def combine(*statuses: str | None) -> Status:
    """The status of a run judged by several verdicts (``None``: a hop not judged): FAIL when any
    failed (a definite anomaly wins over missing information, as within each verdict), else
    INCONCLUSIVE when any was, else PASS.

    Example::

        >>> combine("PASS", "INCONCLUSIVE"), combine("INCONCLUSIVE", "FAIL"), combine("PASS", None)
        (<Status.INCONCLUSIVE: 'INCONCLUSIVE'>, <Status.FAIL: 'FAIL'>, <Status.PASS: 'PASS'>)
    """
    present = {Status(s) for s in statuses if s is not None}
    for status in (Status.FAIL, Status.INCONCLUSIVE):
        if status in present:
            return status
    return Status.PASS


@dataclass(frozen=True)
class HopVerdict:
    """One hop's verdict as a run publishes it beside the Kafka verdict (fan-out, load, storage)."""

    section: str
    """Its section of the verdict file, e.g. ``fanout``."""
    label: str
    """How reasons name it in the run's overall reasons, e.g. ``fan-out``."""
    status: Status
    """Its status."""
    reasons: tuple[str, ...] = ()
    """Why (empty for a PASS)."""
    report: str = ""
    """Its block of console lines."""
    document: Mapping[str, Any] = field(default_factory=dict)
    """Its section's content (``status``, ``report`` and ``reasons`` are added)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.document, "status": self.status, "reasons": list(self.reasons), "report": self.report}


def overall(kafka: Mapping[str, Any] | None, hops: Sequence[HopVerdict]) -> dict[str, Any]:
    """The run's status over the Kafka verdict (a verdict document, or ``None``) and every other hop's:
    ``{"status", "exit_code", "reasons"}``, each reason prefixed with its hop."""
    status = combine(None if kafka is None else str(kafka["status"]), *(h.status for h in hops))
    reasons = [] if kafka is None else [f"kafka: {r}" for r in kafka.get("reasons") or []]
    for hop in hops:
        reasons += [f"{hop.label}: {r}" for r in hop.reasons]
    return {"status": status, "exit_code": exit_code(status), "reasons": reasons}
