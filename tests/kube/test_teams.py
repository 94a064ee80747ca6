"""Runs of several teams in one namespace on a real cluster (issue 19).

Four runs at once in one namespace, each named with ``namePrefix`` as a team names its run:
``team-a`` and ``team-b`` (the local overlay: a broker and an API each), ``ext`` (the
external-kafka overlay pointed at team-b's broker, with its credentials in the Secret
``ext-ingestload-kafka``) and ``doomed``, whose master is killed mid-run. Then ``team-a`` again,
the way the README reruns a finished run. Small rates and short runs: this is about names,
addresses, reports and endings, not throughput (test_headless_job and test_scaling measure those).

What the broker holds is counted by ``readback.py`` in the broker's pod; the reports are read from
the namespace's reports store as the README says.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.kube.conftest import FACTS, fresh_namespace
from tests.kube.deploy import (
    STORE,
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

RATE = 400
RUN_TIME = "30s"
#: Every pod's CPU request: four runs (three brokers and APIs, four masters) share a two-core node.
CPU = "50m"
SMALL = {"INGESTLOAD_JOB_RUN_TIME": RUN_TIME, "INGESTLOAD_JOB_USERS": "11", "LOCUST_SPAWN_RATE": "11"}


def job(name: str) -> str:
    return f"{name}-ingestload-master"


def instance(name: str) -> str:
    return f"{name}-ingestload"


@dataclass
class Runs:
    namespace: str
    outcomes: dict[str, Outcome]
    password: str
    """The ext run's SASL password (made up here): it must appear in no log and no report."""
    killed_at: float


def kill_master(kube: Kube, namespace: str, name: str) -> None:
    """SIGKILL every process of the master's container but its PID 1 (ingestload-job): what the
    OOM killer does to the largest processes of a container at its memory limit."""
    script = (
        "import os, signal\n"
        "me = os.getpid()\n"
        "for pid in (int(p) for p in os.listdir('/proc') if p.isdigit()):\n"
        "    if pid not in (1, me):\n"
        "        try: os.kill(pid, signal.SIGKILL)\n"
        "        except ProcessLookupError: pass\n"
    )
    kube.run("exec", "-i", "-n", namespace, f"job/{job(name)}", "--", "python", "-", input=script)


def add_secret(kube: Kube, namespace: str, name: str, data: dict[str, str]) -> None:
    """A Secret from stdin (never on a command line)."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
    kube.run("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))


@pytest.fixture(scope="module")
def runs(kube: Kube) -> Iterator[Runs]:
    """team-a, team-b, ext and doomed at once in one namespace; doomed's master killed mid-run."""
    with fresh_namespace(kube, "teams") as namespace:
        small = {"settings": {"INGESTLOAD_RATE": str(RATE)}, "master_env": SMALL, "cpu_request": CPU}
        for name in ("team-a", "team-b"):
            apply(kube, namespace, "local", workers=1, name=name, **small)
        apply(kube, namespace, "local", workers=2, name="doomed", settings=small["settings"], cpu_request=CPU,
              master_env={**SMALL, "INGESTLOAD_JOB_RUN_TIME": "120s"})  # fmt: skip
        password = "pw-" + secrets.token_hex(12)
        add_secret(
            kube,
            namespace,
            "ext-ingestload-kafka",
            {
                "INGESTLOAD_KAFKA_PROP_SASL_USERNAME": "loadtest",
                "INGESTLOAD_KAFKA_PROP_SASL_PASSWORD": password,
            },
        )
        kube.run("rollout", "status", "-n", namespace, "deploy/team-b-ingestload-broker", "--timeout=300s")
        # Your Kafka is team-b's broker here, which takes no authentication: PLAINTEXT, with the
        # SASL credentials in the run's Secret all the same (librdkafka leaves them unused).
        apply(
            kube,
            namespace,
            "external-kafka",
            workers=1,
            name="ext",
            settings={"INGESTLOAD_RATE": str(RATE), "INGESTLOAD_TOPIC_PREFIX": "ext-"},
            master_env=SMALL,
            cpu_request=CPU,
            kafka={
                "INGESTLOAD_KAFKA_BOOTSTRAP": "team-b-ingestload-broker:9092",
                "INGESTLOAD_KAFKA_PROP_SECURITY_PROTOCOL": "PLAINTEXT",
            },
        )
        wait_for_log(kube, namespace, "| target ", times=2, job=job("doomed"))
        kill_master(kube, namespace, "doomed")
        killed_at = time.monotonic()
        outcomes = {
            name: wait_for_run(kube, namespace, job=job(name))
            for name in ("team-a", "team-b", "ext", "doomed")
        }
        yield Runs(namespace, outcomes, password, killed_at)


def test_two_named_runs_at_once_both_pass_with_their_own_reports(kube: Kube, runs: Runs) -> None:
    """team-a and team-b, side by side in one namespace: each Job Succeeded with PASS, each counted
    exactly what its own broker holds of its run, with its own worker, and each run's reports are
    in the store under its own name."""
    for name in ("team-a", "team-b"):
        outcome = runs.outcomes[name]
        assert (outcome.job_status, outcome.exit_code) == ("Succeeded", 0), outcome.log[-4000:]
        assert outcome.verdict_line().split("VERDICT: ")[1].startswith("PASS")
        held = readback(kube, runs.namespace, outcome.run_id, broker=f"{name}-ingestload-broker")
        assert outcome.count("acked") == held["distinct"] > 0.9 * RATE * 30
        files = reports(kube, runs.namespace, outcome.run_id, instance(name))
        verdict = json.loads(files["verdict.json"])
        assert (verdict["status"], verdict["acked"]) == ("PASS", outcome.count("acked"))
        ledger = json.loads(files["ledger.json"])
        hosts = {p["meta"]["host"] for p in ledger["producers"]}
        assert len(hosts) == 1
        assert all(h.startswith(f"{name}-ingestload-worker-") for h in hosts), hosts
        FACTS.append(
            f"named run {name} ({outcome.run_id}): {outcome.verdict_line().split('VERDICT: ')[1][:60]}"
        )
    assert runs.outcomes["team-a"].run_id != runs.outcomes["team-b"].run_id


def test_a_run_through_external_kafka_passes_and_shows_its_secret_nowhere(kube: Kube, runs: Runs) -> None:
    """The generic external-kafka overlay, named ext, against a broker it does not bring (team-b's):
    PASS, acked = what that broker holds under the run's own topic prefix, Kafka only (the master
    started no API), and the password of its Secret is in no log and no report."""
    outcome = runs.outcomes["ext"]
    assert (outcome.job_status, outcome.exit_code) == ("Succeeded", 0), outcome.log[-4000:]
    held = readback(kube, runs.namespace, outcome.run_id, prefix="ext-", broker="team-b-ingestload-broker")
    assert outcome.count("acked") == held["distinct"] > 0
    assert set(held["per_path"]) == {"kafka"}
    assert "reference ingest API" not in outcome.log
    logs = outcome.log + "".join(
        kube.run("logs", "-n", runs.namespace, pod, check=False)
        for pod in worker_pods(kube, runs.namespace, "ext")
    )
    files = reports(kube, runs.namespace, outcome.run_id, instance("ext"))
    assert runs.password not in logs
    assert not any(runs.password.encode() in data for data in files.values()), sorted(files)
    env = kube.json("get", "job", job("ext"), "-n", runs.namespace)["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert {"secretRef": {"name": "ext-ingestload-kafka", "optional": True}} in env["envFrom"]


def test_a_killed_master_is_inconclusive_with_its_reports_kept_and_its_workers_gone(
    kube: Kube, runs: Runs
) -> None:
    """doomed's master processes SIGKILLed mid-run (the OOM killer's way): the Job Failed with exit
    code 4 — INCONCLUSIVE, never PASS — its verdict and the CSV files Locust had written are in the
    store, its workers were scaled to 0; and once its pod is deleted (an eviction, a node lost) the
    workers' Deployment goes with it instead of restarting workers forever."""
    namespace, outcome = runs.namespace, runs.outcomes["doomed"]
    assert (outcome.job_status, outcome.exit_code) == ("Failed", 4), outcome.log[-4000:]
    assert "VERDICT: PASS" not in outcome.log
    files = reports(kube, namespace, outcome.run_id, instance("doomed"))
    verdict = json.loads(files["verdict.json"])
    assert verdict["status"] == "INCONCLUSIVE", verdict
    assert "locust_stats.csv" in files, sorted(files)
    workers = kube.json("get", "deploy", "doomed-ingestload-worker", "-n", namespace)
    assert workers["spec"]["replicas"] == 0
    owners = workers["metadata"].get("ownerReferences", [])
    assert [o["name"] for o in owners] == [outcome.pod], owners
    FACTS.append(f"master killed: {verdict['status']} ({verdict['reasons'][0]}), files kept: {sorted(files)}")
    kube.run("delete", "pod", outcome.pod, "-n", namespace, "--wait=true")
    deadline = time.monotonic() + 60  # a hang guard: the garbage collector acts within seconds
    while kube.run(
        "get", "deploy", "doomed-ingestload-worker", "-n", namespace, "--ignore-not-found"
    ).strip():
        assert time.monotonic() < deadline, "the workers' Deployment outlived its master's pod by 60 s"
        time.sleep(1)


def test_a_rerun_of_the_same_name_runs_again_and_keeps_the_first_reports(kube: Kube, runs: Runs) -> None:
    """team-a again with `kubectl replace --force` (nothing deleted by hand): a new run id, PASS,
    and the store holds both runs' reports, the latest pointing at the new one."""
    namespace, first = runs.namespace, runs.outcomes["team-a"]
    apply(kube, namespace, "local", workers=1, name="team-a", rerun=True, cpu_request=CPU,
          settings={"INGESTLOAD_RATE": str(RATE)}, master_env=SMALL)  # fmt: skip
    again = wait_for_run(kube, namespace, job=job("team-a"))
    assert (again.job_status, again.exit_code) == ("Succeeded", 0), again.log[-4000:]
    assert again.run_id != first.run_id
    assert (
        json.loads(reports(kube, namespace, again.run_id, instance("team-a"))["verdict.json"])["status"]
        == "PASS"
    )
    assert (
        json.loads(reports(kube, namespace, first.run_id, instance("team-a"))["verdict.json"])["status"]
        == "PASS"
    )
    latest = kube.run("exec", "-n", namespace, STORE, "--", "cat", f"/reports/{instance('team-a')}/latest")
    assert latest.strip() == again.run_id
    FACTS.append(f"rerun of team-a: {first.run_id} then {again.run_id}, both PASS, both kept")
