"""Run verification as seen from the Locust master (or a local runner).

:class:`LocustVerification` starts the verifier process when a test starts, turns its progress
into Locust statistics rows (request type ``E2E``, one per topic, with the end-to-end latency
as response time), and when the test stops takes the merged ledger, waits for the verdict,
prints it, records anomalies as Locust errors, writes the verdict and ledger files and sets
the process exit code.

Example (inside ingestload's plugin)::

    verification = LocustVerification(environment, settings, topics, run_id)
    verification.start()            # at test_start, before any user runs
    …
    verdict = verification.conclude(ledger, missing_workers=set())   # at test_stopping
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import gevent
import orjson

from ingestload.messages.ledger import AckLedger
from ingestload.verdicts import EXIT_CODES, INCONCLUSIVE
from ingestload.verify.process import VerifierProcess
from ingestload.verify.verdict import Thresholds

log = logging.getLogger("ingestload")


class VerifySettings(Protocol):
    """What the conclusion of a run reads from the settings (:class:`ingestload.settings.Settings` has it)."""

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers, recorded in the ledger file."""

    @property
    def envelope_field(self) -> str:
        """JSON member carrying the envelope on the HTTP path."""

    @property
    def drain_timeout(self) -> float:
        """Seconds the verifier may take to reach the end after the drain."""

    @property
    def max_lost(self) -> int:
        """Lost messages tolerated."""

    @property
    def max_duplicated(self) -> int:
        """Duplicate copies tolerated."""

    @property
    def max_corrupted(self) -> int:
        """Corrupted messages tolerated."""

    @property
    def max_misrouted(self) -> int:
        """Copies on a wrong topic tolerated."""

    @property
    def late_grace(self) -> float:
        """Seconds the verifier reads on after the drain before it takes the end offsets."""

    @property
    def verdict_file(self) -> str | None:
        """Where to write the verdict JSON."""

    @property
    def ledger_file(self) -> str | None:
        """Where to write the ledger JSON."""

    def consumer_config(self) -> dict[str, str]:
        """The verifier's librdkafka consumer config."""


E2E = "E2E"
#: Extra seconds, beyond the drain window, to wait for the verifier's answer.
VERDICT_GRACE = 60.0


def add_latency_rows(stats: Any, latency: Mapping[str, Mapping[str, int]], now: float) -> None:
    """Merge latency buckets (topic → ms → count) into Locust's stats as ``E2E`` rows."""
    from locust.stats import StatsEntry, bucket_response_time

    for topic, buckets in latency.items():
        counts = {int(ms): int(n) for ms, n in buckets.items()}
        total = sum(counts.values())
        if not total:
            continue
        response_times: dict[int, int] = {}
        for ms, n in counts.items():
            key = bucket_response_time(max(ms, 0))
            response_times[key] = response_times.get(key, 0) + n
        entry = StatsEntry.unserialize(
            {
                "name": topic,
                "method": E2E,
                "last_request_timestamp": now,
                "start_time": now,
                "num_requests": total,
                "num_none_requests": 0,
                "num_failures": 0,
                "total_response_time": sum(max(ms, 0) * n for ms, n in counts.items()),
                "max_response_time": max(counts),
                "min_response_time": max(min(counts), 0),
                "total_content_length": 0,
                "response_times": response_times,
                "num_reqs_per_sec": {int(now): total},
                "num_fail_per_sec": {},
            },
            stats,
        )
        stats.entries[(topic, E2E)].extend(entry)


def add_anomaly_errors(
    stats: Any, counts: Mapping[tuple[str, str], int], now: float, request_type: str = E2E
) -> None:
    """Record anomalies ((topic, kind) → count) as failures of the ``E2E`` rows (or another request
    type's, e.g. the fan-out's ``WS``) and in Locust's errors."""
    from locust.stats import StatsError

    for (topic, kind), count in counts.items():
        if count <= 0:
            continue
        entry = stats.entries[(topic, request_type)]
        entry.num_failures += count
        entry.num_fail_per_sec[int(now)] += count
        key = StatsError.create_key(request_type, topic, kind)
        error = stats.errors.get(key)
        if error is None:
            error = stats.errors[key] = StatsError(request_type, topic, kind, 0)
        error.occurrences += count


class LocustVerification:
    """The verifier of one test run, from start to verdict."""

    def __init__(
        self, environment: Any, settings: VerifySettings, topics: Iterable[str], run_id: str
    ) -> None:
        self.environment = environment
        self.settings = settings
        self.topics = sorted(set(topics))
        self.run_id = run_id
        self.process: VerifierProcess | None = None
        self._follower: gevent.Greenlet | None = None
        self.live: dict[str, int] = {
            "records": 0,
            "duplicated": 0,
            "corrupted": 0,
            "misrouted": 0,
            "foreign": 0,
        }
        self.start_offsets: dict[tuple[str, int], int] = {}
        self.error: str | None = None
        self.verdict: dict[str, Any] | None = None

    @property
    def thresholds(self) -> Thresholds:
        s = self.settings
        return Thresholds(
            max_lost=s.max_lost,
            max_duplicated=s.max_duplicated,
            max_corrupted=s.max_corrupted,
            max_misrouted=s.max_misrouted,
        )

    def start(self) -> None:
        """Start the verifier and wait until it holds its start offsets (before load begins)."""
        try:
            self.process = VerifierProcess(
                self.settings.consumer_config(),
                self.topics,
                self.run_id,
                envelope_field=self.settings.envelope_field,
                thresholds=self.thresholds,
                on_progress=self._on_progress,
            )
            ready = self.process.wait_ready()
        except OSError as e:
            self.error = f"cannot start the verifier process: {e}"
            return
        if not ready:
            self.error = self.process.error
            log.error("ingestload: the verifier could not start: %s", self.error)
            return
        self.start_offsets = dict(self.process.start)
        self._follower = gevent.spawn(self.process.follow)

    def _on_progress(self, progress: Mapping[str, Any]) -> None:
        self.live = {
            "records": int(progress.get("records", 0)),
            "duplicated": int(progress.get("duplicated_in_partition", 0)),
            "corrupted": int(progress.get("corrupted", 0)),
            "misrouted": int(progress.get("misrouted", 0)),
            "foreign": int(progress.get("foreign", 0)),
        }
        latency = progress.get("latency") or {}
        if latency and self.environment.runner is not None:
            add_latency_rows(self.environment.runner.stats, latency, time.time())

    def live_counts(self, acked: int) -> dict[str, int]:
        """For the status line: seen so far and acknowledged-but-unseen."""
        seen = self.live["records"] - self.live["duplicated"]
        return {**self.live, "seen": seen, "unseen": max(0, acked - seen)}

    def conclude(self, ledger: AckLedger, missing_workers: Iterable[str]) -> dict[str, Any]:
        """Hand the ledger to the verifier, wait for the verdict, and publish it."""
        missing = sorted(missing_workers)
        final_at = time.time()
        if self.process is not None and self.error is None:
            self.process.finish(ledger, self.settings.drain_timeout, missing, self.settings.late_grace)
            if self._follower is not None:
                self._follower.join(timeout=self.settings.drain_timeout + VERDICT_GRACE)
            self.verdict = self.process.verdict
            report = self.process.report
            if self.verdict is None:
                self.error = self.process.error or "no verdict from the verifier within the drain window"
            self.process.stop()
        if self.verdict is None:
            self.verdict, report = self._inconclusive(ledger, missing)
        # When the final ledger was complete (wall clock): records stamped later came after the drain.
        self.verdict = {**self.verdict, "ledger_final_at": final_at}
        report = (report or "") + self.rejudge_hint(self.verdict)
        self._publish(self.verdict, report, ledger, missing)
        return self.verdict

    def rejudge_hint(self, verdict: Mapping[str, Any]) -> str:
        """The line that says when and how to judge the run again: copies that land after the verifier
        stopped watching (``watched_s`` after the last acknowledgement) are not in the live verdict."""
        watched = verdict.get("watched_s")
        ledger_file = self.settings.ledger_file
        if ledger_file:
            command = f"ingestload verify --ledger {ledger_file}"
        else:
            command = "ingestload verify --ledger FILE (write one with --ledger-file)"
        when = (
            f"late copies (a pipeline's retries, duplicates, corrupted re-sends) that land more than "
            f"{watched:.1f} s after the last acknowledgement are not in this verdict"
            if isinstance(watched, (int, float))
            else "late copies that land after the verifier stopped are not in this verdict"
        )
        return f"\n  re-judge: {when}; once the pipeline has settled, run `{command}`"

    def _inconclusive(self, ledger: AckLedger, missing: list[str]) -> tuple[dict[str, Any], str]:
        totals = ledger.totals()
        reason = f"verifier: {self.error or 'verification did not run'}"
        verdict = {
            "status": INCONCLUSIVE,
            "run_id": self.run_id,
            "acked": totals["acked"],
            "exit_code": EXIT_CODES[INCONCLUSIVE],
            "reasons": [reason]
            + ([f"worker(s) never reported their final ledger: {', '.join(missing)}"] if missing else []),
        }
        report = f"VERDICT: INCONCLUSIVE  acked={totals['acked']:,}\n  reason: {reason}"
        return verdict, report

    def _publish(
        self, verdict: Mapping[str, Any], report: str, ledger: AckLedger, missing: list[str]
    ) -> None:
        status = verdict["status"]
        for line in report.splitlines():
            (log.info if status == "PASS" else log.error)("%s", line)
        runner = self.environment.runner
        if runner is not None:
            counts: dict[tuple[str, str], int] = {}
            for topic, n in (verdict.get("lost_by_topic") or {}).items():
                counts[(topic, "lost")] = n
            for topic, anomalies in (verdict.get("anomalies_by_topic") or {}).items():
                for kind, n in anomalies.items():
                    counts[(topic, kind)] = n
            add_anomaly_errors(runner.stats, counts, time.time())
        code = int(verdict["exit_code"])
        # FAIL and INCONCLUSIVE decide the exit code; a PASS keeps a failure already set during
        # the run, such as the rate guard's 5.
        if code != 0 or not self.environment.process_exit_code:
            self.environment.process_exit_code = code
        if getattr(self.environment.parsed_options, "csv_prefix", None):
            # Locust's CSV writer rewrites its files once a second and does not write again on
            # close: give it one more turn so the verdict's rows reach the CSV files.
            from locust.stats import CSV_STATS_INTERVAL_SEC

            gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)
        if self.settings.verdict_file:
            self._write(self.settings.verdict_file, {**verdict, "report": report})
        if self.settings.ledger_file:
            self._write(self.settings.ledger_file, self.ledger_document(ledger, missing))

    def ledger_document(self, ledger: AckLedger, missing_workers: Iterable[str] = ()) -> dict[str, Any]:
        """What ``ingestload verify --ledger`` needs to judge the run again later."""
        return {
            "run_id": self.run_id,
            "topics": self.topics,
            "start": [[t, p, o] for (t, p), o in sorted(self.start_offsets.items())],
            "kafka_bootstrap": self.settings.kafka_bootstrap,
            "envelope_field": self.settings.envelope_field,
            # The run's thresholds: `ingestload verify --ledger FILE` judges by them unless told otherwise.
            "thresholds": dict(self.thresholds.__dict__),
            "written_at": time.time(),
            "missing_workers": sorted(missing_workers),
            "producers": ledger.to_json(),
        }

    @staticmethod
    def _write(path: str, document: Mapping[str, Any]) -> None:
        target = Path(path)
        if target.parent != Path():
            target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        log.info("wrote %s", target)
