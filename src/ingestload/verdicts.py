"""One vocabulary for the verdict of every hop (Kafka, fan-out, and those still to come).

Each hop judges on its own and says PASS, FAIL or INCONCLUSIVE; a run's status is their
combination (:func:`combine`), and the process exit code comes from one table
(:class:`ExitCode`), so that CI reads the same numbers whatever was judged.

Example::

    status = combine(kafka_verdict.status, fanout_verdict.status)   # FAIL > INCONCLUSIVE > PASS
    sys.exit(exit_code(status))
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


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
