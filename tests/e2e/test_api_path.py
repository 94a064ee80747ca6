"""The HTTP path end to end: IngestApiUser → the reference ingest API → Kafka, judged by the verifier."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from ingestload.api.testing import run_api
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, locust_command
from tests.oracle import read_copies

pytestmark = pytest.mark.e2e


def crash_after(api, accepted: int) -> threading.Thread:
    """SIGKILL the API once it has accepted ``accepted`` messages (whatever the machine's speed)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if api.get("/debug/faults").json()["accepted"] >= accepted:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        api.kill()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def api_run(
    root: Path, api, kafka: str, prefix: str, verdict: Path, args: str
) -> subprocess.CompletedProcess:
    """Run locustfiles/api.py against ``api``; its log tail is appended to stderr for failure messages."""
    command = locust_command(
        root / "locustfiles" / "api.py",
        *f"--headless --only-summary --host {api.url} --kafka-bootstrap {kafka} --topic-prefix {prefix} "
        f"--verdict-file {verdict} {args}".split(),
    )
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=180, cwd=root, env=os.environ.copy()
    )
    done.stderr += "\n--- ingest API log (tail) ---\n" + api.log()[-3000:]
    return done


@pytest.mark.parametrize(
    ("batch_size", "extra", "stats_row"),
    [
        (1, "", "/v1/messages/movementData"),
        (25, "", "/v1/messages/movementData:batch"),
        (25, "--api-batch-path /v1/messages:batch", "/v1/messages:batch"),  # every type in one array
    ],
)
def test_clean_api_run_passes(kafka, prefix, root, tmp_path, batch_size, extra, stats_row):
    """Single messages, per-type or mixed batches through the reference API: every 2xx'd message
    is in Kafka once."""
    verdict_file = tmp_path / "v.json"
    # 30 users: one request in flight each
    args = f"-u 30 -r 30 -t 4s --rate 1500 --api-batch-size {batch_size} {extra}"
    with run_api(kafka, "--topic-prefix", prefix) as api:
        done = api_run(root, api, kafka, prefix, verdict_file, args)
    assert done.returncode == 0, describe_output(done)
    v = json.loads(verdict_file.read_text())
    assert v["status"] == "PASS"
    in_kafka = read_copies(kafka, Catalogue.load().topics(prefix), v["run_id"])
    assert v["acked"] == v["seen"] == len(in_kafka) > 0
    assert (v["failed"], v["unknown"], v["producers"]) == (0, 0, 1)
    assert f"POST     {stats_row} " in done.stderr  # the HTTP requests are in Locust's stats


@pytest.mark.parametrize(
    ("switch", "counter", "verdict_key"),
    [("--fault-drop", "dropped", "lost"), ("--fault-duplicate", "duplicated", "duplicated")],
)
def test_fault_switch_fails_with_the_exact_count(kafka, prefix, root, tmp_path, switch, counter, verdict_key):
    """An API that drops (answers 2xx, never produces) or duplicates: FAIL with exactly what it did."""
    verdict_file = tmp_path / "v.json"
    with run_api(kafka, "--topic-prefix", prefix, switch, "0.02", "--fault-seed", "11") as api:
        done = api_run(
            root, api, kafka, prefix, verdict_file, "-u 5 -r 5 -t 4s --rate 1500 --api-batch-size 10"
        )
        counts = api.get("/debug/faults").json()["counts"]
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    injected = (
        counts[counter] - counts.get("duplicate_failed", 0) if counter == "duplicated" else counts[counter]
    )
    assert injected > 0
    assert v[verdict_key] == injected
    assert v["status"] == "FAIL"


def test_answering_before_delivery_then_crashing_loses_exactly_what_was_acknowledged(
    kafka, prefix, root, tmp_path
):
    """The naive API (2xx before Kafka acknowledged) crashes: all it acknowledged is lost, and no more."""
    verdict_file = tmp_path / "v.json"
    naive = (
        "--fault-ack-before-delivery",
        "1",
        "--request-timeout",
        "120",
        "--kafka-config",
        "linger.ms=60000",
    )
    with run_api(kafka, "--topic-prefix", prefix, *naive) as api:
        crash = crash_after(api, accepted=600)
        try:
            done = api_run(root, api, kafka, prefix, verdict_file, "-u 3 -r 3 -t 6s --rate 500")
        finally:
            crash.join()
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    assert v["acked"] >= 600, describe_output(done)
    assert v["lost"] == v["acked"]
    assert v["seen"] == 0
    assert v["failed"] > 0  # after the crash: connection refused


def test_api_killed_mid_run_every_acknowledged_message_is_accounted_for(kafka, prefix, root, tmp_path):
    """The reference API crashes mid-run: what it acknowledged is in Kafka (the Kafka verdict passes,
    nothing invented lost); the rest failed or is unknown, and the load verdict fails the run for the
    sends the dead API refused (connection refused)."""
    verdict_file = tmp_path / "v.json"
    with run_api(kafka, "--topic-prefix", prefix) as api:
        crash = crash_after(api, accepted=2000)
        try:
            done = api_run(root, api, kafka, prefix, verdict_file, "-u 5 -r 5 -t 6s --rate 1000")
        finally:
            crash.join()
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    assert v["status"] == "PASS"
    assert v["load"]["status"] == "FAIL"
    assert v["load"]["paths"]["api"]["failed"] == v["failed"] > 0
    assert v["overall"]["reasons"][0].startswith("load: api:")
    assert v["lost"] == 0
    assert v["acked"] >= 2000, describe_output(done)
    assert v["failed"] + v["unknown"] > 0
    assert v["seen"] == v["acked"] + v["recovered"]
