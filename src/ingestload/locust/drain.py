"""The drain protocol at stop: every acknowledgement in before the verdict, on every process.

Locust's master gives workers about half a second after ``quit``, which is not enough to
receive the last acknowledgements. So on ``test_stopping`` the master sends
:data:`MSG_DRAIN` to every live worker that has not answered yet; each worker stops sending,
drains every sender at once (:func:`drain_all`: cooperatively, never a blocking flush), pushes
a final stats report and answers :data:`MSG_DRAINED` with its counters and ledgers. The
master (:class:`WorkerAccounts`) waits for every answer (``--drain-timeout`` plus
:data:`DRAIN_GRACE`); a worker that never answers is missing, and a verdict with a missing
worker is INCONCLUSIVE. A worker that leaves mid-run (SIGTERM: a pod deleted or scaled in)
drains and answers on its way out, so its ledger counts. The master knows a worker from the
moment it connects (Locust's ``worker_connect``), not from its first stats report (~3 s later):
a worker killed before it ever reported, whose acknowledged messages may never reach Kafka, is
still named as missing.

Example (what the master does at stop)::

    accounts.drain(runner, run_id, timeout=settings.run.drain_timeout)
    verdict = verification.conclude(accounts.ledger(), accounts.missing)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import gevent

from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.status import WorkerRates, add_counters

log = logging.getLogger("ingestload")

MSG_DRAIN = "ingestload_drain"
"""Master → worker: stop sending, drain, answer with :data:`MSG_DRAINED`."""
MSG_DRAINED = "ingestload_drained"
"""Worker → master: ``{run_id, counters, ledgers}`` once its senders drained."""
DRAIN_GRACE = 10.0
"""Extra seconds the master waits for drained answers beyond the workers' own drain timeout."""


def drain_all(senders: Sequence[Any], timeout: float) -> list[int]:
    """Drain every sender at once, all within one ``timeout``; returns what each still had in flight.

    One after another, two slow paths would take twice as long as a master waits for a worker.
    """
    deadline = time.monotonic() + timeout
    jobs = [gevent.spawn(sender.drain, max(0.0, deadline - time.monotonic())) for sender in senders]
    gevent.joinall(jobs)
    return [
        int(job.value) if job.successful() else int(sender.in_flight)
        for sender, job in zip(senders, jobs, strict=True)
    ]


def drained_message(run_id: str, counters: Mapping[str, int], senders: Sequence[Any]) -> dict[str, Any]:
    """The body of a worker's :data:`MSG_DRAINED` answer: its final counters and every sender's ledger."""
    return {
        "run_id": run_id,
        "counters": dict(counters),
        "ledgers": [sender.ledger().to_dict() for sender in senders],
    }


class WorkerAccounts:
    """Master: what each worker reported during one run, who answered the drain, their final ledgers."""

    def __init__(self) -> None:
        self.counters: dict[str, dict[str, int]] = {}
        """Latest cumulative counters per worker (from reports, then from its drained answer)."""
        self.ledgers: dict[str, list[ProducerLedger]] = {}
        """Final ledgers per worker that answered the drain."""
        self.rates = WorkerRates()
        """Each worker's msg/s over the span between its last two reports."""
        self.drained: set[str] = set()
        """Workers that answered the drain."""
        self.missing: set[str] = set()
        """Workers asked to drain that never answered (set by :meth:`drain`)."""
        self.known: set[str] = set()
        """Workers connected during this run (at its start, or since): each owes a drained answer."""
        self._lag = 0.0

    def clear(self, connected: Iterable[str] = ()) -> None:
        """Forget the previous run's accounts (a new test starts); ``connected``: the workers connected
        now, each of which will have to answer this run's drain."""
        self.known = set(connected)
        self.counters.clear()
        self.ledgers.clear()
        self.rates.clear()
        self.drained.clear()
        self.missing.clear()
        self._lag = 0.0

    def on_connect(self, client_id: str) -> None:
        """A worker connected (Locust's ``worker_connect``): from now on it owes this run a drained answer."""
        self.known.add(client_id)

    def on_report(self, client_id: str, report: Mapping[str, Any]) -> None:
        """File a worker's periodic report (already checked to be of this run)."""
        self.counters[client_id] = dict(report)
        if "at" in report:
            self.rates.report(client_id, float(report["at"]), report)
        self._lag = max(self._lag, float(report.get("lag_ms", 0)) / 1000)

    def on_drained(self, client_id: str, data: Mapping[str, Any]) -> None:
        """File a worker's :data:`MSG_DRAINED` answer (already checked to be of this run)."""
        self.counters[client_id] = dict(data.get("counters") or {})
        self.ledgers[client_id] = [ProducerLedger.from_dict(d) for d in data.get("ledgers") or []]
        self.drained.add(client_id)

    def take_lag(self) -> float:
        """The largest pacing lag any worker reported since the last call (seconds)."""
        lag, self._lag = self._lag, 0.0
        return lag

    def totals(self) -> dict[str, int]:
        """The run's cumulative counters, summed over workers."""
        return add_counters(list(self.counters.values()))

    def drain(self, runner: Any, run_id: str | None, timeout: float) -> None:
        """Ask every live worker that has not answered yet to drain, and wait for all answers."""
        from locust.runners import STATE_MISSING

        expected = {c.id for c in runner.clients.values() if c.state != STATE_MISSING}
        for worker_id in expected - self.drained:
            runner.send_message(MSG_DRAIN, {"run_id": run_id}, client_id=worker_id)
        deadline = time.monotonic() + timeout + DRAIN_GRACE
        while not expected <= self.drained and time.monotonic() < deadline:
            gevent.sleep(0.05)
        self.missing = expected - self.drained
        if self.missing:
            log.error("workers that never reported their final counts: %s", ", ".join(sorted(self.missing)))

    def ledger(self) -> AckLedger:
        """Every drained worker's ledgers, merged."""
        return AckLedger(p for ledgers in self.ledgers.values() for p in ledgers)

    def unanswered(self) -> set[str]:
        """Workers the verdict must name as missing: never answered the drain, reported and never
        drained, or connected and never drained (killed before their first report)."""
        return self.missing | ((set(self.counters) | self.known) - self.drained)
