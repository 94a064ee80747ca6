"""The reference ingest API, as a real server process against a real broker: contract and status codes."""

import json
import os
import re
import socket
import subprocess
import sys

import orjson
import pytest

from ingestload.api.testing import run_api
from ingestload.kafka.broker import free_port
from ingestload.serving.testing import ServerProcess
from ingestload.testing import unique_prefix

from .api_helpers import batch, bodies, ids, landed

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture(scope="module")
def api(kafka):
    """One server with small limits and a secret Kafka property, shared by the contract tests."""
    prefix = unique_prefix("api")
    with run_api(
        kafka,
        "--topic-prefix",
        prefix,
        "--max-body-bytes",
        "20000",
        "--max-batch-items",
        "10",
        "--kafka-config",
        f"sasl.password={SECRET}",
    ) as server:
        server.prefix = prefix
        yield server


def test_single_message_lands_verbatim(api, kafka):
    """200 with topic, partition, offset; the exact request bytes (envelope member included) land in Kafka."""
    sent = bodies("alarm", 5, "verbatim")
    replies = [api.post("/v1/messages/alarm", body) for body in sent]
    assert [r.status for r in replies] == [200] * 5
    first = replies[0].json()
    assert first["topic"] == api.prefix + "alarm"
    assert first["partition"] >= 0
    assert first["offset"] >= 0
    values = landed(kafka, [api.prefix + "alarm"])
    assert set(sent) <= set(values)


def test_batch_all_accepted(api, kafka):
    """A batch whose items are all valid: 200, one Kafka message per item, items byte-identical."""
    items = bodies("fault", 10, "batch-ok")
    reply = api.post("/v1/messages/fault:batch", batch(items))
    assert (reply.status, reply.json()) == (200, {"accepted": 10, "failed": 0})
    values = landed(kafka, [api.prefix + "fault"])
    assert ids(values) >= ids(items)
    assert set(items) <= set(values)


def test_batch_items_land_as_sent(api, kafka):
    """Items of a pretty-printed batch reach Kafka as the exact bytes the client wrote, not re-encoded."""
    items = [
        json.dumps({**orjson.loads(body), "_ingestload": {"id": f"pretty-{i}", "n": 1e2}}, indent=1).encode()
        for i, body in enumerate(bodies("alarm", 3, "pretty"))
    ]
    body = b"[\n" + b",\n".join(items) + b"\n]"
    reply = api.post("/v1/messages/alarm:batch", body)
    assert (reply.status, reply.json()) == (200, {"accepted": 3, "failed": 0})
    assert set(items) <= set(landed(kafka, [api.prefix + "alarm"]))


def test_batch_partial_failure_is_207(api, kafka):
    """Invalid items are refused by index with the reason; the valid ones land; status 207."""
    items = bodies("serviceModeChange", 6, "partial")
    items[1] = b'{"Header":{}}'
    items[4] = b"42"
    reply = api.post("/v1/messages/serviceModeChange:batch", batch(items))
    assert reply.status == 207
    body = reply.json()
    assert (body["accepted"], body["failed"]) == (4, 2)
    assert [(f["index"], f["status"], f["error"]) for f in body["failures"]] == [
        (1, 422, "schema_violation"),
        (4, 422, "schema_violation"),
    ]
    assert "missing field" in body["failures"][0]["detail"]
    assert "got int" in body["failures"][1]["detail"]
    found = ids(landed(kafka, [api.prefix + "serviceModeChange"]))
    assert {k for k in found if k.startswith("partial-")} == {f"partial-{i}" for i in (0, 2, 3, 5)}


def test_mixed_batch_routes_each_item_by_its_message_type(api, kafka):
    """POST /v1/messages:batch: items of several types, each lands on its own type's topic, as sent."""
    by_type = {t: bodies(t, 3, f"mixed-{t}") for t in ("alarm", "fault", "movementData")}
    items = [item for group in zip(*by_type.values(), strict=True) for item in group]  # interleaved
    reply = api.post("/v1/messages:batch", batch(items))
    assert (reply.status, reply.json()) == (200, {"accepted": 9, "failed": 0})
    for msg_type, sent in by_type.items():
        values = landed(kafka, [api.prefix + msg_type])
        assert set(sent) <= set(values), msg_type
        others = {i for t, group in by_type.items() if t != msg_type for i in group}
        assert not others & set(values), f"an item of another type landed on {msg_type}"


def test_mixed_batch_refuses_items_without_a_known_type_alone(api, kafka):
    """An item whose Header.MessageType is missing or unknown fails by index (422); the rest land: 207."""
    items = [*bodies("fault", 2, "mixed-bad"), b'{"Header":{"MessageType":"teleport"}}', b"[1]"]
    reply = api.post("/v1/messages:batch", batch(items))
    assert reply.status == 207
    body = reply.json()
    assert (body["accepted"], body["failed"]) == (2, 2)
    assert [(f["index"], f["status"], f["error"]) for f in body["failures"]] == [
        (2, 422, "unknown_message_type"),
        (3, 422, "unknown_message_type"),
    ]
    assert "'teleport'" in body["failures"][0]["detail"]
    assert ids(landed(kafka, [api.prefix + "fault"]))["mixed-bad-1"] == 1


def test_batch_with_no_valid_item_is_422(api):
    """When no item is acceptable the whole batch answers 422 with every failure listed."""
    reply = api.post("/v1/messages/alarm:batch", b'[{"a":1},{"b":2}]')
    assert reply.status == 422
    assert [f["index"] for f in reply.json()["failures"]] == [0, 1]


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status", "error", "detail"),
    [
        ("/v1/messages/alarm", b'{"Header": ', "application/json", 400, "invalid_json", "not valid JSON"),
        ("/v1/messages/alarm", b"{}", "text/plain", 415, "unsupported_media_type", "send application/json"),
        ("/v1/messages/alarm", b"{}", None, 415, "unsupported_media_type", "'(none)'"),
        (
            "/v1/messages/alarm",
            b"{}",
            "application/json",
            422,
            "schema_violation",
            "missing fields Header, Param",
        ),
        ("/v1/messages/alarm", b"[]", "application/json", 422, "schema_violation", "got an array"),
        (
            "/v1/messages/elevatorMusic",
            b"{}",
            "application/json",
            404,
            "unknown_message_type",
            "known types: alarm",
        ),
        ("/v1/messages/alarm:batch", b"{}", "application/json", 400, "not_an_array", "JSON array"),
        ("/v1/messages/alarm:batch", b"[]", "application/json", 400, "empty_batch", "at least one"),
        (
            "/v1/messages/alarm:batch",
            b"[" + b"{}," * 10 + b"{}]",
            "application/json",
            413,
            "too_many_items",
            "11",
        ),
        (
            "/v1/messages/alarm",
            b'{"x":"' + b"a" * 20000 + b'"}',
            "application/json",
            413,
            "body_too_large",
            "20000",
        ),
        ("/v2/whatever", b"{}", "application/json", 404, "not_found", "no such endpoint"),
    ],
)
def test_bad_requests(api, path, body, content_type, status, error, detail):
    """Each kind of bad input gets its status code and a problem+json body that names the problem."""
    reply = api.post(path, body, content_type)
    assert reply.status == status
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert (problem["status"], problem["error"]) == (status, error)
    assert detail in problem["detail"]


def test_vendor_json_content_type_is_accepted(api):
    """application/*+json with parameters counts as JSON."""
    reply = api.post(
        "/v1/messages/alarm", bodies("alarm", 1, "vnd")[0], "application/vnd.acme+json; charset=utf-8"
    )
    assert reply.status == 200


def test_wrong_method(api):
    """GET on a message endpoint answers 405 in the same problem format."""
    reply = api.get("/v1/messages/alarm")
    assert (reply.status, reply.json()["error"]) == (405, "method_not_allowed")


def test_health_and_readiness(api):
    """/healthz and /readyz answer 200 while Kafka is reachable, with the in-flight count."""
    assert api.get("/healthz").status == 200
    ready = api.get("/readyz")
    assert ready.status == 200
    assert ready.json()["ready"] is True
    assert ready.json()["in_flight"] == 0


def test_secrets_never_appear(api):
    """The secret Kafka property shows redacted in the log and nowhere in responses."""
    api.post("/v1/messages/alarm", b"{bad")
    seen = [api.get(p).body for p in ("/readyz", "/debug/faults", "/healthz")]
    assert all(SECRET.encode() not in body for body in seen)
    log = api.log()
    assert SECRET not in log
    assert "sasl.password=***" in log


def test_debug_faults_reports_counts(api):
    """/debug/faults shows the (inactive) plan and the worker's counters."""
    faults = orjson.loads(api.get("/debug/faults").body)
    assert faults["active"] is False
    assert faults["counts"]["dropped"] == 0
    assert faults["accepted"] >= 1


def test_several_workers(kafka, prefix):
    """--workers 2: two processes serve, each with its own producer; each logs its counts at shutdown."""
    with run_api(kafka, "--topic-prefix", prefix, "--workers", "2") as api:
        items = bodies("alarm", 30, "workers")
        assert [api.post("/v1/messages/alarm", item).status for item in items] == [200] * 30
        assert api.stop() == 0
        log = api.log()
    started = set(re.findall(r"worker (\d+) ready to serve", log))
    stopped = set(re.findall(r"worker (\d+) stopped: requests=", log))
    assert len(started) == 2
    assert stopped == started
    assert ids(landed(kafka, [prefix + "alarm"])) == {f"workers-{i}": 1 for i in range(30)}


def test_without_kafka_bootstrap_an_embedded_broker_is_started(tmp_path):
    """`ingestload api` with no Kafka named starts the embedded broker, serves, and stops both on SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGESTLOAD_")}
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ingestload.cli", "api", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    api = ServerProcess(process, "127.0.0.1", port, log)
    try:
        api.wait_until("/readyz", lambda r: r.status == 200, timeout=60)
        reply = api.post("/v1/messages/alarm", bodies("alarm", 1, "embedded")[0])
        assert reply.status == 200
        assert reply.json()["topic"] == "gov-alarm"
        assert api.stop() == 0
    finally:
        api.kill()
    text = log.read_text()
    bootstrap = re.search(r"embedded Kafka broker \(Tansu, memory storage\) at (\S+)", text)
    assert bootstrap, text
    with socket.socket() as s:  # the broker is gone: its port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(bootstrap.group(1).rsplit(":", 1)[1])))


def test_a_batch_whose_items_all_failed_differently_keeps_each_status(kafka):
    """Nothing accepted, but not for one reason (one item too large for Kafka: 413; one of no known
    type: 422): a 207 lists each item's own status — no single status stands for both."""
    prefix = unique_prefix("api")
    with run_api(kafka, "--topic-prefix", prefix, "--kafka-config", "message.max.bytes=2000") as server:
        large = bodies("alarm", 1, "x" * 3000)[0]
        reply = server.post("/v1/messages:batch", batch([large, b'{"Header":{"MessageType":"teleport"}}']))
    assert reply.status == 207, reply
    body = reply.json()
    assert (body["accepted"], body["failed"]) == (0, 2)
    assert [(f["index"], f["status"]) for f in body["failures"]] == [(0, 413), (1, 422)]
