"""The reference ingest API under pressure: backpressure, a broker that goes away, graceful shutdown."""

import http.client
import os
import signal
import threading
import time

import pytest

from ingestload.api.testing import run_api
from ingestload.kafka.broker import EmbeddedBroker

from .api_helpers import batch, bodies, ids, landed

pytestmark = pytest.mark.integration


def test_in_flight_limit_answers_503(kafka, prefix):
    """At the in-flight limit a request gets 503 + Retry-After at once; the waiting one still lands."""
    with run_api(
        kafka,
        "--topic-prefix",
        prefix,
        "--max-in-flight",
        "5",
        "--max-batch-items",
        "5",
        "--retry-after",
        "2",
        "--kafka-config",
        "linger.ms=2000",  # keeps the first message waiting for its report
    ) as api:
        first: list = []
        sender = threading.Thread(
            target=lambda: first.append(api.post("/v1/messages/alarm", bodies("alarm", 1, "w")[0]))
        )
        sender.start()
        api.wait_until("/readyz", lambda r: r.json()["in_flight"] == 1)
        reply = api.post("/v1/messages/alarm:batch", batch(bodies("alarm", 5, "bp")))
        assert reply.status == 503
        assert reply.headers["retry-after"] == "2"
        assert reply.json()["error"] == "backpressure"
        assert "limit 5" in reply.json()["detail"]
        sender.join(30)
        assert first[0].status == 200
        assert ids(landed(kafka, [prefix + "alarm"])) == {"w-0": 1}


def test_full_local_queue_refuses_the_rest_of_a_batch(kafka, prefix):
    """When the Kafka client's queue is full mid-batch, the rest gets 503 per item and the batch 207."""
    with run_api(
        kafka,
        "--topic-prefix",
        prefix,
        "--kafka-config",
        "queue.buffering.max.messages=3",
        "--kafka-config",
        "linger.ms=500",
    ) as api:
        reply = api.post("/v1/messages/fault:batch", batch(bodies("fault", 6, "q")))
        assert reply.status == 207
        body = reply.json()
        assert (body["accepted"], body["failed"]) == (3, 3)
        assert {(f["index"], f["status"], f["error"]) for f in body["failures"]} == {
            (3, 503, "backpressure"),
            (4, 503, "backpressure"),
            (5, 503, "backpressure"),
        }
        assert ids(landed(kafka, [prefix + "fault"])) == {"q-0": 1, "q-1": 1, "q-2": 1}


def test_readiness_follows_the_broker(prefix):
    """Broker down: /readyz and POSTs answer 503 + Retry-After; broker back (empty): topics recreated, 200."""
    with EmbeddedBroker() as broker, run_api(broker.bootstrap, "--topic-prefix", prefix) as api:
        assert api.post("/v1/messages/alarm", bodies("alarm", 1, "before")[0]).status == 200
        port = broker.port
        broker.stop()
        down = api.wait_until("/readyz", lambda r: r.status == 503)
        assert down.json()["kafka"] == "unreachable"
        assert down.headers["retry-after"] == "1"
        reply = api.post("/v1/messages/alarm", bodies("alarm", 1, "down")[0])
        assert (reply.status, reply.json()["error"]) == (503, "kafka_unavailable")
        assert reply.headers["retry-after"] == "1"
        reply = api.post("/v1/messages/alarm:batch", batch(bodies("alarm", 3, "down-batch")))
        assert (reply.status, reply.json()["error"]) == (503, "kafka_unavailable")
        assert api.get("/healthz").status == 200  # alive, just not ready

        broker.requested_port = port
        broker.start()
        api.wait_until("/readyz", lambda r: r.status == 200)
        assert api.post("/v1/messages/alarm", bodies("alarm", 1, "after")[0]).status == 200
        assert ids(landed(broker.bootstrap, [prefix + "alarm"])) == {"after-0": 1}


def _client(api, tag: str, acked: list, after_term: list, term: threading.Event) -> None:
    """Post unique messages on one keep-alive connection until the server goes away."""
    connection = http.client.HTTPConnection(api.host, api.port, timeout=30)
    i = 0
    try:
        while True:
            body = bodies("movementData", 1, f"{tag}-{i}")[0]
            connection.request(
                "POST", "/v1/messages/movementData", body, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                acked.append(f"{tag}-{i}-0")
                if term.is_set():
                    after_term.append(f"{tag}-{i}-0")
            i += 1
    except (OSError, http.client.HTTPException):
        return  # the server stopped: this request was not acknowledged
    finally:
        connection.close()


def test_graceful_shutdown_keeps_every_acknowledged_message(kafka, prefix):
    """SIGTERM under load: in-flight requests still get their 200, and every 200'd message is in Kafka."""
    with run_api(kafka, "--topic-prefix", prefix, "--kafka-config", "linger.ms=200") as api:
        acked: list[str] = []
        after_term: list[str] = []
        term = threading.Event()
        clients = [
            threading.Thread(target=_client, args=(api, f"c{n}", acked, after_term, term)) for n in range(8)
        ]
        for c in clients:
            c.start()
        api.wait_until("/debug/faults", lambda r: r.json()["accepted"] >= 40)
        api.wait_until("/readyz", lambda r: r.json()["in_flight"] > 0, timeout=10)
        term.set()
        api.signal(signal.SIGTERM)
        for c in clients:
            c.join(60)
        assert api.process.wait(60) == 0
        log = api.log()
    assert after_term, "no request in flight at SIGTERM was answered; the shutdown was not graceful"
    found = ids(landed(kafka, [prefix + "movementData"]))
    missing = [i for i in acked if i not in found]
    assert missing == [], f"acknowledged but not in Kafka: {missing[:10]} (of {len(acked)} acked)"
    assert "stopped: requests=" in log
    assert "unflushed=0" in log


def test_broker_crash_with_requests_in_flight(prefix):
    """Broker frozen, killed, restarted empty: requests in flight are maybe written — 504, never the
    503 that says "certainly not written" — or a 2xx found in Kafka."""
    with EmbeddedBroker() as broker, run_api(broker.bootstrap, "--topic-prefix", prefix) as api:
        items = bodies("alarm", 6, "crash")
        assert api.post("/v1/messages/alarm", items[0]).status == 200
        replies: dict[int, object] = {}
        os.kill(broker.pid, signal.SIGSTOP)  # requests now wait for an answer that never comes

        def send(i: int) -> None:
            replies[i] = api.post("/v1/messages/alarm", items[i])

        senders = [threading.Thread(target=send, args=(i,)) for i in range(1, 5)]
        for sender in senders:
            sender.start()
        api.wait_until("/readyz", lambda r: r.json()["in_flight"] == 4, timeout=10)
        broker.kill()
        broker.requested_port = broker.port
        broker.start()
        for sender in senders:
            sender.join(60)
        deadline = time.monotonic() + 30
        while (
            last := api.post("/v1/messages/alarm", items[5])
        ).status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert last.status == 200, last
        assert api.get("/debug/faults").json()["producer_replaced"] >= 1
        found = ids(landed(broker.bootstrap, [prefix + "alarm"]))
    statuses = {i: reply.status for i, reply in replies.items()}
    assert set(statuses.values()) <= {200, 504}, {i: (r.status, r.body) for i, r in replies.items()}
    assert [i for i, status in statuses.items() if status == 200 and f"crash-{i}" not in found] == []
    assert "crash-0" not in found  # acknowledged by the old broker, whose memory is gone
    assert "crash-5" in found
