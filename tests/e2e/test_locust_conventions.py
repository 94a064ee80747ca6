"""Locust's conventions hold for ingestload's options and users: LOCUST_<OPTION> variables, the help
the README names, and fixed users that follow the workers so that shares follow the rate."""

import json
import os
import re
import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from ingestload.api.testing import run_api
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, locust_command, worker_processes
from tests.oracle import read_copies

pytestmark = pytest.mark.e2e


def test_locust_rate_sets_the_rate(kafka, prefix, root):
    """`LOCUST_RATE=777 locust …` runs at 777 msg/s, as LOCUST_<OPTION> does for Locust's own
    options; it was silently ignored (the run went at the default 1000)."""
    args = f"--headless -u 1 -r 1 -t 2s --kafka-bootstrap {kafka} --topic-prefix {prefix}"
    env = {k: v for k, v in os.environ.items() if k != "INGESTLOAD_RATE"}
    done = subprocess.run(
        locust_command(root / "locustfiles" / "kafka.py", *args.split()),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**env, "LOCUST_RATE": "777"},
    )
    assert done.returncode == 0, describe_output(done)
    assert re.search(r"run \w+ started: target 777 msg/s", done.stderr), describe_output(done)


def test_the_help_the_readme_names_lists_ingestloads_options(root):
    """The README's "They show in `…`" command prints ingestload's options (it named
    `locust -f … --help`, which prints Locust's help before it imports the locustfile)."""
    readme = (root / "README.md").read_text()
    match = re.search(r"They show in\s+`([^`]+)`", readme)
    assert match, "the README no longer says where the options show"
    command = shlex.split(match[1])
    program = {"ingestload": ["ingestload"], "locust": ["locust"]}[command[0]]
    done = subprocess.run(
        [str(Path(os.environ.get("VIRTUAL_ENV", root / ".venv")) / "bin" / program[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert done.returncode == 0, describe_output(done)
    for flag in ("--rate-split", "--verdict-file", "--report-file", "--api-batch-size"):
        assert flag in done.stdout, flag


def test_every_worker_gets_a_kafka_user_and_sends_its_share(kafka, prefix, root, tmp_path):
    """locustfiles/ingest.py on a master with 2 workers: both workers produce to Kafka, about half
    each (counted in the broker by an independent reader). With `fixed_count = 1` one worker ran the
    whole Kafka path and the other's Kafka share was 0/s; `one_per_process` makes it one per worker."""
    ledger_file = tmp_path / "ledger.json"
    locustfile = root / "locustfiles" / "ingest.py"
    with run_api(kafka, "--topic-prefix", prefix) as api, worker_processes(locustfile, 2, cwd=root) as port:
        args = (
            f"--headless --master --master-bind-port {port} --expect-workers 2 -u 10 -r 100 -t 4s "
            f"--rate 600 --min-offered-ratio 0 --host {api.url} --kafka-bootstrap {kafka} "
            f"--topic-prefix {prefix} --ledger-file {ledger_file}"
        )
        done = subprocess.run(
            locust_command(locustfile, *args.split()), capture_output=True, text=True, timeout=180, cwd=root
        )
    assert done.returncode == 0, describe_output(done)  # (not judged here: whether 2 cores kept up)
    ledger = json.loads(ledger_file.read_text())
    kafka_producers = {
        int(p["producer_id"], 16): p["meta"]["worker_index"]
        for p in ledger["producers"]
        if p["meta"]["path"] == "kafka"
    }
    copies = read_copies(kafka, Catalogue.load().topics(prefix), ledger["run_id"])
    per_worker = Counter(kafka_producers[c.producer] for c in copies if c.producer in kafka_producers)
    total = sum(per_worker.values())
    assert total > 0
    assert sorted(per_worker) == [0, 1], per_worker
    divided = [line for line in done.stderr.splitlines() if "divided" in line or "pacing" in line]
    assert all(n >= 0.3 * total for n in per_worker.values()), (per_worker, "\n".join(divided))  # ~half each
