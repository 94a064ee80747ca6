"""The Locust side of the last hop without a gateway: WS rows in bulk, the verdicts' combination, the
subscriber options, the subscriber shape, a drain that gave up, and publishing the fan-out verdict."""

import argparse
import json

import locust.stats
import orjson
import pytest
from locust import LoadTestShape
from locust.env import Environment

from ingestload.errors import ConfigError
from ingestload.fanout import protocol
from ingestload.fanout.expected import Expected
from ingestload.fanout.ledger import BROKEN, SubscriberLedger
from ingestload.fanout.verdict import judge
from ingestload.locust.fanout import GAVE_UP, FanoutRun
from ingestload.locust.publish import publish_run
from ingestload.locust.subscriber_shape import (
    SubscriberShape,
    check_classes,
    install_subscriber_shape,
    subscribers_at,
)
from ingestload.locust.ws_stats import ObservedLedger, WsStats
from ingestload.rate.profile import RateProfile
from ingestload.settings import Settings, namespace
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS, combine
from tests.unit.test_fanout_verdict import SENT_AT, envelope

TOPIC = "gov-alarm"


def local_environment() -> Environment:
    environment = Environment()
    environment.create_local_runner()
    return environment


def frame(offsets, latency_us=2500, with_envelope=True, topic=TOPIC):
    fragments = [
        protocol.message_fragment(
            topic, 0, o, 0, envelope() if with_envelope else None, orjson.dumps({"o": o}), True
        )
        for o in offsets
    ]
    return orjson.loads(protocol.messages(fragments)), SENT_AT + latency_us


def test_every_received_message_is_one_ws_request_with_its_fanout_latency():
    """Messages filed through an ObservedLedger appear in Locust's stats exactly as one WS request each:
    the count, the latency as response time, and no-envelope messages as requests without one."""
    environment = local_environment()
    stats = WsStats(environment)
    ledger = ObservedLedger(stats, "local-0", [TOPIC])
    ledger.feed(*frame(range(10), latency_us=2500))
    ledger.feed(*frame([3], latency_us=4000))  # a duplicate copy is received too: one more request
    ledger.feed(*frame([10, 11], with_envelope=False))
    stats.publish(1_700_000_000.5)
    entry = environment.stats.entries[(TOPIC, "WS")]
    assert entry.num_requests == 13
    assert entry.num_none_requests == 2
    assert entry.total_response_time == pytest.approx(10 * 2.5 + 4.0)
    assert entry.max_response_time == pytest.approx(4.0)
    assert environment.stats.total.num_requests == 13
    assert ledger.received_count() == 12
    assert ledger.duplicates[(TOPIC, 0)] == 1


def test_other_request_listeners_get_one_call_per_message_and_clock_skew_is_clamped():
    """A plugin's own request listener is called once per received message; a subscriber whose clock runs
    behind the producer's shows 0 ms, never a negative response time."""
    environment = local_environment()
    calls = []
    environment.events.request.add_listener(lambda **kw: calls.append(kw))
    stats = WsStats(environment)
    ledger = ObservedLedger(stats, "local-0", [TOPIC])
    ledger.feed(*frame([0, 1], latency_us=-3000))
    stats.publish()
    assert [(c["request_type"], c["name"], c["response_time"]) for c in calls] == [("WS", TOPIC, 0.0)] * 2
    assert environment.stats.entries[(TOPIC, "WS")].max_response_time == 0.0


def test_flush_publishes_only_when_due():
    """flush() waits for the publish interval within one second, and publishes when the second changes."""
    environment = local_environment()
    stats = WsStats(environment)
    ObservedLedger(stats, "a", [TOPIC]).feed(*frame([0]))
    stats.flush(1_700_000_000.10)
    stats.pending[TOPIC].append(1.0)
    stats.flush(1_700_000_000.11)  # 10 ms later, same second: not yet
    assert environment.stats.entries[(TOPIC, "WS")].num_requests == 1
    stats.flush(1_700_000_001.00)
    assert environment.stats.entries[(TOPIC, "WS")].num_requests == 2


@pytest.mark.parametrize(
    ("kafka", "fanout", "overall"),
    [
        (PASS, PASS, PASS),
        (PASS, FAIL, FAIL),
        (FAIL, PASS, FAIL),
        (PASS, INCONCLUSIVE, INCONCLUSIVE),
        (INCONCLUSIVE, PASS, INCONCLUSIVE),
        (INCONCLUSIVE, FAIL, FAIL),
        (FAIL, INCONCLUSIVE, FAIL),
        (None, PASS, PASS),
        (None, INCONCLUSIVE, INCONCLUSIVE),
    ],
)
def test_the_run_status_is_the_worse_of_both_verdicts(kafka, fanout, overall):
    """FAIL of either wins, then INCONCLUSIVE of either; PASS only when both passed (or only one ran)."""
    assert combine(kafka, fanout) == overall


def test_subscriber_options_parse_and_bad_ones_name_the_flag():
    """--ws-* and --max-fanout-* parse into settings; a bad value is one ConfigError naming the option."""
    s = Settings.from_options(
        namespace(
            ws_url="ws://gw:8765/v1/stream",
            ws_topics="gov-fault, gov-alarm,gov-alarm",
            ws_filter="Header.ControllerType=LCE, GCE",
            ws_reconnect_every="20s",
            max_missed="5",
            max_fanout_p99="250ms",
        ),
        environ={},
    ).fanout
    assert s.topics == ("gov-alarm", "gov-fault")
    assert s.filter is not None
    assert s.filter.to_json() == {"field": "Header.ControllerType", "in": ["GCE", "LCE"]}
    assert (s.reconnect_every, s.thresholds.max_missed, s.thresholds.max_p99_ms) == (20.0, 5, 250.0)
    bad = {
        "ws_url": ("http://gw:8765/", "--ws-url"),
        "ws_filter": ("Header.ControllerType", "--ws-filter"),
        "ws_topics": ("a b", "--ws-topics"),
        "ws_reconnect_every": ("0s", "--ws-reconnect-every"),
        "max_missed": ("-1", "--max-missed"),
        "max_fanout_out_of_order": ("x", "--max-fanout-out-of-order"),
    }
    for key, (value, flag) in bad.items():
        with pytest.raises(ConfigError, match=f"^{flag}: "):
            Settings.from_options(namespace(**{key: value}), environ={})
    with pytest.raises(ConfigError, match="give only one"):
        Settings.from_options(namespace(ws_subscriber_profile="a.yaml", rate_profile="b.yaml"), environ={})


def test_subscriber_options_read_their_environment_variables():
    """Each new option reads its INGESTLOAD_… variable when not given on the command line."""
    s = Settings.from_options(
        argparse.Namespace(), environ={"INGESTLOAD_MAX_MISSED": "7", "INGESTLOAD_WS_TOPICS": "gov-fault"}
    ).fanout
    assert (s.thresholds.max_missed, s.topics) == (7, ("gov-fault",))


class Producer:
    fixed_count = 2


class View:
    ingestload_role = "subscriber"
    fixed_count = 0


class FakeRunner:
    user_classes = (Producer, View)


def test_subscriber_shape_asks_for_producers_plus_the_profile_and_ends_with_it(tmp_path):
    """The shape asks for the producers' fixed count plus the profile's subscribers at the run time,
    and ends the run when the profile ends."""
    curve = RateProfile.from_data(
        {"stages": [{"kind": "ramp", "from": 0, "to": 100, "duration": 10}, {"kind": "hold", "duration": 5}]}
    )
    assert [subscribers_at(curve, t) for t in (0, 2.5, 9.999, 12)] == [0, 25, 100, 100]
    shape = SubscriberShape()
    shape.runner = FakeRunner()
    shape.curve = curve
    shape.get_run_time = lambda: 5.0
    assert shape.tick() == (2 + 50, 50.0)
    shape.get_run_time = lambda: 15.0
    assert shape.tick() is None
    assert isinstance(shape, LoadTestShape)


def test_subscriber_shape_checks_the_classes_and_installs_itself(tmp_path):
    """Producers without fixed_count, subscribers with one, or no subscriber class at all are refused
    with the fix; otherwise --ws-subscriber-profile installs the shape with the profile loaded."""

    class Loose:
        fixed_count = 0

    class Pinned:
        ingestload_role = "subscriber"
        fixed_count = 3

    with pytest.raises(ConfigError, match="give Loose a fixed_count"):
        check_classes([Loose, View])
    with pytest.raises(ConfigError, match="Pinned has fixed_count = 3"):
        check_classes([Producer, Pinned])
    with pytest.raises(ConfigError, match="no WebSocketSubscriberUser"):
        check_classes([Producer])
    profile = tmp_path / "subs.yaml"
    profile.write_text("stages:\n  - {kind: ramp, from: 0, to: 40, duration: 20s}\n")
    environment = argparse.Namespace(user_classes=[Producer, View], shape_class=None)
    shape = install_subscriber_shape(environment, FakeRunner(), str(profile))
    assert environment.shape_class is shape
    assert shape.curve is not None
    assert shape.curve.duration == 20.0


def test_a_subscriber_that_gave_up_draining_is_judged_up_to_its_last_progress():
    """A window whose drain timed out is broken with the reason said: misses the gateway vouched for are
    counted, the rest is unknown (INCONCLUSIVE, not a miss)."""
    ledger = SubscriberLedger("w-0", [TOPIC])
    ledger.confirmed("s1", {(TOPIC, 0): 0})
    ledger.feed(*frame(range(5)))
    ledger.progress({(TOPIC, 0): 5})
    ledger.gave_up(GAVE_UP)
    assert ledger.state == BROKEN
    offsets = {(TOPIC, 0): _bitmap(range(20))}
    expected = Expected({ledger.key: offsets}, {(TOPIC, 0): 0}, {(TOPIC, 0): 20})
    verdict = judge([ledger], expected)
    assert verdict.status == INCONCLUSIVE
    assert verdict.totals["missed"] == 0
    assert verdict.totals["expected"] == 5
    assert GAVE_UP in verdict.results[0].unknown[0]


def _bitmap(offsets):
    from pyroaring import BitMap64

    return BitMap64(offsets)


def published(tmp_path, kafka, fanout_status, exit_code_before=None):
    """Publish a fan-out verdict of ``fanout_status`` beside a Kafka verdict (or none); returns
    (exit code, the verdict document, the verdict file)."""
    environment = local_environment()
    environment.parsed_options = argparse.Namespace(csv_prefix=None)
    environment.process_exit_code = exit_code_before
    verdict_file = tmp_path / "verdict.json"
    settings = Settings.from_options(namespace(verdict_file=str(verdict_file)), environ={})
    run = FanoutRun(environment, environment.runner, "local", settings)
    run.run_id = "00000000000000aa"
    ledger = SubscriberLedger("local-0", [TOPIC])
    ledger.confirmed("s1", {(TOPIC, 0): 0})
    ledger.feed(*frame(range(4)))
    ledger.ended({(TOPIC, 0): 5 if fanout_status == FAIL else 4}, "requested")
    offsets = {(TOPIC, 0): _bitmap(range(5))}
    incomplete = ["a partition"] if fanout_status == INCONCLUSIVE else []
    verdict = judge([ledger], Expected({ledger.key: offsets}, {(TOPIC, 0): 0}, {(TOPIC, 0): 5}, incomplete))
    assert verdict.status == fanout_status
    kafka_document = None if kafka is None else {**kafka, "report": "VERDICT: …"}
    document = publish_run(environment, run.run_id, str(verdict_file), kafka_document, [run.hop(verdict)])
    return environment.process_exit_code, document, json.loads(verdict_file.read_text())


@pytest.mark.parametrize(
    ("kafka_status", "fanout_status", "before", "code"),
    [
        ("PASS", PASS, 0, 0),
        ("PASS", FAIL, 0, 3),
        ("FAIL", INCONCLUSIVE, 3, 3),
        ("INCONCLUSIVE", FAIL, 4, 3),
        ("PASS", INCONCLUSIVE, 0, 4),
        ("PASS", PASS, 5, 5),  # the rate guard's code stays when both passed
        ("PASS", FAIL, 5, 3),
    ],
)
def test_publishing_sets_one_exit_code_for_both_verdicts_and_extends_the_verdict_file(
    tmp_path, kafka_status, fanout_status, before, code
):
    """The exit code covers both verdicts (FAIL over INCONCLUSIVE over the rate guard's 5 over PASS);
    the verdict file keeps the Kafka verdict and gains fanout and overall sections."""
    kafka = {"status": kafka_status, "exit_code": {"PASS": 0, "FAIL": 3, "INCONCLUSIVE": 4}[kafka_status]}
    kafka["reasons"] = [] if kafka_status == "PASS" else ["something"]
    exit_code, document, on_disk = published(tmp_path, kafka, fanout_status, before)
    assert exit_code == code
    assert on_disk["status"] == kafka_status
    assert on_disk["report"] == "VERDICT: …"
    assert on_disk["fanout"]["status"] == fanout_status
    assert on_disk["fanout"]["report"].startswith(f"FANOUT VERDICT: {fanout_status}")
    assert on_disk["overall"] == document["overall"]
    assert on_disk["overall"]["status"] == combine(kafka_status, fanout_status)


def test_publishing_without_a_kafka_verdict_writes_the_fanout_one_alone(tmp_path):
    """Subscribers only (no producers): the fan-out verdict decides the exit code and the file alone."""
    exit_code, document, on_disk = published(tmp_path, None, FAIL)
    assert exit_code == 3
    assert on_disk["status"] == on_disk["overall"]["status"] == on_disk["fanout"]["status"] == FAIL
    assert on_disk["fanout"]["totals"]["missed"] == 1
    assert document["run_id"] == "00000000000000aa"


def test_ws_failures_are_added_to_the_ws_rows():
    """Missed and duplicated deliveries per topic become failures of the WS rows and Locust errors."""
    environment = local_environment()
    settings = Settings.from_options(namespace(), environ={})
    run = FanoutRun(environment, environment.runner, "local", settings)
    ledger = SubscriberLedger("local-0", [TOPIC])
    ledger.confirmed("s1", {(TOPIC, 0): 0})
    ledger.feed(*frame([0, 1, 1, 3]))
    ledger.ended({(TOPIC, 0): 4}, "requested")
    verdict = judge(
        [ledger], Expected({ledger.key: {(TOPIC, 0): _bitmap(range(4))}}, {(TOPIC, 0): 0}, {(TOPIC, 0): 4})
    )
    run._add_failures(verdict)
    entry = environment.runner.stats.entries[(TOPIC, "WS")]
    assert entry.num_failures == 2  # one missed, one duplicated
    errors = {e.error: e.occurrences for e in environment.runner.stats.errors.values()}
    assert errors == {"missed": 1, "duplicated": 1}
    assert locust.stats.StatsError.create_key("WS", TOPIC, "missed") in environment.runner.stats.errors
