"""AckStats: acknowledgements folded into Locust's stats must equal one request event each."""

import locust.stats
import pytest
from confluent_kafka import Message
from locust.env import Environment

from ingestload.locust.kafka_stats import PUBLISH_INTERVAL, AckStats, bucket_counts, split_listeners

NOW = 1_700_000_000.25
# Below 100 ms, ties and the 100 / 1,000 / 10,000 ms bucket edges, and no latency at all.
LATENCIES = [0.0004, 0.0025, 0.0035, 0.0499, 0.0995, 0.1, 0.1449, 0.145, 0.9994, 1.5, 12.34, 0.02, None]


def messages() -> list[Message]:
    topics = ["gov-alarm", "gov-fault", "gov-movementData"]
    made = []
    for i, latency in enumerate(LATENCIES * 7):
        timing = {} if latency is None else {"latency": latency}  # Message() has no latency by default
        made.append(Message(topic=topics[i % 3], value=b"x" * (100 + i), **timing))
    return made


def fire_each(environment: Environment, msgs: list[Message]) -> None:
    for msg in msgs:
        latency = msg.latency()
        environment.events.request.fire(
            request_type="KAFKA",
            name=msg.topic(),
            response_time=latency * 1000.0 if latency is not None else 0.0,
            response_length=len(msg),
            exception=None,
            context={},
        )


def fold(stats: AckStats, msgs: list[Message], now: float) -> None:
    for msg in msgs:
        stats.pending[msg.topic()].append(msg)
    stats.publish(now)


def local_environment() -> Environment:
    environment = Environment()
    environment.create_local_runner()
    return environment


def comparable(entry: locust.stats.StatsEntry) -> dict:
    return {
        "num_requests": entry.num_requests,
        "num_failures": entry.num_failures,
        "min_response_time": entry.min_response_time,
        "max_response_time": entry.max_response_time,
        "response_times": dict(entry.response_times),
        "total_content_length": entry.total_content_length,
        "num_reqs_per_sec": dict(entry.num_reqs_per_sec),
        "last_request_timestamp": entry.last_request_timestamp,
    }


def test_folded_stats_equal_one_request_event_per_message(monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    msgs = messages()
    by_event, folded = local_environment(), local_environment()
    fire_each(by_event, msgs)
    assert split_listeners(folded.events.request) == (1, [])
    fold(AckStats(folded, "KAFKA"), msgs, NOW)

    expected, got = by_event.stats, folded.stats
    assert sorted(got.entries) == sorted(expected.entries)
    for key, entry in expected.entries.items():
        assert comparable(got.entries[key]) == comparable(entry), key
        assert got.entries[key].total_response_time == pytest.approx(entry.total_response_time)
    assert comparable(got.total) == comparable(expected.total)
    assert got.total.total_response_time == pytest.approx(expected.total.total_response_time)
    assert got.total.get_response_time_percentile(0.99) == expected.total.get_response_time_percentile(0.99)


def test_requests_land_in_the_second_they_were_published():
    environment = local_environment()
    stats = AckStats(environment, "KAFKA")
    msgs = messages()
    fold(stats, msgs[:10], NOW)
    fold(stats, msgs[10:25], NOW + 1.0)
    assert dict(environment.stats.total.num_reqs_per_sec) == {int(NOW): 10, int(NOW) + 1: 15}
    assert environment.stats.total.num_requests == 25


def test_flush_waits_for_the_interval_or_a_new_second():
    environment = local_environment()
    stats = AckStats(environment, "KAFKA")
    msgs = messages()
    fold(stats, msgs[:1], NOW)
    stats.pending[msgs[1].topic()].append(msgs[1])
    stats.flush(NOW + PUBLISH_INTERVAL / 2)  # too soon, same second: held
    assert environment.stats.total.num_requests == 1
    stats.flush(NOW + PUBLISH_INTERVAL * 1.01)
    assert environment.stats.total.num_requests == 2
    stats.pending[msgs[2].topic()].append(msgs[2])
    stats.flush(int(NOW) + 1.0)  # 0.75 s later anyway, but a new second publishes at once
    assert environment.stats.total.num_requests == 3


def test_any_other_request_listener_gets_every_message_while_locust_stats_stay_exact(monkeypatch):
    monkeypatch.setattr("time.time", lambda: NOW)
    msgs = messages()
    by_event = local_environment()
    fire_each(by_event, msgs)

    environment = local_environment()
    seen: list[dict] = []
    environment.events.request.add_listener(lambda **kw: seen.append(kw))
    own, others = split_listeners(environment.events.request)
    assert (own, len(others)) == (1, 1)
    fold(AckStats(environment, "KAFKA"), msgs, NOW)
    assert len(seen) == len(msgs)
    assert sorted(e["name"] for e in seen) == sorted(m.topic() for m in msgs)
    assert sum(e["response_length"] for e in seen) == sum(len(m) for m in msgs)
    assert all(e["request_type"] == "KAFKA" and e["exception"] is None for e in seen)
    assert comparable(environment.stats.total) == comparable(by_event.stats.total)  # counted once


def test_a_listener_that_raises_is_logged_and_the_others_still_run(caplog):
    environment = local_environment()
    seen: list[str] = []

    def broken(**_: object) -> None:
        raise ValueError("exporter down")

    environment.events.request.add_listener(broken)
    environment.events.request.add_listener(lambda name, **_: seen.append(name))
    msgs = messages()[:4]
    fold(AckStats(environment, "KAFKA"), msgs, NOW)
    assert len(seen) == 4
    assert environment.stats.total.num_requests == 4
    assert "exporter down" in caplog.text


def test_without_a_runner_nothing_is_folded_into_stats():
    environment = Environment()  # no runner: no Locust stats listener
    seen: list[dict] = []
    environment.events.request.add_listener(lambda **kw: seen.append(kw))
    fold(AckStats(environment, "KAFKA"), messages()[:5], NOW)
    assert len(seen) == 5
    assert environment.stats.total.num_requests == 0


@pytest.mark.parametrize("times", [[0.4, 2.5, 99.4, 99.5], [0.4, 100.0, 145.0, 999.5, 1234.0, 56789.0]])
def test_bucket_counts_match_locusts_bucketing(times):
    expected: dict[int, int] = {}
    for t in times:
        key = locust.stats.bucket_response_time(t)
        expected[key] = expected.get(key, 0) + 1
    assert dict(bucket_counts(times)) == expected


def test_a_replaced_bucketing_function_is_honoured(monkeypatch):
    monkeypatch.setattr(locust.stats, "bucket_response_time", lambda t: int(t) // 10 * 10)
    assert dict(bucket_counts([1.0, 9.9, 12.0, 150.0])) == {0: 2, 10: 1, 150: 1}
