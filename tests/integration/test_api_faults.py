"""Fault injection in the reference ingest API: each switch has exactly the predicted effect in Kafka."""

import time

import pytest

from ingestload.api.faults import FaultPlan
from ingestload.api.testing import run_api

from .api_helpers import batch, bodies, ids, landed

pytestmark = pytest.mark.integration


def send_in_order(api, msg_type: str, tag: str) -> list[str]:
    """40 single requests then 3 batches of 20, one at a time: 100 messages in a known order."""
    items = bodies(msg_type, 100, tag)
    for item in items[:40]:
        assert api.post(f"/v1/messages/{msg_type}", item).status == 200
    for start in (40, 60, 80):
        reply = api.post(f"/v1/messages/{msg_type}:batch", batch(items[start : start + 20]))
        assert reply.json() == {"accepted": 20, "failed": 0}
    return [f"{tag}-{i}" for i in range(100)]


def test_drop_answers_2xx_and_never_produces(kafka, prefix):
    """--fault-drop 0.3 --fault-seed 7: exactly the messages the seed picks are missing; counts match."""
    expected = FaultPlan(drop=0.3, seed=7).preview(100).dropped
    with run_api(kafka, "--topic-prefix", prefix, "--fault-drop", "0.3", "--fault-seed", "7") as api:
        sent = send_in_order(api, "alarm", "drop")
        faults = api.get("/debug/faults").json()
    found = ids(landed(kafka, [prefix + "alarm"]))
    missing = sorted(i for i, key in enumerate(sent) if key not in found)
    assert missing == expected
    assert faults["counts"]["dropped"] == len(expected) > 0
    assert faults["counts"]["by_topic"] == {prefix + "alarm": {"dropped": len(expected)}}
    assert faults["plan"] == {"drop": 0.3, "duplicate": 0.0, "ack_before_delivery": 0.0, "seed": 7}
    assert max(found.values()) == 1


def test_duplicate_produces_twice(kafka, prefix):
    """--fault-duplicate 0.25 --fault-seed 3: exactly the picked messages are in Kafka twice, others once."""
    expected = FaultPlan(duplicate=0.25, seed=3).preview(100).duplicated
    with run_api(kafka, "--topic-prefix", prefix, "--fault-duplicate", "0.25", "--fault-seed", "3") as api:
        sent = send_in_order(api, "fault", "dup")
        api.wait_until("/debug/faults", lambda r: r.json()["in_flight"] == 0)
        faults = api.get("/debug/faults").json()
    found = ids(landed(kafka, [prefix + "fault"]))
    assert sorted(i for i, key in enumerate(sent) if found[key] == 2) == expected
    assert all(found[key] in (1, 2) for key in sent)
    assert faults["counts"]["duplicated"] == len(expected) > 0
    assert faults["counts"]["duplicate_failed"] == 0


def test_ack_before_delivery_loses_what_a_crash_catches(kafka, prefix):
    """--fault-ack-before-delivery 1: 200 before Kafka has the message; a crash then loses all of them."""
    with run_api(
        kafka,
        "--topic-prefix",
        prefix,
        "--fault-ack-before-delivery",
        "1",
        "--request-timeout",
        "120",
        # Messages sit in the client for a minute: nothing can have reached Kafka when we answer.
        "--kafka-config",
        "linger.ms=60000",
    ) as api:
        items = bodies("movementData", 10, "early")
        replies = [api.post("/v1/messages/movementData", item) for item in items[:6]]
        replies.append(api.post("/v1/messages/movementData:batch", batch(items[6:])))
        assert [r.status for r in replies] == [200] * 7
        faults = api.get("/debug/faults").json()
        assert faults["counts"]["acked_before_delivery"] == 10
        assert faults["in_flight"] == 10  # answered, yet not delivered
        api.kill()  # a crash: the client's queue dies with the process
    time.sleep(0.5)
    assert ids(landed(kafka, [prefix + "movementData"])) == {}


def test_ack_before_delivery_still_delivers_on_a_graceful_stop(kafka, prefix):
    """With the naive switch on, SIGTERM still flushes: the early-acknowledged messages land."""
    with run_api(
        kafka,
        "--topic-prefix",
        prefix,
        "--fault-ack-before-delivery",
        "1",
        "--kafka-config",
        "linger.ms=3000",
    ) as api:
        items = bodies("alarm", 5, "flush")
        assert [api.post("/v1/messages/alarm", item).status for item in items] == [200] * 5
        assert api.stop() == 0
        assert "acked_before_delivery=5 lost_after_early_ack=0" in api.log()
    assert ids(landed(kafka, [prefix + "alarm"])) == {f"flush-{i}": 1 for i in range(5)}
