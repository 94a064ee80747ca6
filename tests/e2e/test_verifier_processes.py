"""Verification by several processes (``--verifier-processes N``): one of them lost mid-run never
gives a PASS nor invents a loss. (Their exact counts are in the anomaly matrix's
"3 verifier processes" mode.)"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, locust_command
from tests.oracle import wait_for_records

pytestmark = pytest.mark.e2e

VERIFIER = b"ingestload.verify.process"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (children of each thread)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def verifiers_of(pid: int) -> list[int]:
    """The verifier processes below ``pid``, in the order they were started (pids)."""
    found = []
    for child in descendants(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if VERIFIER in argv:
            found.append(child)
    return sorted(found)


def test_a_verifier_process_killed_mid_run_makes_the_verdict_inconclusive_never_a_loss(
    kafka, prefix, root, tmp_path
):
    """With 2 verifier processes, the second SIGKILLed while the load runs: every message still
    reaches Kafka (counted by the test's own reader), and the verdict is INCONCLUSIVE, naming the
    process that gave no account, with no message called lost."""
    verdict_file = tmp_path / "verdict.json"
    command = locust_command(
        root / "locustfiles" / "kafka.py",
        *f"--headless --only-summary -t 8s --rate 400 --kafka-bootstrap {kafka}".split(),
        *f"--topic-prefix {prefix}".split(),
        *f"--verifier-processes 2 --verdict-file {verdict_file} --drain-timeout 20".split(),
    )
    locust = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 60
        pids: list[int] = []
        while len(pids) < 2 and time.monotonic() < deadline and locust.poll() is None:
            time.sleep(0.2)
            pids = verifiers_of(locust.pid)
        assert len(pids) == 2, f"verifier processes found: {pids}"
        topics = Catalogue.load().topics(prefix)
        wait_for_records(kafka, topics, at_least=200)  # the load is on
        os.kill(pids[1], signal.SIGKILL)
        out, err = locust.communicate(timeout=180)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
    done = subprocess.CompletedProcess(command, locust.returncode, out, err)
    assert locust.returncode == 4, describe_output(done)
    verdict = json.loads(verdict_file.read_text())
    in_kafka = wait_for_records(kafka, topics, at_least=verdict["acked"])
    assert in_kafka == verdict["acked"] > 0  # nothing was lost: the verdict must not say so
    assert verdict["status"] == "INCONCLUSIVE", verdict["reasons"]
    assert verdict["lost"] == 0, verdict["reasons"]
    said = [r for r in verdict["reasons"] if "verifier process 2 of 2" in r]
    assert said, verdict["reasons"]
    assert "killed by SIGKILL" in said[0], said  # what the test did to it
    print(f"killed verifier process {pids[1]}; verdict {verdict['status']}: {verdict['reasons']}")
