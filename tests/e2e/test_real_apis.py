"""Ingest APIs of other stacks and designs, each with faults, and the verdict exact against each one
(issue 17): a Node.js API (express + kafkajs) that parses and re-serialises — forwarding, enriching,
wrapping, or forwarding a whole batch as one record — and a faithful replica of seed 001's Flask
endpoint (form posts, kafka-python, a fixed topic per endpoint) with its field-counting consumer.

The truth is each API's own account of what it did (every message it dropped, wrote twice or changed),
written when it stops; an independent oracle (tests/oracle.py: its own consumer, its own parsing, its
own RFC 8785) reads what is in Kafka and must agree.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ingestload.testing import describe_output, free_port, judge_again, locust_command, processes_args
from tests.oracle import _strict_identity, read_copies, tally

pytestmark = pytest.mark.e2e

NODE = shutil.which("node")
SEED001 = Path(__file__).parent / "apis" / "seed001"
MODES = ["local", "--processes 2"]


class Api:
    """An API process that prints "ready" when it listens and writes its truth file on SIGTERM."""

    def __init__(self, command: list[str], truth: Path, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.truth_file = truth
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, cwd=cwd, env={**os.environ, **(env or {})}
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == b"ready", line

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0
        return json.loads(self.truth_file.read_text())


def node_api(root: Path, kafka: str, prefix: str, folder: Path, mode: str, port: int) -> Api:
    assert NODE, "Node.js is needed (apt-get install -y nodejs npm; make install runs npm ci)"
    command = [
        NODE, str(root / "tests" / "e2e" / "apis" / "node_api.js"), "--port", str(port),
        "--bootstrap", kafka, "--prefix", prefix, "--truth", str(folder / "truth.json"), "--mode", mode,
        "--drop-every", "97", "--duplicate-every", "211", "--corrupt-every", "151",
    ]  # fmt: skip
    return Api(command, folder / "truth.json", root)


def run_locust(root: Path, kafka: str, prefix: str, port: int, verdict: Path, *args: str, rate: str = "150"):
    env = {**os.environ, "INGESTLOAD_TEST_FIRST_SEQ": "0"}
    command = locust_command(
        root / "tests" / "e2e" / "locustfiles" / "matrix_api.py",
        "--headless", "--only-summary", "--host", f"http://127.0.0.1:{port}", "--kafka-bootstrap", kafka,
        "--topic-prefix", prefix, "-u", "16", "-r", "16", "-t", "8s", "--rate", rate,
        "--verdict-file", str(verdict), *args,
    )  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=root, env=env)


NODE_CASES = {
    # name: (the API's mode, ingestload's options, members the API adds)
    "re-serialising": ("forward", [], ()),
    "enriching": ("enrich", [], ("receivedAt", "source")),
    "wrapping (discovered)": ("wrap", [], ()),
    "wrapping (--message-path data)": ("wrap", ["--message-path", "data"], ()),
    "batch-forwarding": (
        "batch",
        ["--api-batch-size", "10", "--api-batch-path", "/batch/{msgType}"],
        (),
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", list(NODE_CASES))
def test_node_api_faults_are_counted_exactly(kafka, prefix, root, tmp_path, case, mode):
    """A Node.js API (JSON.parse/JSON.stringify) that drops every 97th message, duplicates every 211th
    and changes a field in every 151st: lost, duplicated and corrupted are exactly its own account,
    whatever it does to the rest (re-serialise, enrich, wrap, batch) — and the oracle agrees."""
    api_mode, options, added = NODE_CASES[case]
    port = free_port()
    api = node_api(root, kafka, prefix, tmp_path, api_mode, port)
    verdict_file = tmp_path / "v.json"
    extra = processes_args(2) if mode != "local" else []
    path = [] if api_mode == "batch" else ["--api-path", "/ingest/{msgType}"]
    try:
        done = run_locust(root, kafka, prefix, port, verdict_file, *path, *options, *extra)
    finally:
        truth = api.stop()
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    assert min(len(truth["lost"]), len(truth["duplicated"]), len(truth["corrupted"])) > 0, truth
    assert (v["lost"], v["duplicated"], v["corrupted"], v["misrouted"], v["foreign"]) == (
        len(truth["lost"]),
        len(truth["duplicated"]),
        len(truth["corrupted"]),
        0,
        0,
    ), describe_output(done)
    lost = sorted(int(seq) for _, seq in truth["lost"])
    assert sorted(s["seq"] for s in v["lost_samples"]) == lost[:20]
    corrupted = {(int(p), int(s)) for p, s in truth["corrupted"]}
    assert {(int(s["producer_id"], 16), s["seq"]) for s in v["corrupted_samples"]} <= corrupted
    # The first corrupted ids name the member the API changed.
    assert all(
        s["detail"] in ("Param.Floor changed", "Header.EquipmentId changed") for s in v["corrupted_samples"]
    ), v["corrupted_samples"]
    if added:
        assert sorted(v["enriched_members"]) == sorted(added)
        assert v["enriched"] == v["seen"] + v["duplicated"] - v["corrupted"]
        assert (
            f"enriched: {v['enriched']:,} messages, members receivedAt, source" in done.stdout + done.stderr
        )
    else:
        assert v["enriched"] == 0
    topics = sorted(v["seen_by_topic"])
    path = "data" if api_mode == "wrap" else ("records" if api_mode == "batch" else None)
    oracle = tally(read_copies(kafka, topics, v["run_id"], message_path=path, added=added))
    assert (oracle["corrupted"], oracle["duplicated"], oracle["seen"]) == (
        len(truth["corrupted"]),
        len(truth["duplicated"]),
        v["seen"],
    )


def identity_of(test01: str, run_id: str) -> tuple[int, int]:
    found = _strict_identity(test01, bytes.fromhex(run_id))
    assert found is not None, test01
    return found[0], found[1]


@pytest.mark.parametrize("mode", MODES)
def test_seed001_pipeline_form_strict_schema(kafka, prefix, root, tmp_path, mode):
    """Seed 001's pipeline as it is — form posts to a Flask endpoint that writes json.dumps(request.form)
    with kafka-python to its fixed topic, and a consumer that rejects a message with a field more or
    less — load-tested with --api-body form --envelope-in test01: its consumer rejects nothing, every
    id is a UUID, and the drops, duplicates and changed fields it made are counted exactly."""
    port = free_port()
    endpoints = "financial_pro,social_pro"
    env = {
        "SEED001_KAFKA": kafka, "SEED001_PORT": str(port), "SEED001_TOPIC_PREFIX": prefix,
        "SEED001_ENDPOINTS": endpoints, "SEED001_TRUTH": str(tmp_path / "truth.json"),
        "SEED001_DROP_EVERY": "29", "SEED001_DUPLICATE_EVERY": "37", "SEED001_CORRUPT_EVERY": "31",
    }  # fmt: skip
    api = Api([sys.executable, "myflask.py"], tmp_path / "truth.json", SEED001, env)
    verdict_file = tmp_path / "v.json"
    extra = processes_args(2) if mode != "local" else []
    try:
        done = run_locust(
            root, kafka, prefix, port, verdict_file,
            "--catalogue", str(SEED001 / "catalogue.yaml"), "--api-path", "/{msgType}",
            "--api-body", "form", "--envelope-in", "test01", "--ledger-file", str(tmp_path / "ledger.json"),
            *extra, rate="40",
        )  # fmt: skip
    finally:
        truth = api.stop()
    assert done.returncode == 3, describe_output(done)
    v = json.loads(verdict_file.read_text())
    run_id = v["run_id"]
    kinds = {k: {identity_of(t, run_id) for t in ids} for k, ids in truth.items()}
    assert min(map(len, kinds.values())) > 0, truth
    assert (v["lost"], v["duplicated"], v["corrupted"], v["misrouted"], v["foreign"]) == (
        len(kinds["lost"]),
        len(kinds["duplicated"]),
        len(kinds["corrupted"]),
        0,
        0,
    ), describe_output(done)
    assert {s["seq"] for s in v["lost_samples"]} <= {seq for _, seq in kinds["lost"]}
    assert all(s["detail"] == "test02 changed" for s in v["corrupted_samples"]), v["corrupted_samples"]
    # Judged again later from its ledger file (which records how messages travel): the same verdict.
    later = judge_again(tmp_path / "ledger.json", tmp_path / "later.json", cwd=root)
    assert later.returncode == 3, describe_output(later)
    again = json.loads((tmp_path / "later.json").read_text())
    assert (again["lost"], again["duplicated"], again["corrupted"]) == (
        v["lost"],
        v["duplicated"],
        v["corrupted"],
    )

    # Its own consumer, as the seed wrote it: every message has exactly its endpoint's field count.
    out = tmp_path / "handler"
    out.mkdir()
    handler = subprocess.run(
        [sys.executable, "handler.py"],
        capture_output=True, text=True, timeout=120, cwd=SEED001,
        env={**os.environ, **env, "SEED001_OUT": str(out), "SEED001_IDLE": "5"},
    )  # fmt: skip
    assert handler.returncode == 0, handler.stderr
    counts = {
        m[0]: (int(m[1]), int(m[2]))
        for m in re.findall(r"(\w+) accepted=(\d+) rejected=(\d+)", handler.stdout)
    }
    assert sum(r for _, r in counts.values()) == 0, handler.stdout
    assert sum(a for a, _ in counts.values()) == v["seen"] + v["duplicated"], handler.stdout
    for line in (out / "financial_pro.txt").read_text().splitlines()[:50]:
        fields = eval(line.split("--", 1)[1])  # the seed writes the dict's repr
        assert sorted(fields) == ["test01", "test02", "test03", "test04"]
        assert uuid.UUID(fields["test01"]).version == 8

    topics = [prefix + name for name in endpoints.split(",")]
    oracle = tally(read_copies(kafka, topics, run_id, envelope_in="test01"))
    assert (oracle["corrupted"], oracle["duplicated"], oracle["seen"]) == (
        len(kinds["corrupted"]),
        len(kinds["duplicated"]),
        v["seen"],
    )
