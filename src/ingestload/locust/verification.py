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
from typing import Any

import gevent

from ingestload.locust.publish import write_json
from ingestload.messages.ledger import AckLedger
from ingestload.settings import Settings
from ingestload.verdicts import EXIT_CODES, INCONCLUSIVE, PASS
from ingestload.verify.process import VerifierProcess, VerifierShards
from ingestload.verify.verdict import Thresholds

log = logging.getLogger("ingestload")


E2E = "E2E"
#: Extra seconds, beyond the drain window, to wait for the verifier's answer.
VERDICT_GRACE = 60.0


def add_latency_rows(
    stats: Any, latency: Mapping[str, Mapping[Any, int]], now: float, request_type: str = E2E
) -> None:
    """Merge latency buckets (topic → ms → count) into Locust's stats as ``E2E`` rows (or another
    request type's, e.g. the storage hop's ``SINK``)."""
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
                "method": request_type,
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
        stats.entries[(topic, request_type)].extend(entry)


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

    def __init__(self, environment: Any, settings: Settings, topics: Iterable[str], run_id: str) -> None:
        self.environment = environment
        self.settings = settings
        self.topics = sorted(set(topics))
        self.run_id = run_id
        self.process: VerifierProcess | VerifierShards | None = None
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
        return self.settings.verify.thresholds

    def start(self) -> None:
        """Start the verifier and wait until it holds its start offsets (before load begins)."""
        count = self.settings.verify.verifier_processes
        where = (self.settings.kafka.consumer_config(), self.topics, self.run_id)
        how: dict[str, Any] = {
            "envelope_field": self.settings.messages.envelope_field,
            "body": self.settings.body_spec().to_dict(),
            "thresholds": self.thresholds,
            "on_progress": self._on_progress,
        }
        try:
            if count > 1:  # several share the partitions (--verifier-processes)
                self.process = VerifierShards(count, *where, **how)
            else:
                self.process = VerifierProcess(*where, **how)
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
            self.process.finish(
                ledger, self.settings.run.drain_timeout, missing, self.settings.verify.late_grace
            )
            if self._follower is not None:
                self._follower.join(timeout=self.settings.run.drain_timeout + VERDICT_GRACE)
            self.verdict = self.process.verdict
            report = self.process.report
            if self.verdict is None:
                self.error = self.process.error or "no verdict from the verifier within the drain window"
            self.process.stop()
        if self.verdict is None:
            self.verdict, report = self._inconclusive(ledger, missing)
        # When the final ledger was complete (wall clock): records stamped later came after the drain.
        final = {**self.verdict, "ledger_final_at": final_at}
        report = (report or "") + self.rejudge_hint(final)
        self.verdict = self._publish(final, report, ledger, missing)
        return self.verdict

    def rejudge_hint(self, verdict: Mapping[str, Any]) -> str:
        """The line that says how to judge the run again: copies that land after the verifier stopped
        watching (the verdict's ``watched for`` line) are not in the live verdict."""
        ledger_file = self.settings.verify.ledger_file
        if ledger_file:
            command = f"ingestload verify --ledger {ledger_file}"
        else:
            command = "ingestload verify --ledger FILE (write one with --ledger-file)"
        return (
            f"\n  re-judge: once the pipeline has settled, run `{command}` (on a Kafka that outlives the run)"
        )

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
    ) -> dict[str, Any]:
        """Log the Kafka verdict, add its anomalies to Locust's errors, write the ledger file; returns
        the verdict document (published with the other hops': :mod:`~ingestload.locust.publish`)."""
        status = verdict["status"]
        for line in report.splitlines():
            (log.info if status == PASS else log.error)("%s", line)
        runner = self.environment.runner
        if runner is not None:
            counts: dict[tuple[str, str], int] = {}
            for topic, n in (verdict.get("lost_by_topic") or {}).items():
                counts[(topic, "lost")] = n
            for topic, anomalies in (verdict.get("anomalies_by_topic") or {}).items():
                for kind, n in anomalies.items():
                    counts[(topic, kind)] = n
            add_anomaly_errors(runner.stats, counts, time.time())
        if self.settings.verify.ledger_file:
            write_json(self.settings.verify.ledger_file, self.ledger_document(ledger, missing))
        return {**verdict, "report": report}

    def ledger_document(self, ledger: AckLedger, missing_workers: Iterable[str] = ()) -> dict[str, Any]:
        """What ``ingestload verify --ledger`` needs to judge the run again later."""
        return {
            "run_id": self.run_id,
            "topics": self.topics,
            "start": [[t, p, o] for (t, p), o in sorted(self.start_offsets.items())],
            "cluster_id": self.process.cluster_id if self.process is not None else None,
            "kafka_bootstrap": self.settings.kafka.address,
            "envelope_field": self.settings.messages.envelope_field,
            "body": self.settings.body_spec().to_dict(),
            # The run's thresholds: `ingestload verify --ledger FILE` judges by them unless told otherwise.
            "thresholds": dict(self.thresholds.__dict__),
            "written_at": time.time(),
            "missing_workers": sorted(missing_workers),
            "producers": ledger.to_json(),
        }
