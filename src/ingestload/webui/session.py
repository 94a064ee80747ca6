"""What the web UI, the live page and the report read, kept on the master (or the local process).

:class:`WebSession` follows the tests of one Locust process: at each test start it forgets the
last test's rates and chart; while the test runs it samples the total rates every second for the
chart (a local process samples its own senders and pacers; a master files each worker's
``ingestload_ui`` report); :meth:`WebSession.snapshot` gives everything shown — sections, chart
series, the verdict and its files — as plain data. Workers only add their per-path counters to
each report (:func:`add_worker_report`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent

from ingestload.locust.process import JudgingProcess, ProcessState
from ingestload.rate.lateness import PaceSnapshot, sum_snapshots
from ingestload.webui.live import LiveRates, PathSample, RateHistory
from ingestload.webui.sections import (
    Section,
    TopicLive,
    extra_sections,
    fanout_section,
    pacing_section,
    rate_section,
    sink_section,
    verdict_section,
    verification_section,
)

log = logging.getLogger("ingestload")

REPORT_KEY = "ingestload_ui"
#: Seconds between points of the chart (and samples of a local process).
SAMPLE_INTERVAL = 1.0
E2E = "E2E"


def process_sample(state: ProcessState) -> dict[str, PathSample]:
    """This process's cumulative counters per path for the current run."""
    counters = {sender.meta.get("path"): sender.counters() for sender in state.senders}
    samples = {}
    for path, pace in state.rates.pacers.snapshots().items():
        c = counters.get(path) or {}
        samples[path] = PathSample(
            pace.intended,
            pace.offered,
            int(c.get("acked", 0)),
            int(c.get("in_flight", 0)),
            pace.late,
            pace.dropped,
            pace.max_lateness,
            pace.lateness,
        )
    return samples


def add_worker_report(state: ProcessState, data: dict[str, Any]) -> None:
    """Worker: this process's per-path counters, stamped with its clock, into a report to the master."""
    if state.run_id is not None and state.senders:
        data[REPORT_KEY] = {
            "run_id": state.run_id,
            "at": time.time(),
            "paths": {path: s.to_wire() for path, s in process_sample(state).items()},
        }


class WebSession:
    """The live view of the tests of one master or local process (see module doc)."""

    def __init__(self, state: JudgingProcess) -> None:
        self.state = state
        self.live = LiveRates()
        self.history = RateHistory()
        self.run_id: str | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self._sampler: gevent.Greenlet | None = None

    # -- events -------------------------------------------------------------------------------

    def on_test_start(self) -> None:
        """A test began (after ingestload's own test start: the run id is the new one)."""
        if self.state.run_id is None or self.state.run_id == self.run_id:
            return
        self.run_id = self.state.run_id
        self.live.clear()
        self.history.clear()
        self.started_at, self.stopped_at = time.time(), None
        self._stop_sampler()
        self.sample()
        self._sampler = gevent.spawn(self._sample_loop)

    def on_test_stop(self) -> None:
        """The test stopped (after its verdict): the chart stays as it is."""
        if self.run_id is None or self.stopped_at is not None:
            return
        self._stop_sampler()
        self.stopped_at = time.time()

    def on_worker_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        report = data.get(REPORT_KEY)
        if report and report.get("run_id") == self.run_id and self.stopped_at is None:
            paths = {path: PathSample.from_wire(s) for path, s in (report.get("paths") or {}).items()}
            self.live.observe(client_id, float(report["at"]), paths)

    def sample(self) -> None:
        """Master/local: one point of the chart (a local process files its own counters first)."""
        if self.state.role == "local":  # the pacers' clock: target spans come out exact
            self.live.observe("local", time.monotonic(), process_sample(self.state))
        self.history.add(time.time(), self.live.total())

    def _sample_loop(self) -> None:
        while True:
            gevent.sleep(SAMPLE_INTERVAL)
            if self.state.concluding:
                continue  # the users stopped: the drain and the verdict are no part of the chart
            try:
                self.sample()
            except Exception:  # a sample must never end the chart for the rest of the test
                log.exception("ingestload: sampling the rates for the web UI failed")

    def _stop_sampler(self) -> None:
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None

    # -- what is shown ------------------------------------------------------------------------

    @property
    def phase(self) -> str:
        """``ready`` (no test yet), ``running``, ``concluding`` (drain and verdict) or ``stopped``."""
        if self.run_id is None:
            return "ready"
        if self.state.concluding:
            return "concluding"
        return "running" if self.stopped_at is None and self.state.verdict is None else "stopped"

    def files(self) -> dict[str, str]:
        """The verdict and ledger files of the test shown (those that were written)."""
        verification = self.state.verification
        if verification is None or self.state.verdict is None:
            return {}
        found = {}
        for name, path in (
            ("verdict", verification.settings.verify.verdict_file),
            ("ledger", verification.settings.verify.ledger_file),
        ):
            if path and Path(path).is_file():
                found[name] = path
        return found

    def report_file(self) -> str | None:
        """Where the test shown writes its HTML report at stop (``--report-file``), if anywhere."""
        if self.run_id is None:
            return None
        return self.state.settings.verify.for_run(self.run_id).report_file

    def _topic_live(self) -> dict[str, TopicLive]:
        runner = self.state.environment.runner
        found: dict[str, TopicLive] = {}
        if runner is None:
            return found
        for (name, method), entry in list(runner.stats.entries.items()):
            if method == E2E and entry.num_requests:
                found[name] = TopicLive(
                    entry.num_requests,
                    *(entry.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99)),
                )
        return found

    def sections(self) -> list[Section]:
        """What the tab, the page and the report show for the test, verdict first once there is one."""
        state = self.state
        if self.run_id is None:
            return []
        found: list[Section] = []
        verdict = state.verdict if state.run_id == self.run_id else None
        if verdict is not None:
            found.append(verdict_section(verdict, self.files()))
            fanout = fanout_section(verdict)
            if fanout is not None:
                found.append(fanout)
            stored = sink_section(verdict)
            if stored is not None:
                found.append(stored)
            found += extra_sections(verdict)
        per_path = self.live.current()
        if self.stopped_at is None:
            found.append(rate_section(per_path, self.live.total()))
        pace: dict[str, PaceSnapshot] = state.rates.path_totals()
        if pace:
            found.append(pacing_section(pace, sum_snapshots(pace.values())))
        verification = state.verification
        if verification is not None:
            acked = state.totals()["acked"]
            found.append(
                verification_section(
                    verification.topics,
                    acked,
                    verification.live_counts(acked),
                    self._topic_live(),
                    verdict,
                )
            )
        return found

    def snapshot(self) -> dict[str, Any]:
        """Everything shown, as plain data (the page's ``state.json``, the report's inline data)."""
        runner = self.state.environment.runner
        verdict = self.state.verdict if self.state.run_id == self.run_id else None
        overall = (verdict.get("overall") or verdict) if verdict else None  # every hop's, as the console
        return {
            "run_id": self.run_id,
            "phase": self.phase,
            "locust_state": getattr(runner, "state", None),
            "status": overall.get("status") if overall else None,
            "exit_code": overall.get("exit_code") if overall else None,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "target": self.state.rates.describe_target() if self.run_id else None,
            "sections": [s.to_json() for s in self.sections()],
            "chart": self.history.series(),
            "files": self.files(),
        }
