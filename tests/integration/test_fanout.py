"""The reference fan-out gateway as a real process against a real broker: exact windows, filters,
the slow-subscriber policies, push faults, SIGTERM, workers, a crash — each checked against what
the test itself produced (delivery reports), and through the fan-out verdict."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from ingestload.fanout.client import ConnectionClosedError, Subscriber, WebSocketConnection
from ingestload.fanout.expected import read_expected
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.testing import run_gateway, stats, ws_url
from ingestload.fanout.verdict import judge
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import free_port
from ingestload.serving.testing import ServerProcess
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS

pytestmark = pytest.mark.integration

LCE = FieldFilter(("Header", "ControllerType"), ("LCE",))
SECRET = "s3cr3t-fanout-never-shown"


def produce(bootstrap, topic, count, start=0, pad=0):
    """``count`` JSON messages (controller LCE for even i, GCE for odd); returns {(partition, offset): i}."""
    landed = {}
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def on_delivery(err, msg, i):
        assert err is None, err
        landed[(msg.partition(), msg.offset())] = i

    for i in range(start, start + count):
        value = orjson.dumps(
            {"Header": {"ControllerType": "LCE" if i % 2 == 0 else "GCE"}, "i": i, "pad": "x" * pad}
        )
        producer.produce(topic, value, on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
        producer.poll(0)
    assert producer.flush(30) == 0
    return landed


def end_of(topic, landed):
    end = {}
    for partition, offset in landed:
        end[(topic, partition)] = max(end.get((topic, partition), 0), offset + 1)
    return end


def received(sub, topic):
    return {(p, o) for (t, p), bitmap in sub.ledger.received.items() if t == topic for o in bitmap}


def read_until_closed(sub, limit=60.0):
    """Pump until the connection closes; the close as the client saw it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            sub.pump(1.0)
        except ConnectionClosedError as e:
            return e
    raise AssertionError(f"{sub.ledger.subscriber}: still open after {limit:g}s")


def verdict_of(kafka, subs, **kwargs):
    ledgers = [s.ledger for s in subs]
    return judge(ledgers, read_expected({"bootstrap.servers": kafka}, ledgers), **kwargs)


@pytest.fixture
def topic(kafka, prefix):
    name = f"{prefix}fan"
    ensure_topics({"bootstrap.servers": kafka}, [name], 3)
    return name


def test_each_subscriber_gets_exactly_its_filter(kafka, topic):
    """Two subscribers (all, LCE only) get exactly the produced messages of their subscription, in order."""
    with run_gateway(kafka, "--topics", topic) as gateway:
        everything = Subscriber.connect(ws_url(gateway), "all", [topic])
        lce = Subscriber.connect(ws_url(gateway), "lce", [topic], LCE)
        landed = produce(kafka, topic, 600)
        end = end_of(topic, landed)
        for sub in (everything, lce):
            assert sub.drain(end, timeout=30)
            assert sub.finish(timeout=10)
            sub.close()
        assert received(everything, topic) == set(landed)
        assert received(lce, topic) == {tp for tp, i in landed.items() if i % 2 == 0}
        assert not everything.ledger.duplicates
        assert not everything.ledger.out_of_order
        verdict = verdict_of(kafka, [everything, lce])
        assert verdict.status == PASS, verdict.report()
        assert verdict.totals["expected"] == 900
        assert stats(gateway)["total"]["deliveries"] == 900


def test_messages_before_the_subscription_are_not_expected(kafka, topic):
    """Messages that reached Kafka before the confirmed start are neither pushed nor expected."""
    with run_gateway(kafka, "--topics", topic) as gateway:
        before = produce(kafka, topic, 50)
        time.sleep(0.5)  # let the gateway read them: its positions move past them
        sub = Subscriber.connect(ws_url(gateway), "late", [topic])
        after = produce(kafka, topic, 50, start=50)
        assert sub.drain(end_of(topic, after), timeout=30)
        assert sub.finish()
        sub.close()
        assert received(sub, topic) == set(after)
        assert not received(sub, topic) & set(before)
        verdict = verdict_of(kafka, [sub])
        assert (verdict.status, verdict.totals["expected"]) == (PASS, 50)


def test_skip_fault_is_an_exact_miss_for_that_subscriber_only(kafka, topic):
    """--fault-skip-every 4 towards id 'victim': its verdict misses exactly a quarter; the other none."""
    with run_gateway(kafka, "--topics", topic, "--fault-skip-every", "4", "--fault-id", "victim") as gateway:
        victim = Subscriber.connect(ws_url(gateway), "victim", [topic], label="victim")
        bystander = Subscriber.connect(ws_url(gateway), "bystander", [topic], label="other")
        landed = produce(kafka, topic, 400)
        for sub in (victim, bystander):
            assert sub.drain(end_of(topic, landed), timeout=30)
            assert sub.finish()
            sub.close()
        verdict = verdict_of(kafka, [victim, bystander])
        by_name = {r.subscriber: r for r in verdict.results}
        assert verdict.status == FAIL
        assert (by_name["victim"].missed, by_name["victim"].dropped) == (100, 0)
        assert by_name["bystander"].missed == 0
        assert stats(gateway)["total"]["fault_skipped"] == 100


def test_slow_subscriber_drops_are_counted_announced_and_missed(kafka, prefix):
    """drop-oldest: a subscriber that does not read loses messages; the gateway counts them, tells it,
    and the verdict reports exactly those as missed (FAIL, not PASS)."""
    topic = f"{prefix}slow"
    ensure_topics({"bootstrap.servers": kafka}, [topic], 1)
    args = ("--topics", topic, "--queue-limit", "100", "--write-buffer", "1024")
    with run_gateway(kafka, *args) as gateway:
        slow = Subscriber.connect(ws_url(gateway), "slow", [topic])
        fast = Subscriber.connect(ws_url(gateway), "fast", [topic])
        landed = {}
        for batch in range(80):  # ~16 MB: more than the socket buffers hold for a reader that sleeps
            landed.update(produce(kafka, topic, 200, start=batch * 200, pad=1000))
            while fast.pump(0.1):  # the fast one keeps up: 200 KB at a time fit its socket buffers
                pass
        assert fast.drain(end_of(topic, landed), timeout=60)
        assert slow.drain(end_of(topic, landed), timeout=60)
        for sub in (slow, fast):
            assert sub.finish()
            sub.close()
        dropped = stats(gateway)["total"]["dropped"]
        verdict = verdict_of(kafka, [slow, fast])
    by_name = {r.subscriber: r for r in verdict.results}
    assert dropped > 0
    assert slow.ledger.announced_dropped == dropped
    assert by_name["slow"].missed == dropped
    assert by_name["slow"].expected == len(landed)
    assert by_name["fast"].missed == 0
    assert verdict.status == FAIL


def test_disconnect_policy_ends_the_slow_subscriber_with_an_exact_window(kafka, prefix):
    """disconnect: the slow subscriber gets a clean end (slow_subscriber); the dropped queue is its miss."""
    topic = f"{prefix}cut"
    ensure_topics({"bootstrap.servers": kafka}, [topic], 1)
    args = (
        "--topics",
        topic,
        "--queue-limit",
        "100",
        "--write-buffer",
        "1024",
        "--slow-policy",
        "disconnect",
    )
    with run_gateway(kafka, *args) as gateway:
        slow = Subscriber.connect(ws_url(gateway), "slow", [topic])
        produce(kafka, topic, 16000, pad=1000)  # ~16 MB, and nobody reads: the socket buffers fill
        counts = gateway.wait_until("/stats", lambda r: r.json()["total"].get("slow_disconnects")).json()[
            "total"
        ]
        assert read_until_closed(slow).code == 1008
    assert slow.ledger.state == "closed"
    assert slow.ledger.end_reason == "slow_subscriber"
    assert counts["slow_disconnects"] == 1
    verdict = verdict_of(kafka, [slow])
    assert verdict.status == FAIL
    assert verdict.totals["missed"] == counts["dropped"] > 0


def test_sigterm_ends_every_subscription_cleanly(kafka, topic):
    """SIGTERM: each subscriber gets its queue, a clean end (shutting_down), a 1001 close; exit 0; PASS."""
    with run_gateway(kafka, "--topics", topic) as gateway:
        subs = [Subscriber.connect(ws_url(gateway), f"s{i}", [topic]) for i in range(3)]
        landed = produce(kafka, topic, 300)
        for sub in subs:
            assert sub.drain(end_of(topic, landed), timeout=30)
        gateway.signal(signal.SIGTERM)
        for sub in subs:
            assert read_until_closed(sub).code == 1001
            assert (sub.ledger.state, sub.ledger.end_reason) == ("closed", "shutting_down")
        assert gateway.process.wait(30) == 0
        assert "worker 0 stopped" in gateway.log()
    verdict = verdict_of(kafka, subs)
    assert verdict.status == PASS, verdict.report()
    assert verdict.totals["received"] == 900


def test_a_crashed_gateway_is_never_a_pass(kafka, topic):
    """SIGKILL mid-stream: no window has a clean end, so the verdict is INCONCLUSIVE (or FAIL), never PASS."""
    with run_gateway(kafka, "--topics", topic) as gateway:
        subs = [Subscriber.connect(ws_url(gateway), f"c{i}", [topic]) for i in range(2)]
        produce(kafka, topic, 200)
        for sub in subs:
            sub.pump(1.0)
        gateway.kill()
        for sub in subs:
            read_until_closed(sub)
    produce(kafka, topic, 100, start=200)  # reached Kafka after the crash: nobody got it
    verdict = verdict_of(kafka, subs)
    assert {s.ledger.state for s in subs} == {"broken"}
    assert verdict.status in (INCONCLUSIVE, FAIL)
    assert verdict.windows["broken"] == 2


def test_two_workers_each_serve_whole_subscriptions(kafka, topic):
    """--workers 2: subscribers land on either worker; each gets everything; /stats shows both workers."""
    with run_gateway(kafka, "--topics", topic, "--workers", "2") as gateway:
        subs = [Subscriber.connect(ws_url(gateway), f"w{i}", [topic]) for i in range(6)]
        landed = produce(kafka, topic, 300)
        for sub in subs:
            assert sub.drain(end_of(topic, landed), timeout=30)
            assert sub.finish()
            sub.close()
        assert {sub.ledger.subscription.split("-")[0] for sub in subs} <= {"w0", "w1"}
        workers = gateway.wait_until("/stats", lambda r: len(r.json()["workers"]) == 2).json()["workers"]
        assert sorted(w["worker"] for w in workers) == [0, 1]
    assert all(received(sub, topic) == set(landed) for sub in subs)
    assert verdict_of(kafka, subs).status == PASS


def test_protocol_errors_are_answered_and_the_connection_stays(kafka, topic):
    """An unknown topic or a bad frame gets an error frame naming it; the same connection can subscribe."""
    with run_gateway(kafka, "--topics", topic) as gateway:
        connection = WebSocketConnection(ws_url(gateway))
        connection.send(b'{"type":"subscribe","topics":["nope"]}')
        error = orjson.loads(connection.recv(5))
        assert error["error"] == "unknown_topic"
        assert topic in error["detail"]
        connection.send(b"not json")
        assert orjson.loads(connection.recv(5))["error"] == "invalid_json"
        connection.send(orjson.dumps({"type": "subscribe", "topics": [topic]}))
        assert orjson.loads(connection.recv(5))["type"] == "subscribed"
        connection.close()
        assert gateway.get("/readyz").status == 200
        assert gateway.get("/nowhere").status == 404


def test_bad_input_and_secrets(kafka, topic):
    """A bad option: one line, exit 2, nothing started. A secret Kafka property is never in log or stats."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ingestload.cli",
            "fanout",
            "--slow-policy",
            "nap",
            "--kafka-bootstrap",
            kafka,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "ingestload fanout: error: --slow-policy: 'nap' is not allowed; "
        "expected one of drop-oldest, disconnect"
    ]
    env = {"INGESTLOAD_KAFKA_PROP_SASL_PASSWORD": SECRET}
    with run_gateway(kafka, "--topics", topic, env=env) as gateway:
        body = gateway.get("/stats").body + gateway.get("/readyz").body
        assert gateway.stop() == 0
        log = gateway.log()
    assert "sasl.password=***" in log
    assert SECRET not in log
    assert SECRET.encode() not in body


def test_without_kafka_bootstrap_it_brings_its_own_broker(tmp_path):
    """No --kafka-bootstrap: an embedded broker starts with the gateway; /readyz turns 200; SIGTERM: 0."""
    log = tmp_path / "fanout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingestload.cli", "fanout", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "INGESTLOAD_KAFKA_BOOTSTRAP"},
        )
    try:
        deadline = time.monotonic() + 60
        while "listening on ws://" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert "embedded Kafka broker" in text
        port = int(text.split("listening on ws://127.0.0.1:", 1)[1].split("/", 1)[0])
        server = ServerProcess(process, "127.0.0.1", port, log, "ingestload fanout")
        ready = server.wait_until("/readyz", lambda r: r.status == 200).json()
        assert ready["partitions"] == 4 * 3  # the catalogue's four topics, 3 partitions each
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("skip_every", "victim_missed"), [(0, 0), (3, 100)])
def test_a_gateway_of_the_tests_own_is_judged_exactly(kafka, topic, skip_every, victim_missed):
    """The verdict judges any gateway that speaks protocol v1: the test's own skips every 3rd push to
    'victim' → exactly 100 of 300 missed for it, none for the bystander; without the fault, PASS."""
    port = free_port()
    gateway = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("own_gateway.py")),
            str(port),
            kafka,
            topic,
            str(skip_every),
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert gateway.stdout.readline().strip() == b"ready"
        url = f"ws://127.0.0.1:{port}/"
        victim = Subscriber.connect(url, "victim", [topic], label="victim")
        bystander = Subscriber.connect(url, "bystander", [topic], label="bystander")
        landed = produce(kafka, topic, 300)
        for sub in (victim, bystander):
            assert sub.drain(end_of(topic, landed), timeout=30)
            assert sub.finish()
            sub.close()
    finally:
        os.killpg(gateway.pid, signal.SIGKILL)
        gateway.wait()
        gateway.stdout.close()
    verdict = verdict_of(kafka, [victim, bystander])
    by_name = {r.subscriber: r for r in verdict.results}
    assert (by_name["victim"].missed, by_name["bystander"].missed) == (victim_missed, 0)
    assert by_name["victim"].expected == by_name["bystander"].expected == 300
    assert verdict.status == (FAIL if victim_missed else PASS), verdict.report()


def test_end_offsets_are_the_true_ends_not_the_brokers_listoffsets(kafka, topic):
    """topic_end_offsets (what subscribers drain to at a stop) equals the next offset after the last delivered
    record of every partition, batches of many records included; an empty partition ends at 0."""
    from ingestload.kafka.admin import topic_end_offsets

    landed = produce(kafka, topic, 250)
    ends = topic_end_offsets({"bootstrap.servers": kafka}, [topic])
    truth = end_of(topic, landed)
    assert ends == {(topic, p): truth.get((topic, p), 0) for p in range(3)}
