"""The scenarios of a user trying ingestload against a third-party ingest API — the test's own small
server (tests/e2e/thirdparty_api.py: its own URL contract, writing each body to gov-<type>), not ours.

The truth is what that API reports it did (every message it dropped, every extra copy Kafka
acknowledged, every message it wrote to another type's topic), written when it stops.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, free_port, judge_again, locust_command, processes_args
from tests.oracle import group, read_copies

pytestmark = pytest.mark.e2e


class ThirdPartyApi:
    def __init__(self, root: Path, kafka: str, prefix: str, folder: Path, *faults: str) -> None:
        self.port = free_port()
        self.truth_file = folder / "api-truth.json"
        command = [
            sys.executable,
            str(root / "tests" / "e2e" / "thirdparty_api.py"),
            "--port",
            str(self.port),
            "--bootstrap",
            kafka,
            "--prefix",
            prefix,
            "--truth",
            str(self.truth_file),
            *faults,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=root)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"ready"

    def stop(self) -> dict[str, list[list[int]]]:
        """Stop it and return what it did."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0
        return json.loads(self.truth_file.read_text())


def locust_against(api: ThirdPartyApi, root: Path, kafka: str, prefix: str, *args: str):
    env = {**os.environ, "INGESTLOAD_TEST_FIRST_SEQ": "0"}
    command = locust_command(
        root / "tests" / "e2e" / "locustfiles" / "matrix_api.py",
        "--headless",
        "--only-summary",
        "--host",
        f"http://127.0.0.1:{api.port}",
        "--api-path",
        "/ingest/{msgType}",
        "--kafka-bootstrap",
        kafka,
        "--topic-prefix",
        prefix,
        *args,
    )
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=root, env=env)


@pytest.mark.parametrize("mode", ["local", "--processes 2"])
def test_drops_and_duplicates_are_counted_exactly(kafka, prefix, root, tmp_path, mode):
    """An API that drops every 97th accepted message and duplicates every 211th: lost and duplicated
    are exactly what it did."""
    api = ThirdPartyApi(root, kafka, prefix, tmp_path, "--drop-every", "97", "--duplicate-every", "211")
    verdict_file = tmp_path / "v.json"
    extra = processes_args(2) if mode != "local" else []
    try:
        done = locust_against(
            api, root, kafka, prefix, "-u", "16", "-r", "16", "-t", "8s", "--rate", "150",
            "--verdict-file", str(verdict_file), *extra,
        )  # fmt: skip
    finally:
        truth = api.stop()
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    assert len(truth["lost"]) > 0
    assert len(truth["duplicated"]) > 0
    assert (v["lost"], v["duplicated"], v["misrouted"], v["corrupted"]) == (
        len(truth["lost"]),
        len(truth["duplicated"]),
        0,
        0,
    )
    assert sorted(s["seq"] for s in v["lost_samples"]) == sorted(s for _, s in truth["lost"])[:20]


def test_one_percent_misrouted_is_a_fail_with_the_exact_count(kafka, prefix, root, tmp_path):
    """An API that writes every 100th message to another type's topic (an alarm into the fault topic):
    FAIL, misrouted exactly as many — not PASS, and not lost."""
    api = ThirdPartyApi(root, kafka, prefix, tmp_path, "--misroute-every", "100")
    verdict_file = tmp_path / "v.json"
    try:
        done = locust_against(
            api, root, kafka, prefix, "-u", "16", "-r", "16", "-t", "8s", "--rate", "150",
            "--verdict-file", str(verdict_file),
        )  # fmt: skip
    finally:
        truth = api.stop()
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    assert len(truth["misrouted"]) >= 5
    assert (v["status"], v["misrouted"], v["lost"], v["duplicated"]) == (
        "FAIL",
        len(truth["misrouted"]),
        0,
        0,
    )
    assert "misrouted" in "\n".join(v["reasons"])
    assert {s["seq"] for s in v["misrouted_samples"]} <= {seq for _, seq in truth["misrouted"]}


def test_late_duplicates_count_in_the_live_verdict_as_in_a_later_verify(kafka, prefix, root, tmp_path):
    """An API that writes its duplicate copies 4 s late (a retry queue): the copies that land after the
    run ended count in the live verdict, exactly as `ingestload verify` counts them later."""
    api = ThirdPartyApi(root, kafka, prefix, tmp_path, "--duplicate-every", "211", "--duplicate-delay", "4")
    verdict_file, ledger_file, later_file = tmp_path / "v.json", tmp_path / "l.json", tmp_path / "later.json"
    try:
        done = locust_against(
            api, root, kafka, prefix, "-u", "16", "-r", "16", "-t", "8s", "--rate", "150",
            "--verdict-file", str(verdict_file), "--ledger-file", str(ledger_file),
        )  # fmt: skip
    finally:
        truth = api.stop()
    assert done.returncode == 3, describe_output(done)
    live = json.loads(verdict_file.read_text())
    later = judge_again(ledger_file, later_file, cwd=root)
    assert later.returncode == 3, describe_output(later)
    again = json.loads(later_file.read_text())
    assert live["duplicated"] == again["duplicated"] == len(truth["duplicated"]) > 0
    assert (live["lost"], again["lost"]) == (0, 0)
    # Some of the copies landed after the run's final ledger: the live verdict waited for them.
    copies = group(read_copies(kafka, Catalogue.load().topics(prefix), live["run_id"]))
    last_copy_ms = [max(c.timestamp_ms for c in copies[(p, s)]) for p, s in truth["duplicated"]]
    assert max(last_copy_ms) > live["ledger_final_at"] * 1000
