"""Headless runs on a real cluster: the master Job's status is the verdict, and the reports outlive its pod.

Checks 1, 2 and 5 of issue 12: the ``local`` overlay (the ``ci`` overlay's master Job and three
workers, against the in-cluster broker and reference API) at the shipped 3,000 msg/s for 60 s,
half straight to Kafka and half through the API. What the broker holds is counted by
``readback.py`` in a pod, independently of the verdict.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.kube.conftest import FACTS, fresh_namespace
from tests.kube.deploy import (
    JOB,
    WORKER_SELECTOR,
    WORKERS,
    Kube,
    Outcome,
    apply,
    readback,
    reports,
    wait_for_log,
    wait_for_run,
    worker_pods,
)

pytestmark = pytest.mark.kube

#: The ci overlay's run as shipped: 3,000 msg/s for 60 s.
TARGET = 3000 * 60


@dataclass
class Run:
    namespace: str
    outcome: Outcome
    held: dict[str, Any]
    workers: list[str]
    """The worker pods running while the load ran."""


@pytest.fixture(scope="module")
def clean_run(kube: Kube) -> Iterator[Run]:
    """One clean run of the local overlay (shared by the checks that only read it)."""
    with fresh_namespace(kube, "clean-run") as namespace:
        apply(kube, namespace, "local", workers=3)
        wait_for_log(kube, namespace, "| target ")  # the first status line: the load is on
        workers = worker_pods(kube, namespace)
        outcome = wait_for_run(kube, namespace)
        yield Run(namespace, outcome, readback(kube, namespace, outcome.run_id), workers)


def test_clean_run_succeeds_with_pass_and_acked_equals_what_the_broker_holds(clean_run: Run) -> None:
    """Job Succeeded, exit 0, ``VERDICT: PASS`` in the master pod's log, and the acked count equals
    the distinct messages of the run that a separate reader finds in the broker, on both paths."""
    outcome, held = clean_run.outcome, clean_run.held
    assert (outcome.job_status, outcome.exit_code) == ("Succeeded", 0), outcome.log[-4000:]
    assert outcome.verdict_line().split("VERDICT: ")[1].startswith("PASS")
    acked = outcome.count("acked")
    verdict = outcome.verdict_line().split("VERDICT: ")[1][:80]
    FACTS.append(f"clean run {outcome.run_id}: {verdict}; broker holds {held['distinct']:,}")
    assert acked == held["distinct"]
    assert held["duplicates"] == 0
    assert abs(acked - TARGET) <= 0.02 * TARGET, f"{acked:,} acked for a target of {TARGET:,}"
    for path in ("kafka", "api"):  # split 1:1 between the paths
        assert held["per_path"].get(path, 0) >= 0.4 * acked, held["per_path"]


def test_the_image_verifies_with_its_native_reader(kube: Kube, clean_run: Run) -> None:
    """The image's verifier has its native reader (built in the Containerfile's build stage) and trusts
    it against the image's confluent-kafka: asked in a running pod of the same image."""
    answer = kube.run(
        "exec", "-n", clean_run.namespace, "deploy/ingestload-api", "--", "python", "-c",
        "from ingestload.verify import scan; print(scan.unavailable() or 'native reader in use')",
    )  # fmt: skip
    assert answer.strip().splitlines()[-1] == "native reader in use", answer


def test_clean_run_used_three_worker_pods_and_ends_them(kube: Kube, clean_run: Run) -> None:
    """The load came from three worker pods (each message's producer was in one of them), and
    when the Job ended its workers were scaled to 0: every worker pod is going away."""
    assert len(clean_run.workers) == 3, clean_run.workers
    ledger = json.loads(reports(kube, clean_run.namespace, clean_run.outcome.run_id)["ledger.json"])
    host_of = {p["producer_id"]: p["meta"]["host"] for p in ledger["producers"]}
    assert set(clean_run.held["per_producer"]) <= set(host_of)
    assert {host_of[p] for p in clean_run.held["per_producer"]} == set(clean_run.workers)
    deployment = kube.json("get", "deploy", WORKERS, "-n", clean_run.namespace)
    assert deployment["spec"]["replicas"] == 0
    deadline = time.monotonic() + 60  # a hang guard: the scale-down is asked for before the Job ends
    while any(
        "deletionTimestamp" not in pod["metadata"]
        for pod in kube.json("get", "pods", "-n", clean_run.namespace, "-l", WORKER_SELECTOR)["items"]
    ):
        assert time.monotonic() < deadline, "worker pods not terminating 60 s after the Job ended"
        time.sleep(1)


def test_clean_run_ends_its_log_with_the_verdict_and_the_counts_per_topic(clean_run: Run) -> None:
    """The master's log ends with the verdict and the run's messages per topic (after Locust's
    summary tables), and those counts are what the broker holds."""
    lines = clean_run.outcome.log.strip().splitlines()
    # Locust's summary tables (stdout and stderr interleave in a container's log) come before or
    # after the final verdict line; the per-topic counts and the two hints after them are last.
    assert any(f"run {clean_run.outcome.run_id}: VERDICT PASS (exit code 0)" in line for line in lines[-45:])
    heading = f"Messages of run {clean_run.outcome.run_id} that landed in Kafka"
    at = max(i for i, line in enumerate(lines) if line.startswith(heading))
    assert len(lines) - at <= 10, lines[at:]
    printed = {}
    for line in lines[at + 1 :]:
        fields = line.split()
        if len(fields) == 2 and fields[1].replace(",", "").isdigit():
            printed[fields[0]] = int(fields[1].replace(",", ""))
    total = printed.pop("total")
    assert printed == clean_run.held["per_topic"]
    assert total == clean_run.held["distinct"]


def test_api_dropping_messages_fails_the_job_with_exit_code_3_and_the_exact_loss(
    kube: Kube, namespace: str
) -> None:
    """With the API's --fault-drop (answered 2xx, never produced) the Job fails, the pod exits 3,
    and the verdict's lost count is exactly what the API dropped — which is also acked minus what
    the broker holds."""
    apply(kube, namespace, "local", workers=3, api_env={"INGESTLOAD_API_FAULT_DROP": "0.001"})
    outcome = wait_for_run(kube, namespace)
    assert (outcome.job_status, outcome.exit_code) == ("Failed", 3), outcome.log[-4000:]
    assert outcome.verdict_line().split("VERDICT: ")[1].startswith("FAIL")
    faults = json.loads(
        kube.run(
            "exec", "-n", namespace, "deploy/ingestload-api", "--", "python", "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/debug/faults').read().decode())",
        )
    )  # fmt: skip
    dropped = faults["counts"]["dropped"]
    held = readback(kube, namespace, outcome.run_id)
    FACTS.append(
        f"fault-drop run: exit {outcome.exit_code}, lost {outcome.count('lost')}, API dropped {dropped}"
    )
    assert dropped > 0
    assert outcome.count("lost") == dropped
    assert outcome.count("acked") - held["distinct"] == dropped
    assert held["duplicates"] == 0


def test_reports_stay_retrievable_after_the_master_pod_is_gone(kube: Kube, clean_run: Run) -> None:
    """Verdict, ledger, Locust's CSV and HTML report come back from the cluster after the Job and
    its pod were deleted, and they describe the run that the log and the broker describe."""
    namespace, outcome = clean_run.namespace, clean_run.outcome
    kube.run("delete", "job", JOB, "-n", namespace, "--cascade=foreground", "--wait=true")
    assert not kube.json("get", "pods", "-n", namespace, "-l", f"job-name={JOB}")["items"]
    files = reports(kube, namespace, outcome.run_id)
    assert {"verdict.json", "ledger.json", "locust_stats.csv", "report.html"} <= set(files), sorted(files)
    verdict = json.loads(files["verdict.json"])
    assert (verdict["status"], verdict["acked"]) == ("PASS", outcome.count("acked"))
    assert verdict["seen_by_topic"] == clean_run.held["per_topic"]
    ledger = json.loads(files["ledger.json"])
    assert ledger["run_id"] == outcome.run_id
    assert sum(p["acked_count"] for p in ledger["producers"]) == clean_run.held["distinct"]
    rows = {
        (r["Type"], r["Name"]): r for r in csv.DictReader(io.StringIO(files["locust_stats.csv"].decode()))
    }
    kafka_acks = sum(int(r["Request Count"]) for (kind, _), r in rows.items() if kind == "KAFKA")
    assert kafka_acks == clean_run.held["per_path"]["kafka"]
    assert b"E2E" in files["report.html"]  # Locust's report carries the verifier's rows too
