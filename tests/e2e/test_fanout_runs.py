"""Whole Locust runs with producers and WebSocket subscribers (local and master + 2 workers) against a
real broker and real gateway processes: the fan-out verdict beside the Kafka one, checked against
what the gateway says it did (its /stats, or the skips a gateway of the test's own prints), Locust's
WS rows and an independent reader of Kafka (tests/oracle.py)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingestload.fanout.testing import run_gateway, stats, ws_url
from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import describe_output, free_port, locust_command, worker_processes
from tests.oracle import read_copies, wait_for_records

pytestmark = pytest.mark.e2e

OWN_GATEWAY = Path(__file__).resolve().parents[1] / "integration" / "own_gateway.py"
MODES = ["local", "master+2 workers"]


def views(root: Path) -> Path:
    return root / "tests" / "e2e" / "locustfiles" / "views.py"


def run_views(root, kafka, prefix, tmp_path, mode, url, users, extra="", views_env=None, timeout=180):
    """A 5-second headless run of the views locustfile at 1,500 msg/s; returns (process, verdict, WS rows)."""
    verdict_file, stats_file = tmp_path / "verdict.json", tmp_path / "stats"
    env = {**os.environ, "INGESTLOAD_TEST_VIEWS": json.dumps(views_env or {})}
    common = (
        f"--headless -t 5s --only-summary --rate 1500 --kafka-bootstrap {kafka} --topic-prefix {prefix} "
        f"--ws-url {url} --verdict-file {verdict_file} --json-file {stats_file} -u {users} -r {users} {extra}"
    )
    if mode == "local":
        done = subprocess.run(
            locust_command(views(root), *common.split()),
            capture_output=True, text=True, timeout=timeout, cwd=root, env=env,
        )  # fmt: skip
    else:
        with worker_processes(views(root), 2, cwd=root, env=env) as port:
            master = f"{common} --master --master-bind-port {port} --expect-workers 2"
            done = subprocess.run(
                locust_command(views(root), *master.split()),
                capture_output=True, text=True, timeout=timeout, cwd=root, env=env,
            )  # fmt: skip
    verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
    if "fanout" in verdict:  # for the record (pytest -s): the fault matrix in docs/fanout.md comes from here
        print(f"\n{mode}: {verdict['fanout']['report'].splitlines()[0]}")
    rows = json.loads(Path(f"{stats_file}.json").read_text()) if Path(f"{stats_file}.json").exists() else []
    ws_rows = {e["name"]: e for e in rows if e["method"] == "WS"}
    return done, verdict, ws_rows


@contextlib.contextmanager
def own_gateway(kafka, topic, skip_every=0, port=None, fault="", truth=""):
    """The test's own gateway (tests/integration/own_gateway.py) on ``port``; yields (url, process).
    ``truth``: a file where it says what it did (else stdout)."""
    port = port or free_port()
    command = [
        sys.executable, str(OWN_GATEWAY), str(port), kafka, topic, str(skip_every), "victim", fault, truth
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield f"ws://127.0.0.1:{port}/", process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def skipped_lines(process) -> list[str]:
    """What the test's own gateway said it skipped (read after it was killed)."""
    return [line for line in process.stdout.read().splitlines() if line.startswith("skipped ")]


def by_label(verdict: dict, label: str) -> list[dict]:
    return [r for r in verdict["fanout"]["results"] if f"-{label}-" in r["subscriber"]]


@pytest.mark.parametrize("mode", MODES)
def test_clean_run_passes_with_every_expected_delivery_delivered(kafka, prefix, root, tmp_path, mode):
    """A clean run through the reference gateway: both verdicts PASS, exit 0, delivered == expected ==
    the gateway's own count of deliveries == Locust's WS requests; no window expects more than Kafka holds."""
    with run_gateway(kafka, "--topic-prefix", prefix) as gateway:
        done, verdict, ws_rows = run_views(root, kafka, prefix, tmp_path, mode, ws_url(gateway), users=4)
        deliveries = stats(gateway)["total"]["deliveries"]
    assert done.returncode == 0, describe_output(done)
    fanout = verdict["fanout"]
    totals = fanout["totals"]
    assert (verdict["status"], fanout["status"], verdict["overall"]["status"]) == ("PASS", "PASS", "PASS")
    assert totals["expected"] == totals["received"] == deliveries > 0
    assert totals["missed"] == totals["duplicated"] == totals["out_of_order"] == totals["unexpected"] == 0
    assert fanout["subscribers"] == fanout["windows"]["closed"] == 3
    topics = Catalogue.load().topics(prefix)
    assert sum(ws_rows[t]["num_requests"] for t in topics if t in ws_rows) == totals["received"]
    assert sum(e["num_failures"] for e in ws_rows.values()) == 0
    in_kafka = read_copies(kafka, topics, verdict["run_id"])  # an independent reader
    assert len(in_kafka) == verdict["acked"]
    assert all(0 < r["expected"] <= len(in_kafka) for r in fanout["results"])
    if mode != "local":  # the ledgers came from both workers
        assert len({r["subscriber"].rsplit("-view-", 1)[0] for r in fanout["results"]}) == 2
    assert "FANOUT VERDICT: PASS" in done.stderr
    assert f"ingestload run {verdict['run_id']}: VERDICT PASS (exit code 0)" in done.stdout


@pytest.mark.parametrize("mode", MODES)
def test_a_gateway_that_skips_pushes_to_one_subscriber_is_an_exact_miss_for_it_only(
    kafka, prefix, root, tmp_path, mode
):
    """A gateway of the test's own skips every 7th push to the victim: the victim's missed is exactly
    what it says it skipped, every other view misses nothing; fan-out FAIL, Kafka PASS, exit 3."""
    topic = f"{prefix}movementData"
    ensure_topics({"bootstrap.servers": kafka}, Catalogue.load().topics(prefix), 3)
    with own_gateway(kafka, topic, skip_every=7) as (url, gateway):
        done, verdict, ws_rows = run_views(
            root, kafka, prefix, tmp_path, mode, url, users=4, extra=f"--ws-topics {topic}",
            views_env={"victim": 1},
        )  # fmt: skip
        os.killpg(gateway.pid, signal.SIGKILL)
        skipped = skipped_lines(gateway)
    assert done.returncode == 3, describe_output(done)
    victim, others = by_label(verdict, "victim"), by_label(verdict, "view")
    print(  # the fault matrix's row: what the gateway says it did, what the verdict counted
        f"{mode}: skip fault: the gateway printed {len(skipped)} skips; missed: victim "
        f"{[r['missed'] for r in victim]}, others {[r['missed'] for r in others]}"
    )
    assert len(victim) == 1
    assert len(others) == 2
    assert len(skipped) > 0
    assert victim[0]["missed"] == len(skipped)
    assert [r["missed"] for r in others] == [0, 0]
    assert all(r["window"] == "closed" and r["expected"] > 0 for r in victim + others)
    assert verdict["fanout"]["totals"]["missed"] == len(skipped)
    assert (verdict["status"], verdict["fanout"]["status"], verdict["overall"]["status"]) == (
        "PASS",
        "FAIL",
        "FAIL",
    )
    assert ws_rows[topic]["num_failures"] == len(skipped)  # the misses are failures of the WS row
    assert "missed" in done.stderr
    assert "FANOUT VERDICT: FAIL" in done.stderr


def said(truth: Path, word) -> list[tuple[str, int, int]]:
    """What the test's own gateway said it did to the victim (its truth file, read after it was killed):
    (topic, partition, offset) of each ``word`` line (offset -1 for ``omitted``)."""
    found = []
    for line in truth.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == word:
            found.append((parts[2], int(parts[3]), int(parts[4]) if len(parts) > 4 else -1))
    return found


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", ["shrink:40", "garble:9", "omit:1"])
def test_a_gateway_that_lies_to_one_subscriber_is_caught_for_it_only(
    kafka, prefix, root, tmp_path, mode, fault
):
    """The fan-out columns of the anomaly matrix (issue 18 items 1-3), through a gateway of the test's
    own that lies to the victim only, in local and distributed runs. The truth is what the gateway
    printed it did:

    * window (``shrink:40``): after 40 pushes it withholds the rest while its progress frames vouch for
      them, and ends the window just after the last push → the victim missed exactly the withheld
      messages, the contradiction named; FAIL, exit 3;
    * content (``garble:9``): every 9th push carries another value at the right offset → altered =
      the victim's partitions with a garbled push; FAIL, exit 3;
    * partition (``omit:1``): partition 1 is left out of the victim's window (its progress vouching for
      it all the same, so the window closes cleanly) and never pushed → the window is not known whole,
      INCONCLUSIVE naming it, exit 4 — never PASS.

    Every other view: nothing missed, nothing altered."""
    kind = fault.split(":")[0]
    topic = f"{prefix}movementData"
    ensure_topics({"bootstrap.servers": kafka}, Catalogue.load().topics(prefix), 3)
    truth_file = tmp_path / "gateway-truth.txt"
    truth_file.touch()
    with own_gateway(kafka, topic, fault=fault, truth=str(truth_file)) as (url, gateway):
        done, verdict, _ = run_views(
            root, kafka, prefix, tmp_path, mode, url, users=3, extra=f"--ws-topics {topic}",
            views_env={"victim": 1},
        )  # fmt: skip
        os.killpg(gateway.pid, signal.SIGKILL)
    truth = said(truth_file, {"shrink": "withheld", "garble": "garbled", "omit": "omitted"}[kind])
    fanout = verdict["fanout"]
    victim, others = by_label(verdict, "victim"), by_label(verdict, "view")
    print(f"{mode}: {fault}: the gateway said {len(truth)}; victim {victim and victim[0]}")
    assert len(victim) == 1
    assert truth, describe_output(done)
    assert all(r["missed"] == 0 and r.get("altered", 0) == 0 and not r["unknown"] for r in others)
    assert verdict["status"] == "PASS"  # Kafka itself is fine
    if kind == "shrink":
        assert (done.returncode, fanout["status"]) == (3, "FAIL"), describe_output(done)
        assert victim[0]["missed"] == len(truth)
        assert victim[0]["window"] == "closed"
        assert any("below progress" in r for r in fanout["reasons"])
    elif kind == "garble":
        assert (done.returncode, fanout["status"]) == (3, "FAIL"), describe_output(done)
        assert victim[0]["missed"] == 0
        assert victim[0]["altered"] == len({(t, p) for t, p, _ in truth})
        assert fanout["totals"]["altered"] == victim[0]["altered"]
    else:
        assert (done.returncode, fanout["status"]) == (4, "INCONCLUSIVE"), describe_output(done)
        assert truth == [(topic, 1, -1)]
        assert victim[0]["window"] == "closed"
        assert any(f"{topic}[1]: left out of its window" in u for u in victim[0]["unknown"])


def test_a_slow_subscriber_loses_what_the_policy_dropped_and_the_run_fails(kafka, prefix, root, tmp_path):
    """The reference gateway's drop-oldest policy on a view that reads slowly: the verdict's dropped =
    the gateway's count = that view's missed; the other views miss nothing; FAIL, exit 3, never PASS."""
    topic = f"{prefix}movementData"
    args = ("--topic-prefix", prefix, "--topics", topic, "--queue-limit", "50", "--write-buffer", "1024")
    with run_gateway(kafka, *args) as gateway:
        done, verdict, _ = run_views(
            root, kafka, prefix, tmp_path, "local", ws_url(gateway), users=4,
            extra=f"--ws-topics {topic} --rate 3000", views_env={"slow": 1},
        )  # fmt: skip
        dropped = stats(gateway)["total"]["dropped"]
    assert done.returncode == 3, describe_output(done)
    fanout = verdict["fanout"]
    slow, others = by_label(verdict, "slow"), by_label(verdict, "view")
    print(
        f"slow view: the gateway's /stats dropped={dropped}; verdict: slow view dropped "
        f"{[r['dropped'] for r in slow]} missed {[r['missed'] for r in slow]}, others "
        f"{[r['missed'] for r in others]}"
    )
    assert dropped > 0
    assert fanout["totals"]["dropped"] == dropped == slow[0]["dropped"] == slow[0]["missed"]
    assert [r["missed"] for r in others] == [0, 0]
    assert fanout["status"] == "FAIL"
    assert verdict["overall"]["exit_code"] == 3


def test_a_gateway_restart_mid_run_is_never_a_pass(kafka, prefix, root, tmp_path):
    """The test's own gateway killed mid-run (timed by what reached Kafka) and started again on its port:
    the views' windows at the crash are broken, they reconnect in new windows; never PASS (exit 3 or 4)."""
    topic = f"{prefix}movementData"
    topics = Catalogue.load().topics(prefix)
    ensure_topics({"bootstrap.servers": kafka}, topics, 3)
    port = free_port()
    verdict_file = tmp_path / "verdict.json"
    common = (
        f"--headless -t 8s --only-summary --rate 1500 --kafka-bootstrap {kafka} --topic-prefix {prefix} "
        f"--ws-url ws://127.0.0.1:{port}/ --ws-topics {topic} --verdict-file {verdict_file} -u 4 -r 4"
    )
    with own_gateway(kafka, topic, port=port) as (_, first):
        locust = subprocess.Popen(
            locust_command(views(root), *common.split()),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
        )  # fmt: skip
        try:
            wait_for_records(kafka, [topic], at_least=2000)
            os.killpg(first.pid, signal.SIGKILL)  # a crash: no clean end for anyone
            first.wait()
            with own_gateway(kafka, topic, port=port):
                out, err = locust.communicate(timeout=180)
        finally:
            if locust.poll() is None:
                locust.kill()
                locust.wait()
    done = subprocess.CompletedProcess(locust.args, locust.returncode, out, err)
    assert done.returncode in (3, 4), describe_output(done)
    verdict = json.loads(verdict_file.read_text())
    fanout = verdict["fanout"]
    print("\n" + "\n".join(fanout["report"].splitlines()[:3]))
    assert fanout["status"] in ("FAIL", "INCONCLUSIVE")
    assert verdict["overall"]["status"] != "PASS"
    assert fanout["windows"]["broken"] == 3  # every view was connected when it crashed
    assert fanout["windows"]["closed"] == 3  # and each reconnected once, ending cleanly at the stop
    assert any("broken" in reason or "cannot be fully known" in reason for reason in fanout["reasons"])


def test_ingestload_run_fanout_starts_the_gateway_and_prints_both_verdicts(kafka, root, tmp_path):
    """`ingestload run --fanout --subscribers 3`: the reference gateway is started for the run, every
    subscriber's expected deliveries are delivered (PASS, exit 0), and the fan-out headline printed
    after the per-topic counts is the verdict file's; no window expects more than the run put in Kafka
    (read back by an independent reader)."""
    prefix = f"fo-{tmp_path.name[-8:]}-"
    args = (
        f"run --fanout --subscribers 3 -t 4s --rate 1000 --kafka-bootstrap {kafka} --topic-prefix {prefix} "
        f"--reports {tmp_path}"
    )
    command = [sys.executable, "-m", "ingestload.cli", *args.split()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=root)
    assert done.returncode == 0, describe_output(done)
    assert "reference fan-out gateway at ws://" in done.stdout
    run_id = next(line for line in done.stdout.splitlines() if line.startswith("ingestload run ")).split()[2]
    verdict = json.loads((tmp_path / run_id.rstrip(":") / "verdict.json").read_text())
    fanout = verdict["fanout"]
    headline = fanout["report"].splitlines()[0]
    assert headline.startswith("FANOUT VERDICT: PASS  subscribers=3 ")
    assert headline in done.stdout.splitlines()
    assert (verdict["status"], fanout["status"], verdict["overall"]["exit_code"]) == ("PASS", "PASS", 0)
    totals = fanout["totals"]
    assert totals["expected"] == totals["received"] > 0
    in_kafka = read_copies(kafka, Catalogue.load().topics(prefix), verdict["run_id"])
    assert all(0 < r["expected"] <= len(in_kafka) for r in fanout["results"])
