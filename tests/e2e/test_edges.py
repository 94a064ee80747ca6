"""At the edges, as a new user meets them: bad input before anything starts, judging a run again
where that cannot work, and Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output
from tests.oracle import wait_for_records

pytestmark = pytest.mark.e2e


def ingestload(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ingestload.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=root)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run-time", "5x"], "--run-time: '5x' is not a duration; expected e.g. 90s, 5m or 1h30m"),
        (["--kafka-config", "bogus.property=1"], "--kafka-config: rejected by the Kafka producer"),
        (
            ["--kafka-bootstrap", "127.0.0.1:1"],
            "--kafka-bootstrap 127.0.0.1:1: no Kafka broker answered within 5s",
        ),
        (["--rate", "-5"], "--rate: '-5' is not allowed; expected messages per second ≥ 0"),
        (["--locustfile", "no/such/locustfile.py"], "--locustfile: no such file"),
        (["--processes", "0"], "--processes: 0 is not allowed"),
        (["--min-offered-ratio", "2"], "--min-offered-ratio: '2' is not allowed"),
        (["--verifier-processes", "0"], "--verifier-processes: '0' is not allowed"),
    ],
    ids=[
        "run-time",
        "kafka-config",
        "unreachable-kafka",
        "rate",
        "locustfile",
        "processes",
        "ratio",
        "verifier-processes",
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_anything_starts(root, tmp_path, args, message):
    """Every input `ingestload run` hands on is checked first: one line on stderr, exit 2, and no
    broker, API or Locust started (they used to start, then fail with tracebacks, exit 1)."""
    started = time.monotonic()
    done = ingestload(root, "run", "--reports", str(tmp_path), *args)
    took = time.monotonic() - started
    assert done.returncode == 2, describe_output(done)
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]], describe_output(done)  # one line, no traceback
    assert lines[0].startswith(f"ingestload: error: {message}"), lines[0]
    for what in ("embedded Kafka broker at", "reference ingest API at", "Starting Locust"):
        assert what not in done.stdout + done.stderr
    print(f"{' '.join(args)!r}: {lines[0]!r} exit {done.returncode} in {took:.1f}s")


def test_no_re_judge_hint_when_the_broker_died_with_the_run_and_verify_never_calls_emptiness_a_loss(
    kafka, root, tmp_path
):
    """After a run on the embedded broker the hint to judge again later is not printed (that broker
    is gone). Judged against another Kafka (without the run's topics) or an unreachable one, the
    ledger gives INCONCLUSIVE with a reason, exit 4 — never FAIL with everything "lost"."""
    prefix = f"gone-{tmp_path.name[-8:]}-"
    reports = tmp_path / "reports"
    done = ingestload(
        root, "run", "-t", "3s", "--rate", "300", "--topic-prefix", prefix, "--reports", str(reports)
    )
    assert done.returncode == 0, describe_output(done)
    assert "Judge the run again later" not in done.stdout
    assert "The embedded broker ended with the run" in done.stdout
    (ledger,) = reports.glob("*/ledger.json")

    other = ingestload(root, "verify", "--ledger", str(ledger), "--kafka-bootstrap", kafka)
    assert other.returncode == 4, describe_output(other)
    assert "VERDICT: INCONCLUSIVE" in other.stdout
    assert f"topic {prefix}alarm does not exist here" in other.stdout
    assert "lost" not in other.stdout

    verdict_file = tmp_path / "v.json"
    args = (
        "verify",
        "--ledger",
        str(ledger),
        "--kafka-bootstrap",
        "127.0.0.1:1",
        "--verdict-file",
        str(verdict_file),
    )
    gone = ingestload(root, *args)
    assert gone.returncode == 4, describe_output(gone)
    assert "no Kafka broker answered within 5s" in gone.stdout
    assert "Traceback" not in gone.stdout + gone.stderr
    assert json.loads(verdict_file.read_text())["status"] == "INCONCLUSIVE"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.parametrize("to", ["the process group", "the main process"])
def test_ctrl_c_stops_the_load_drains_judges_and_leaves_nothing_running(kafka, root, tmp_path, to):
    """Ctrl-C (SIGINT to the terminal's process group, or to `ingestload run` alone) stops the load,
    drains, judges what was sent — both paths, every acknowledged message seen — prints one verdict,
    exits with its code and leaves no process behind. It used to kill the verifier (INCONCLUSIVE),
    print tracebacks, count only the Kafka path's messages, or (main process alone) run on."""
    prefix = f"sigint-{tmp_path.name[-8:]}-"
    reports = tmp_path / "reports"
    command = [sys.executable, "-m", "ingestload.cli", "run", "-t", "2m", "--rate", "1000"]
    command += ["--kafka-bootstrap", kafka, "--topic-prefix", prefix, "--reports", str(reports)]
    run = subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_for_records(kafka, Catalogue.load().topics(prefix), 3_000)
        if to == "the process group":
            os.killpg(run.pid, signal.SIGINT)
        else:
            run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    done = subprocess.CompletedProcess(command, run.returncode, out, err)
    (verdict_file,) = reports.glob("*/verdict.json")
    verdict = json.loads(verdict_file.read_text())
    assert verdict["status"] == "PASS", describe_output(done)  # the verifier lived to the end
    assert verdict["acked"] == verdict["seen"] > 0
    assert verdict["load"]["stopped_by"].startswith("a signal")
    assert set(verdict["load"]["paths"]) == {"kafka", "api"}
    assert run.returncode == verdict["overall"]["exit_code"] == 0, describe_output(done)
    assert out.count("VERDICT PASS (exit code 0)") == 1
    assert (
        sum(int(line.split()[1].replace(",", "")) for line in out.splitlines() if line.startswith("  total"))
        == (verdict["acked"])
    )  # both paths counted, from the verdict
    for noise in ("Traceback", "Fatal Python error", "KeyboardInterrupt"):
        assert noise not in out + err, describe_output(done)
    assert _processes_mentioning(prefix) == []
