"""Verdicts of whole Locust runs: exact counts under injected faults, a lost broker, a killed worker."""

import json
import os
import signal
import subprocess
from pathlib import Path

import gevent
import pytest

from ingestload.kafka.broker import EmbeddedBroker
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, free_port, judge_again, locust_command
from tests.oracle import read_copies, wait_for_records

pytestmark = pytest.mark.e2e

FAULTS = {"lose": [5, 17, 2500], "duplicate": [30, 31], "corrupt": [40], "fail": [60, 61, 62, 63]}


def faulty(root: Path) -> Path:
    return root / "tests" / "e2e" / "locustfiles" / "faulty.py"


def run_locust(
    locustfile: Path, root: Path, args: str, *, faults=None, timeout=180
) -> subprocess.CompletedProcess:
    env = {**os.environ, "INGESTLOAD_TEST_FAULTS": json.dumps(faults or {})}
    return subprocess.run(
        locust_command(locustfile, *args.split()),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=root,
        env=env,
    )


def verdict_of(path: Path) -> dict:
    return json.loads(path.read_text())


def test_clean_local_run_passes_and_reports_e2e_rows(kafka, prefix, root, tmp_path):
    """A clean run: exit 0, VERDICT PASS, E2E rows in Locust's JSON, verdict and ledger files written."""
    verdict_file, ledger_file, stats = tmp_path / "v.json", tmp_path / "l.json", tmp_path / "stats"
    done = run_locust(
        root / "locustfiles" / "kafka.py",
        root,
        f"--headless -u 1 -r 1 -t 4s --only-summary --rate 2000 --kafka-bootstrap {kafka} "
        f"--topic-prefix {prefix} --verdict-file {verdict_file} --ledger-file {ledger_file} "
        f"--json-file {stats}",
    )
    assert done.returncode == 0, describe_output(done)
    verdict = verdict_of(verdict_file)
    assert verdict["status"] == "PASS"
    in_kafka = read_copies(kafka, Catalogue.load().topics(prefix), verdict["run_id"])
    assert verdict["acked"] == verdict["seen"] == len(in_kafka) > 0
    assert "VERDICT: PASS" in done.stderr
    assert f"ingestload run {verdict['run_id']}: VERDICT PASS (exit code 0)" in done.stdout
    rows = {(e["method"], e["name"]): e for e in json.loads(Path(f"{stats}.json").read_text())}
    e2e = sum(e["num_requests"] for (method, _), e in rows.items() if method == "E2E")
    assert e2e == verdict["seen"]
    assert json.loads(ledger_file.read_text())["run_id"] == verdict["run_id"]


@pytest.mark.parametrize("mode", ["local", "master+2 workers"])
def test_injected_faults_fail_with_exact_counts(kafka, prefix, root, tmp_path, mode):
    """Injected loss, duplication and corruption: exit 3 with exactly those counts per producer."""
    verdict_file, csv = tmp_path / "v.json", tmp_path / "csv"
    common = (
        f"--headless -t 5s --only-summary --rate 3000 --topic-prefix {prefix} --verdict-file {verdict_file} "
        f"--csv {csv} --kafka-bootstrap {kafka}"
    )
    workers = []
    if mode == "local":
        done = run_locust(faulty(root), root, f"{common} -u 1 -r 1", faults=FAULTS)
        producers = 1
    else:
        port = str(free_port())
        env = {**os.environ, "INGESTLOAD_TEST_FAULTS": json.dumps(FAULTS)}
        worker = locust_command(faulty(root), "--worker", "--master-port", port)
        workers = [
            subprocess.Popen(worker, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ]
        workers.append(
            subprocess.Popen(worker, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        master = f"{common} --master --master-bind-port {port} --expect-workers 2 -u 2 -r 2"
        done = run_locust(faulty(root), root, master, faults=FAULTS)
        producers = 2
    for w in workers:
        w.wait(20)
    assert done.returncode == 3, describe_output(done)
    v = verdict_of(verdict_file)
    assert v["status"] == "FAIL"
    assert (v["lost"], v["duplicated"], v["corrupted"]) == (3 * producers, 2 * producers, 1 * producers)
    assert (v["failed"], v["recovered"], v["producers"]) == (4 * producers, 0, producers)
    assert sorted({s["seq"] for s in v["lost_samples"]}) == [5, 17, 2500]
    assert {s["seq"] for s in v["corrupted_samples"]} == {40}
    assert sum(v["lost_by_topic"].values()) == v["lost"]
    failures = Path(f"{csv}_failures.csv").read_text()
    assert "E2E" in failures
    assert "lost" in failures


def test_later_verify_command_reaches_the_same_verdict(kafka, prefix, root, tmp_path):
    """`ingestload verify --ledger` re-judges a finished run from Kafka with the same counts."""
    verdict_file, ledger_file = tmp_path / "v.json", tmp_path / "l.json"
    done = run_locust(
        faulty(root),
        root,
        f"--headless -u 1 -r 1 -t 3s --only-summary --rate 2000 --kafka-bootstrap {kafka} "
        f"--topic-prefix {prefix} "
        f"--verdict-file {verdict_file} --ledger-file {ledger_file}",
        faults={"lose": [3, 4], "duplicate": [9]},
    )
    assert done.returncode == 3, describe_output(done)
    later = tmp_path / "later.json"
    again = judge_again(ledger_file, later, cwd=root)
    assert again.returncode == 3, describe_output(again)
    first, second = verdict_of(verdict_file), verdict_of(later)
    for key in ("status", "acked", "seen", "lost", "duplicated", "corrupted"):
        assert first[key] == second[key], key
    assert "VERDICT: FAIL" in again.stdout


def test_delivery_errors_alone_do_not_hide_a_pass(kafka, prefix, root, tmp_path):
    """Failed deliveries are Locust failures; with nothing lost the exit code is the verdict's 0, not 1."""
    verdict_file = tmp_path / "v.json"
    done = run_locust(
        faulty(root),
        root,
        f"--headless -u 1 -r 1 -t 3s --only-summary --rate 2000 --kafka-bootstrap {kafka} "
        f"--topic-prefix {prefix} "
        f"--verdict-file {verdict_file}",
        faults={"fail": [1, 2, 3]},
    )
    assert done.returncode == 0, describe_output(done)
    v = verdict_of(verdict_file)
    assert (v["status"], v["failed"], v["lost"]) == ("PASS", 3, 0)
    assert "KafkaDeliveryError('MSG_SIZE_TOO_LARGE" in done.stderr  # Locust's error table


def test_broker_restart_mid_run_fails_with_the_exact_loss(prefix, root, tmp_path):
    """The embedded broker restarts mid-run (once it holds 3,000 records) and forgets everything: FAIL,
    lost = what the producer acknowledged and Kafka no longer holds, counted by an independent reader."""
    verdict_file, ledger_file = tmp_path / "v.json", tmp_path / "l.json"
    topics = Catalogue.load().topics(prefix)
    with EmbeddedBroker() as broker:

        def restart() -> None:
            wait_for_records(broker.bootstrap, topics, 3_000)
            broker.restart()

        restarter = gevent.spawn(restart)
        try:
            done = run_locust(
                root / "locustfiles" / "kafka.py",
                root,
                f"--headless -u 1 -r 1 -t 9s --only-summary --rate 2000 --kafka-bootstrap {broker.bootstrap} "
                f"--topic-prefix {prefix} --verdict-file {verdict_file} --ledger-file {ledger_file} "
                "--kafka-config message.timeout.ms=3000 --drain-timeout 20",
            )
        finally:
            restarter.join(30)
        assert restarter.successful(), restarter.exception
        assert done.returncode == 3, describe_output(done)
        v = verdict_of(verdict_file)
        in_kafka = {c.seq for c in read_copies(broker.bootstrap, topics, v["run_id"])}
    from ingestload.messages.ledger import AckLedger

    ledger = AckLedger.from_json(json.loads(ledger_file.read_text())["producers"])
    (producer,) = list(ledger)
    assert producer.complete
    expected = len(set(producer.acked()) - in_kafka)
    assert expected > 0  # the 3,000 records held at the restart were acknowledged, and are gone
    assert (v["status"], v["lost"]) == ("FAIL", expected)


@pytest.mark.parametrize(
    ("signal_", "outcome"),
    [(signal.SIGKILL, "INCONCLUSIVE"), (signal.SIGTERM, "PASS")],
    ids=["killed", "stopped"],
)
def test_a_worker_that_leaves_mid_run(kafka, prefix, root, tmp_path, signal_, outcome):
    """A worker killed mid-run never reports its ledger: INCONCLUSIVE (exit 4), never PASS. One
    stopped (SIGTERM, as Kubernetes stops a pod) drains and sends its ledger on its way out: the
    verdict counts it, exactly — PASS, every acknowledged message of both workers in Kafka."""
    verdict_file = tmp_path / "v.json"
    topics = Catalogue.load().topics(prefix)
    port = str(free_port())
    worker = locust_command(root / "locustfiles" / "kafka.py", "--worker", "--master-port", port)
    workers = [
        subprocess.Popen(worker, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in "ab"
    ]

    def stop_one() -> None:  # once the run is under way
        wait_for_records(kafka, topics, 2_000)
        workers[0].send_signal(signal_)

    stopper = gevent.spawn(stop_one)
    try:
        done = run_locust(
            root / "locustfiles" / "kafka.py",
            root,
            f"--master --master-bind-port {port} --expect-workers 2 --headless -u 2 -r 2 -t 8s "
            "--only-summary "
            f"--rate 2000 --kafka-bootstrap {kafka} --topic-prefix {prefix} --verdict-file {verdict_file} "
            "--drain-timeout 5",
        )
    finally:
        stopper.join(30)
        for w in workers:
            if w.poll() is None:
                w.wait(20)
    assert stopper.successful(), stopper.exception
    v = verdict_of(verdict_file)
    if outcome == "INCONCLUSIVE":
        assert done.returncode == 4, describe_output(done)
        assert v["status"] == "INCONCLUSIVE"
        assert any("never reported" in r for r in v["reasons"]), v["reasons"]
    else:
        assert done.returncode == 0, describe_output(done)
        in_kafka = read_copies(kafka, topics, v["run_id"])
        assert (v["status"], v["producers"]) == ("PASS", 2)
        assert v["acked"] == v["seen"] == len(in_kafka) == len({(c.producer, c.seq) for c in in_kafka})


def test_a_worker_killed_before_its_first_report_is_named_not_forgotten(kafka, prefix, root, tmp_path):
    """Issue 18 item 6: a worker that connected and was killed the moment the test started — before its
    first stats report, before any message — is known to the master from its connection: the verdict
    is INCONCLUSIVE, naming a worker that never reported, whatever Locust's heartbeat made of it by the
    stop. Before: the master knew workers from their first report, so the run passed with no word of it."""
    verdict_file = tmp_path / "v.json"
    port = str(free_port())
    locustfile = root / "tests" / "e2e" / "locustfiles" / "dies_at_start.py"
    worker = locust_command(locustfile, "--worker", "--master-port", port)
    doomed = subprocess.Popen(
        worker, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "INGESTLOAD_TEST_DIE_AT_START": "1"},
    )  # fmt: skip
    survivor = subprocess.Popen(worker, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = run_locust(
            locustfile,
            root,
            f"--master --master-bind-port {port} --expect-workers 2 --headless -u 2 -r 2 -t 8s "
            f"--only-summary --rate 500 --kafka-bootstrap {kafka} --topic-prefix {prefix} "
            f"--verdict-file {verdict_file} --drain-timeout 5",
        )
    finally:
        for w in (doomed, survivor):
            if w.poll() is None:
                w.wait(20)
    assert doomed.returncode == -signal.SIGKILL
    v = verdict_of(verdict_file)
    assert done.returncode == 4, describe_output(done)
    assert v["status"] == "INCONCLUSIVE"
    assert any("never reported their final ledger" in r for r in v["reasons"]), v["reasons"]
    assert v["acked"] > 0  # the survivor's messages were judged all the same
    assert v["lost"] == 0
