"""Whole runs that did not deliver the load asked for: never a PASS (the load verdict)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestload.testing import describe_output, locust_command

pytestmark = pytest.mark.e2e


def ingestload_run(root: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ingestload.cli", "run", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=root)


def verdict_of(reports: Path) -> dict:
    """The verdict file of the one run written under ``reports``."""
    (found,) = reports.glob("*/verdict.json")
    return json.loads(found.read_text())


def test_an_api_that_answers_404_to_every_post_fails_the_run(kafka, root, tmp_path):
    """`ingestload run --api-path /ingest`: the reference API answers 404 to every POST. Nothing it
    acknowledged was lost (there was nothing), but the load never reached it: FAIL, exit 3, naming
    the refused sends — it used to end PASS, exit 0."""
    prefix = f"l404-{tmp_path.name[-8:]}-"
    done = ingestload_run(
        root,
        *f"-t 5s --rate 1000 --kafka-bootstrap {kafka} --topic-prefix {prefix} --reports {tmp_path}".split(),
        "--api-path",
        "/ingest",
    )
    assert done.returncode == 3, describe_output(done)
    verdict = verdict_of(tmp_path)
    api = verdict["load"]["paths"]["api"]
    assert api["sent"] > 0
    assert api["failed"] == api["sent"]  # every POST answered 404: the ledger filed each as failed
    assert verdict["load"]["status"] == "FAIL"
    assert any(
        r.startswith("load: api:") and "sends failed (100.00%)" in r for r in verdict["overall"]["reasons"]
    )
    assert "VERDICT FAIL (exit code 3)" in done.stdout


def test_api_users_without_a_host_fail_the_run(kafka, root, tmp_path, prefix):
    """`locust -f locustfiles/ingest.py` without --host: the API users stop the test after a second
    (StopTest). The API path had a target and sent nothing, and the run stopped early: FAIL, exit 3 —
    it used to end `VERDICT: PASS acked=499`."""
    verdict_file = tmp_path / "v.json"
    args = f"--headless -u 4 -r 4 -t 8s --rate 500 --kafka-bootstrap {kafka} --topic-prefix {prefix}"
    command = locust_command(
        root / "locustfiles" / "ingest.py", *args.split(), "--verdict-file", str(verdict_file)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LOCUST_HOST", "INGESTLOAD_API_URL")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=root, env=env)
    assert "You must specify the base host" in done.stderr, describe_output(done)
    assert done.returncode == 3, describe_output(done)
    load = json.loads(verdict_file.read_text())["load"]
    assert load["status"] == "FAIL"
    assert load["paths"]["api"]["sent"] == 0
    assert load["paths"]["api"]["target"] > 0
    assert any(r.startswith("api: nothing sent of a target of") for r in load["reasons"])
    assert any(r.startswith("the run stopped after") for r in load["reasons"])


def test_a_path_whose_worker_never_ran_fails_the_run(kafka, root, tmp_path):
    """`ingestload run --no-api --processes 2`: the API users have no host and stop; the Kafka path
    runs. Half the target was announced for the API path and nothing of it was sent: FAIL, exit 3 —
    it used to end PASS with "api: target 0 offered 0 (100.00%)", the target counted from the
    workers' own reports."""
    prefix = f"noapi-{tmp_path.name[-8:]}-"
    args = f"-t 8s --rate 2000 --processes 2 --no-api --kafka-bootstrap {kafka} --topic-prefix {prefix}"
    done = ingestload_run(root, *args.split(), "--reports", str(tmp_path))
    assert done.returncode == 3, describe_output(done)
    load = verdict_of(tmp_path)["load"]
    assert load["paths"]["api"]["sent"] == 0
    assert load["paths"]["api"]["target"] > 0
    assert load["paths"]["kafka"]["sent"] > 0
    assert any(r.startswith("api: nothing sent of a target of") for r in load["reasons"])
    assert done.stderr.count("ChildProcessError") == 0
