"""Whole headless Locust runs (local, --processes, master + workers) against a real broker."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ingestload.kafka.admin import high_watermarks
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, locust_command, processes_args, worker_processes
from tests.oracle import read_copies

pytestmark = pytest.mark.e2e

RUN = "0badc0ffee000001"
#: Holds every message 1.5 s in the producer before sending, so that the last acknowledgements
#: arrive well after Locust's 0.5 s quit window: only a real drain at stop can count them.
SLOW_ACKS = ("--kafka-config", "linger.ms=1500")
TOPICS_OF = Catalogue.load().topics


def locust(
    root: Path, *args: str, timeout: float = 120, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        locust_command(root / "locustfiles" / "kafka.py", *args),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
        env={**os.environ, **(env or {})},
    )


def acked_per_topic(json_prefix: Path) -> dict[str, int]:
    entries = json.loads(Path(f"{json_prefix}.json").read_text())
    return {e["name"]: e["num_requests"] - e["num_failures"] for e in entries if e["method"] == "KAFKA"}


def stopped_line(stderr: str, run_id: str) -> dict[str, int]:
    """The counters of the final "run … stopped: sent=… acked=…" log line."""
    line = next(line for line in stderr.splitlines() if f"run {run_id} stopped: " in line)
    fields = line.split(" stopped: ", 1)[1].split()
    return {k: int(v.replace(",", "")) for k, v in (f.split("=") for f in fields)}


def assert_every_ack_landed(
    kafka: str, prefix: str, run_id: str, done: subprocess.CompletedProcess, json_prefix: Path, producers: int
) -> int:
    """Everything sent was acknowledged, Locust's stats saw every ack, and the broker holds exactly that."""
    acked = acked_per_topic(json_prefix)
    copies = read_copies(kafka, TOPICS_OF(prefix), run_id)  # an independent reader
    summary = stopped_line(done.stderr, run_id)
    total = sum(acked.values())
    assert total > 0
    assert summary["sent"] == summary["acked"] == total, summary
    assert summary["failed"] == summary["undelivered"] == 0, summary
    assert dict(Counter(c.topic for c in copies)) == acked, (
        "Locust's acked counts per topic must equal the broker's"
    )
    seqs = {p: sorted(c.seq for c in copies if c.producer == p) for p in {c.producer for c in copies}}
    assert len(seqs) == producers
    assert all(found == list(range(len(found))) for found in seqs.values())  # each producer's 0…n-1, once
    assert all(c.intact and not c.misrouted for c in copies)
    return total


def headless(root: Path, kafka: str, prefix: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """A 6-second headless run of this run id with slow acks, stats written to ``out``.json."""
    common = f"--headless -t 6s --only-summary --topic-prefix {prefix} --run-id {RUN} --json-file {out}"
    return locust(root, *common.split(), *SLOW_ACKS, *extra, "--kafka-bootstrap", kafka)


@pytest.mark.parametrize(
    ("how", "args", "producers"),
    [
        ("LocalRunner", "-u 3 -r 3 --rate 3000", 1),
        ("--processes 2", "-u 2 -r 2 --rate 4000", 2),
    ],
)
def test_headless_run_exits_0_and_every_acked_message_is_in_the_broker(
    kafka, prefix, root, tmp_path, how, args, producers
):
    """A headless run exits 0; sent = acked = Locust's per-topic counts = the broker's, seqs contiguous."""
    out = tmp_path / "stats"
    extra = processes_args(2) if how == "--processes 2" else []
    done = headless(root, kafka, prefix, out, *args.split(), *extra)
    assert done.returncode == 0, describe_output(done)
    total = assert_every_ack_landed(kafka, prefix, RUN, done, out, producers=producers)
    rate = int(args.split("--rate ")[1])
    assert total <= 6 * rate * 1.01, total  # the schedule never runs ahead of the target (accuracy: issue #5)


def test_master_and_two_worker_processes(kafka, prefix, root, tmp_path):
    """A --master with two separately started --worker processes drains both before quitting."""
    out = tmp_path / "stats"
    with worker_processes(root / "locustfiles" / "kafka.py", 2, cwd=root) as port:
        master = f"--master --master-bind-port {port} --expect-workers 2 -u 4 -r 4 --rate 4000"
        done = headless(root, kafka, prefix, out, *master.split())
    assert done.returncode == 0, describe_output(done)
    assert_every_ack_landed(kafka, prefix, RUN, done, out, producers=2)


def test_bad_option_fails_before_any_load_with_one_line(kafka, prefix, root):
    """An invalid --rate stops Locust with exit 2 and a one-line error, before topics are created."""
    done = locust(
        root, *f"--headless -t 5s --kafka-bootstrap {kafka} --topic-prefix {prefix} --rate -5".split()
    )
    assert done.returncode == 2, describe_output(done)
    assert "ingestload: error: --rate: '-5' is not allowed" in done.stderr
    assert "Traceback" not in done.stderr
    assert high_watermarks({"bootstrap.servers": kafka}, TOPICS_OF(prefix)) == {}


def test_bad_catalogue_fails_before_any_load(kafka, prefix, root, tmp_path):
    """A catalogue with a mistake stops the run with the catalogue's own message."""
    bad = tmp_path / "cat.yaml"
    bad.write_text(
        "controllers: [LCE]\nmessage_types: [alarm]\nmix: {LCE: {alarm: 90}}\n"
        "templates: {alarm: {Param: {Timestamp: $timestamp}}}\n"
    )
    done = locust(root, "--headless", "-t", "5s", "--kafka-bootstrap", kafka, "--catalogue", str(bad))
    assert done.returncode == 2, describe_output(done)
    assert f"ingestload: error: {bad}: mix: percentages add up to 90, not 100" in done.stderr


def test_secrets_never_appear_in_output_or_reports(kafka, prefix, root, tmp_path):
    """SASL passwords given by flag, env or file never show in logs, HTML, CSV or JSON reports."""
    props = tmp_path / "client.properties"
    props.write_text("sasl.username=alice\nsasl.password=FILE-SECRET-9d1e\n")
    args = f"--headless -u 1 -r 1 -t 3s --loglevel DEBUG --topic-prefix {prefix} --kafka-config-file {props}"
    reports = f"--html {tmp_path}/report.html --csv {tmp_path}/csv --json-file {tmp_path}/j"
    done = locust(
        root,
        *args.split(),
        *reports.split(),
        *("--kafka-config", "ssl.key.password=FLAG-SECRET-77ab", "--kafka-bootstrap", kafka),
        env={"INGESTLOAD_KAFKA_PROP_SASL_OAUTHBEARER_CLIENT_SECRET": "ENV-SECRET-c0fe"},
    )
    assert done.returncode == 0, describe_output(done)
    assert "sasl.password=***" in done.stderr  # the settings line is printed, redacted
    texts = [done.stdout, done.stderr] + [
        p.read_text() for p in tmp_path.iterdir() if p.suffix != ".properties"
    ]
    for secret in ("FILE-SECRET-9d1e", "FLAG-SECRET-77ab", "ENV-SECRET-c0fe"):
        assert not any(secret in t for t in texts), secret


def test_ingestload_run_reads_the_run_back_per_topic(kafka, root, tmp_path):
    """`ingestload run` against a given Kafka prints the per-topic count of the run and exits 0."""
    prefix = f"cli-{tmp_path.name[-8:]}-"
    args = f"run -t 4s --rate 2000 --kafka-bootstrap {kafka} --topic-prefix {prefix} --reports {tmp_path}"
    command = [sys.executable, "-m", "ingestload.cli", *args.split()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, describe_output(done)
    lines = done.stdout.splitlines()
    run_id = next(line for line in lines if line.startswith("ingestload run ")).split()[2].rstrip(":")
    in_kafka = Counter(c.topic for c in read_copies(kafka, TOPICS_OF(prefix), run_id))
    printed = {
        line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines if line.startswith("  ")
    }
    assert printed == {**{t: in_kafka[t] for t in TOPICS_OF(prefix)}, "total": sum(in_kafka.values())}
    assert printed["total"] > 0
    stopped = next(line for line in done.stderr.splitlines() if " stopped: sent=" in line)
    assert f"acked={printed['total']:,}" in stopped


def test_no_process_shows_a_secret_in_its_arguments(kafka, root, tmp_path):
    """`ingestload run --kafka-config sasl.password=… --api-token … --api-header …`: while it runs, `ps`
    shows none of the secrets for any process — the command rewrites its own title as soon as it
    starts (before that, the kernel shows what was typed: the environment is the better place), and
    hands them to its children (the reference API, Locust) through their environment — which they
    do receive."""
    secrets_ = ("PW-4d1f2a", "TOKEN-9e8d7c", "SEC-5b6a")
    args = [
        *("run", "-t", "6s", "--rate", "300", "--kafka-bootstrap", kafka, "--reports", str(tmp_path)),
        *("--topic-prefix", f"ps-{tmp_path.name[-8:]}-", "--kafka-config", "sasl.password=PW-4d1f2a"),
        *("--api-token", "TOKEN-9e8d7c", "--api-header", "Authorization: Basic SEC-5b6a"),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestload.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    listings, environments = [], []
    try:
        first = proc.stdout.readline()  # it runs (and has rewritten its title)
        assert first, "ingestload run printed nothing"
        while proc.poll() is None:
            listing = subprocess.run(
                ["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True
            ).stdout
            listings.append(listing)
            for line in listing.splitlines():
                pid, _, command = line.strip().partition(" ")
                if "-m locust" in command and tmp_path.name[-8:] in command:
                    with contextlib.suppress(OSError):
                        environments.append(Path(f"/proc/{pid}/environ").read_bytes())
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert len(listings) > 5
    for secret in secrets_:
        assert not any(secret in listing for listing in listings), secret
    titles = [line for listing in listings for line in listing.splitlines() if "ingestload run" in line]
    assert any("--kafka-config sasl.password=***" in line for line in titles), titles[:3]
    assert any(b"INGESTLOAD_API_TOKEN=TOKEN-9e8d7c" in env for env in environments)
    assert any(b"sasl.password=PW-4d1f2a" in env for env in environments)


def test_broker_command_starts_and_stops_on_sigterm(root):
    """`ingestload broker --port 0` announces its address and exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingestload.cli", "broker", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        line = proc.stdout.readline()
        assert "ready at 127.0.0.1:" in line
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "broker stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
