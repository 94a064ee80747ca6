"""The anomaly matrix: every anomaly at every edge, in every mode, on both paths — counted exactly.

Columns: lost, duplicated, corrupted, misrouted, phantom (a copy naming a seq its producer never
sent), late duplicated/corrupted. The columns that cannot share one run with exact counts have runs
of their own below (not yet visible: an open transaction holds its partition back) or in
tests/e2e/test_fanout_runs.py (fan-out window, content, partition); deleted records need a broker
that deletes (DeleteRecords or retention), which the embedded one does not: tests/unit/test_verdict.py.

One run per (mode, path) injects them all at once, each producer the same plan, relative to its first
seq: lost, duplicated, corrupted and misrouted messages at the first and last seq of every producer
(so at the first and last message of the run), on both sides of seq 2**32 (producers start just below
it), misrouted copies into a topic that does not exist when the run starts (the broker creates it with
its first message), on topics reused from earlier runs (start offsets > 0), and copies — one of them
changed — that land after the drain. The truth is what the injectors report they did (a copy counts
once Kafka acknowledged it); the counts are checked against it and against an independent reader.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer

from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, free_port, locust_command, processes_args, worker_processes
from tests.oracle import partition_ends, read_copies, tally

pytestmark = pytest.mark.e2e

EDGE = 2**32
#: Every producer starts here and crosses 2**32 after 300 messages.
FIRST = EDGE - 300
#: The run per path: a profile of exactly RATE × SECONDS messages, divided evenly between the
#: producers (the test's own API is a small threaded server: it gets a gentler rate).
PROFILES = {"kafka": (300, 5), "api": (100, 8)}
#: The test API sends its late copies this long after the original: after the run's drain.
API_LATE_DELAY = 12.0
KINDS = ("lost", "duplicated", "corrupted", "misrouted", "phantom")


def plan_for(n: int) -> dict[str, list[int]]:
    """Offsets from FIRST, for producers of ``n`` messages each."""
    return {
        "lost": [0, 299, 300, n - 1],  # first seq, 2**32 − 1, 2**32, last seq
        "duplicated": [1, 301, n - 2],
        "corrupted": [2, 302, n - 3],
        "misrouted": [3, 303, n - 4],  # into the topic that appears mid-run
        "late_duplicated": [4, n - 5],  # a copy after the drain
        "late_corrupted": [5],  # a changed copy after the drain
        "phantom": [6, 298, n - 6],  # a copy naming a seq never sent (seq | 2**62)
    }


#: Per producer, from plan_for: the late copies are duplicates, the changed one also corrupted.
EXPECTED_PER_PRODUCER = {"lost": 4, "duplicated": 3 + 2 + 1, "corrupted": 3 + 1, "misrouted": 3, "phantom": 3}


def prefill(bootstrap: str, topics: list[str]) -> None:
    """Records of an earlier run on every topic: the run's start offsets are above 0."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic in topics:
        for i in range(60):
            producer.produce(topic, b'{"earlier":%d}' % i, partition=i % 3)
    assert producer.flush(30) == 0


def start_api(
    root: Path, bootstrap: str, prefix: str, plan: dict, truth: Path, api_plan: dict | None = None
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    api_plan = api_plan or {
        "first": FIRST,
        "misroute_to": plan["misroute_to"],
        **{kind: plan[kind] for kind in KINDS},
        "late": {
            "delay": API_LATE_DELAY,
            "duplicated": plan["late_duplicated"],
            "corrupted": plan["late_corrupted"],
        },
    }
    command = [
        sys.executable,
        str(root / "tests" / "e2e" / "thirdparty_api.py"),
        "--port",
        str(port),
        "--bootstrap",
        bootstrap,
        "--prefix",
        prefix,
        "--truth",
        str(truth),
        "--plan",
        json.dumps(api_plan),
    ]
    api = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=root)
    assert api.stdout is not None
    assert api.stdout.readline().strip() == b"ready"
    return api, port


@pytest.mark.parametrize("path", ["kafka", "api"])
@pytest.mark.parametrize("mode", ["local", "--processes 2", "master + 2 workers", "3 verifier processes"])
def test_every_anomaly_at_every_edge_is_counted_exactly(kafka, prefix, root, tmp_path, mode, path):
    """Lost, duplicated (at once and after the drain), corrupted and misrouted messages at every edge
    are counted exactly as injected, and as an independent reader finds them; nothing else is."""
    topics = Catalogue.load().topics(prefix)
    newcomer = prefix + "fault"
    reused = [t for t in topics if t != newcomer]
    ensure_topics({"bootstrap.servers": kafka}, reused, partitions=3)
    prefill(kafka, reused)
    producers = 2 if mode in ("--processes 2", "master + 2 workers") else 1
    rate, seconds = PROFILES[path]
    n = rate * seconds // producers
    plan = {**plan_for(n), "misroute_to": newcomer}
    profile = tmp_path / "profile.yaml"
    profile.write_text(f"name: matrix\nstages:\n  - {{kind: hold, rate: {rate}, duration: {seconds}s}}\n")
    verdict_file, truth_dir = tmp_path / "verdict.json", tmp_path / "truth"
    truth_dir.mkdir()
    args = (
        f"--headless --only-summary --rate-profile {profile} --kafka-bootstrap {kafka} "
        f"--topic-prefix {prefix} --create-topics false --verdict-file {verdict_file}"
    ).split()
    env = {**os.environ, "INGESTLOAD_TEST_TRUTH_DIR": str(truth_dir)}
    api = None
    if path == "kafka":
        locustfile = root / "tests" / "e2e" / "locustfiles" / "matrix.py"
        names = {
            "lost": "lose",
            "duplicated": "duplicate",
            "corrupted": "corrupt",
            "misrouted": "misroute",
            "phantom": "phantom",
        }
        env["INGESTLOAD_TEST_PLAN"] = json.dumps(
            {
                "first": FIRST,
                "misroute_to": newcomer,
                "late_duplicate": plan["late_duplicated"],
                "late_corrupt": plan["late_corrupted"],
                **{names[kind]: plan[kind] for kind in KINDS},
            }
        )
    else:
        locustfile = root / "tests" / "e2e" / "locustfiles" / "matrix_api.py"
        env["INGESTLOAD_TEST_FIRST_SEQ"] = str(FIRST)
        api, port = start_api(root, kafka, prefix, plan, truth_dir / "api.json")
        args += [
            "--host",
            f"http://127.0.0.1:{port}",
            "--api-path",
            "/ingest/{msgType}",
            "--late-grace",
            "15s",
        ]
    try:
        if mode == "master + 2 workers":
            with worker_processes(locustfile, 2, cwd=root, env=env) as master_port:
                master = ["--master", "--master-bind-port", str(master_port), "--expect-workers", "2"]
                done = run(locustfile, [*args, *master], env, root)
        else:
            extra = processes_args(2) if mode == "--processes 2" else []
            if mode == "3 verifier processes":  # each reads a share of the partitions; one verdict
                extra = ["--verifier-processes", "3"]
            done = run(locustfile, [*args, *extra], env, root)
    finally:
        if api is not None:
            api.send_signal(signal.SIGTERM)
            api.wait(60)
    assert done.returncode == 3, describe_output(done)
    verdict = json.loads(verdict_file.read_text())
    truth = read_truth(truth_dir)

    # The plan was carried out in full by every producer: every edge was exercised.
    assert {kind: len(truth[kind]) for kind in KINDS} == {
        kind: count * producers for kind, count in EXPECTED_PER_PRODUCER.items()
    }
    for producer_seqs in _by_producer(truth["lost"]).values():
        assert sorted(producer_seqs) == [FIRST, EDGE - 1, EDGE, FIRST + n - 1], truth

    # What the verdict covered, by its own account (read_to: the offset after the last record it read
    # in each partition, whatever the re-reads added): a late copy inside it must be counted, one that
    # landed outside it (a busy machine) must not — the machine's speed decides which, never the test.
    copies = read_copies(kafka, topics, verdict["run_id"])
    read_to = verdict["read_to"]
    inside = [c for c in copies if c.offset < read_to.get(f"{c.topic}[{c.partition}]", 0)]
    drained_ms = verdict["ledger_final_at"] * 1000
    late = {tuple(pair) for pair in truth["late"]}
    late_copies = [c for c in copies if (c.producer, c.seq) in late and c.timestamp_ms > drained_ms]
    covered = set(inside)
    late_outside = [c for c in late_copies if c not in covered]

    # The verdict counts exactly what was injected (less the late copies it did not cover).
    injected = {kind: len(truth[kind]) for kind in KINDS}
    injected["duplicated"] -= len(late_outside)
    injected["corrupted"] -= sum(1 for c in late_outside if not c.intact)
    assert verdict["status"] == "FAIL"
    assert {kind: verdict[kind] for kind in KINDS} == injected
    assert (verdict["acked"], verdict["producers"]) == (n * producers, producers)
    assert verdict["seen"] == verdict["acked"] - verdict["lost"]
    assert sorted((s["producer_id"], s["seq"]) for s in verdict["lost_samples"]) == sorted(
        (f"{p:016x}", s) for p, s in truth["lost"]
    )

    # An independent reader finds the same in what the verdict covered (its own parsing and CRC; the
    # seqs each producer sent are what the test knows: FIRST … FIRST + n − 1).
    counted = tally(inside, sent=dict.fromkeys(_by_producer(truth["lost"]), (FIRST, n)))
    assert {k: counted[k] for k in ("misrouted", "duplicated", "corrupted", "seen", "phantom")} == {
        k: verdict[k] for k in ("misrouted", "duplicated", "corrupted", "seen", "phantom")
    }

    # The topic that appeared mid-run was read whole: its own messages and the misrouted copies.
    on_newcomer = [c for c in copies if c.topic == newcomer]
    assert any(c.misrouted for c in on_newcomer)
    assert any(not c.misrouted for c in on_newcomer)
    assert verdict["seen_by_topic"][newcomer] == len({(c.producer, c.seq) for c in on_newcomer})

    # Every late copy landed after the final ledger (one per late message), and the verdict says how
    # long after it watched.
    assert len(late_copies) == len(truth["late"])
    assert verdict["watched_s"] is not None
    if late_outside:
        print(f"{mode}/{path}: {len(late_outside)} late copies landed after the verdict's read")


@pytest.mark.parametrize("mode", ["local", "master + 2 workers"])
def test_records_acknowledged_before_their_commit_are_not_yet_visible_never_lost(
    kafka, prefix, root, tmp_path, mode
):
    """The not-yet-visible column: the test's API acknowledges one message per producer (near the end
    of the run) before committing the Kafka transaction it wrote it in, and never commits. That record
    and everything after it on its partition stay invisible to a committed reader: the verdict is
    INCONCLUSIVE with nothing lost, names exactly the partitions and offsets the oracle finds between
    their last stable offset and high watermark, and every acknowledged message it cannot see is
    unseen. Before issue 18: FAIL, those messages lost."""
    topics = Catalogue.load().topics(prefix)
    ensure_topics({"bootstrap.servers": kafka}, topics, partitions=3)
    producers = 2 if mode in ("--processes 2", "master + 2 workers") else 1
    rate, seconds = 100, 6
    n = rate * seconds // producers
    profile = tmp_path / "profile.yaml"
    profile.write_text(f"name: pending\nstages:\n  - {{kind: hold, rate: {rate}, duration: {seconds}s}}\n")
    verdict_file, truth_dir = tmp_path / "verdict.json", tmp_path / "truth"
    truth_dir.mkdir()
    locustfile = root / "tests" / "e2e" / "locustfiles" / "matrix_api.py"
    env = {**os.environ, "INGESTLOAD_TEST_TRUTH_DIR": str(truth_dir), "INGESTLOAD_TEST_FIRST_SEQ": str(FIRST)}
    api_plan = {"first": FIRST, "pending": [n - 40]}
    api, port = start_api(root, kafka, prefix, {}, truth_dir / "api.json", api_plan=api_plan)
    args = (
        f"--headless --only-summary --rate-profile {profile} --kafka-bootstrap {kafka} "
        f"--topic-prefix {prefix} --create-topics false --verdict-file {verdict_file} "
        f"--host http://127.0.0.1:{port} --api-path /ingest/{{msgType}}"
    ).split()
    try:
        # The oracle's view is taken while the transactions are still open (the API aborts them when
        # it stops).
        if mode == "master + 2 workers":
            with worker_processes(locustfile, 2, cwd=root, env=env) as master_port:
                master = ["--master", "--master-bind-port", str(master_port), "--expect-workers", "2"]
                done = run(locustfile, [*args, *master], env, root)
        else:
            done = run(locustfile, args, env, root)
        committed = partition_ends(kafka, topics, committed=True)
        written = partition_ends(kafka, topics, committed=False)
        copies = read_copies(kafka, topics, json.loads(verdict_file.read_text())["run_id"])
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(60)
    assert done.returncode == 4, describe_output(done)
    verdict = json.loads(verdict_file.read_text())
    truth = read_truth(truth_dir)
    assert len(truth["pending"]) == producers

    behind = {tp: written[tp] - committed[tp] for tp in written if written[tp] > committed[tp]}
    assert behind  # the open transactions hold partitions back
    assert verdict["not_visible"] == behind
    assert (verdict["status"], verdict["lost"]) == ("INCONCLUSIVE", 0)
    visible = {(c.producer, c.seq) for c in copies}
    assert verdict["seen"] == len(visible)
    assert verdict["unseen"] == verdict["acked"] - len(visible)
    assert all(tuple(pair) not in visible for pair in truth["pending"])
    assert any("not yet visible" in r for r in verdict["reasons"])


def run(locustfile: Path, args: list[str], env: dict, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        locust_command(locustfile, *args), capture_output=True, text=True, timeout=240, cwd=root, env=env
    )


def read_truth(folder: Path) -> dict[str, list[tuple[int, int]]]:
    """What the injectors did, as (producer, seq) pairs by kind: the Kafka path's truth files
    (one per producer, seqs) or the test API's (pairs)."""
    truth: dict[str, list[tuple[int, int]]] = {kind: [] for kind in (*KINDS, "late", "pending")}
    for file in folder.glob("*.json"):
        data = json.loads(file.read_text())
        if file.name.startswith("truth-"):
            producer = int(file.stem.removeprefix("truth-"), 16)
            for kind in truth:
                truth[kind] += [(producer, seq) for seq in data.get(kind, [])]
        else:
            for kind in truth:
                truth[kind] += [(p, s) for p, s in data.get(kind, [])]
    return truth


def _by_producer(pairs: list[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for producer, seq in pairs:
        grouped.setdefault(producer, []).append(seq)
    return grouped
