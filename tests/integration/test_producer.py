"""KafkaProducerClient against a real broker: envelopes, topics, request events, backpressure."""

import time

import gevent
import orjson
import pytest
from locust.env import Environment

from ingestload.kafka.admin import ensure_topics, high_watermarks
from ingestload.kafka.producer import KafkaProducerClient
from ingestload.locust.kafka_stats import AckStats
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.settings import Settings, namespace
from ingestload.testing import read_run

pytestmark = pytest.mark.integration

RUN = "5f3a9c0b12d4e6f7"


@pytest.fixture(autouse=True)
def _close_clients(monkeypatch):
    """Release every client a test made, so no producer outlives its test."""
    made: list[KafkaProducerClient] = []
    original = KafkaProducerClient.__init__

    def tracking_init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(KafkaProducerClient, "__init__", tracking_init)
    yield
    for client in made:
        client.close()


def make_client(kafka: str, prefix: str, **config: str) -> tuple[KafkaProducerClient, list[dict]]:
    settings = Settings.from_options(
        namespace(
            kafka_bootstrap=kafka, kafka_config=[f"{k.replace('_', '.')}={v}" for k, v in config.items()]
        ),
        environ={},
    )
    catalogue = Catalogue.load()
    ensure_topics(settings.kafka.admin_config(), catalogue.topics(prefix), partitions=3)
    environment = Environment()
    events: list[dict] = []
    environment.events.request.add_listener(lambda **kw: events.append(kw))
    client = KafkaProducerClient(
        environment,
        settings.kafka.producer_config(),
        MessageFactory(catalogue, topic_prefix=prefix),
        ack_sink=lambda kind: AckStats(environment, kind),
    )
    return client, events


def send_all(client: KafkaProducerClient, n: int) -> None:
    sent = 0
    deadline = time.monotonic() + 60
    while sent < n and time.monotonic() < deadline:
        sent += client.send(min(500, n - sent))
        gevent.sleep(0)
    assert sent == n
    assert client.drain(30) == 0


def test_messages_land_on_the_right_topics_with_valid_envelopes(kafka, prefix):
    """Each message is on prefix+MessageType with this run's envelope, a good checksum, contiguous seqs."""
    client, events = make_client(kafka, prefix)
    client.warm_up()
    client.begin_run(RUN, producer_id=42)
    n = 20_000
    send_all(client, n)

    run = read_run({"bootstrap.servers": kafka}, Catalogue.load().topics(prefix), RUN)
    assert len(run.messages) == n
    assert run.check_contiguous() == []
    assert run.corrupted() == []
    assert {m.envelope.producer_id for m in run.messages} == {42}
    for m in run.messages[:2000]:
        assert m.topic == prefix + orjson.loads(m.value)["Header"]["MessageType"]
    before_send = time.time() - 120
    assert all(before_send * 1e6 < m.envelope.sent_at_us < time.time() * 1e6 for m in run.messages)

    assert client.counters() | {"in_flight": 0} == {
        "sent": n,
        "acked": n,
        "failed": 0,
        "in_flight": 0,
        "backpressure": 0,
        "undelivered": 0,
    }
    # One Locust request event per acknowledged message, named after its topic.
    assert len(events) == n
    assert {e["request_type"] for e in events} == {"KAFKA"}
    assert {e["name"] for e in events} == set(run.per_topic())
    assert all(
        e["exception"] is None and e["response_time"] >= 0 and e["response_length"] > 100 for e in events
    )
    per_topic = {t: sum(1 for e in events if e["name"] == t) for t in run.per_topic()}
    assert per_topic == run.per_topic()


def test_acks_reach_locust_stats_per_message_when_only_locust_listens(kafka, prefix):
    """With a real runner and no other listener the acks are folded in bulk: same counts per topic."""
    settings = Settings.from_options(namespace(kafka_bootstrap=kafka), environ={})
    catalogue = Catalogue.load()
    ensure_topics(settings.kafka.admin_config(), catalogue.topics(prefix), partitions=3)
    environment = Environment()
    environment.create_local_runner()
    client = KafkaProducerClient(
        environment,
        settings.kafka.producer_config(),
        MessageFactory(catalogue, topic_prefix=prefix),
        ack_sink=lambda kind: AckStats(environment, kind),
    )
    client.warm_up()
    client.begin_run(RUN, producer_id=43)
    n = 20_000
    send_all(client, n)

    run = read_run({"bootstrap.servers": kafka}, catalogue.topics(prefix), RUN)
    stats = environment.stats
    per_topic = {name: e.num_requests for (name, method), e in stats.entries.items() if method == "KAFKA"}
    assert per_topic == run.per_topic()
    assert stats.total.num_requests == n == client.acked
    assert stats.total.num_failures == 0
    assert sum(stats.total.response_times.values()) == n
    assert 0 <= stats.total.min_response_time <= stats.total.max_response_time < 30_000
    assert stats.total.total_content_length == sum(len(m.value) for m in run.messages)


def test_backpressure_is_counted_and_loses_nothing(kafka, prefix):
    """With a tiny local queue the client reports backpressure, and every message still arrives once."""
    client, _ = make_client(kafka, prefix, queue_buffering_max_messages="50")
    client.begin_run(RUN, producer_id=7)
    n = 3000
    send_all(client, n)
    assert client.backpressure > 0
    assert client.acked == n
    run = read_run({"bootstrap.servers": kafka}, Catalogue.load().topics(prefix), RUN)
    assert len(run.messages) == n
    assert run.check_contiguous() == []


def test_undeliverable_messages_fail_with_a_kafka_error(prefix):
    """Messages to a broker that never answers fail after message.timeout.ms, as failed request events."""
    settings = Settings.from_options(
        namespace(kafka_bootstrap="127.0.0.1:1", kafka_config=["message.timeout.ms=500"]), environ={}
    )
    environment = Environment()
    events: list[dict] = []
    environment.events.request.add_listener(lambda **kw: events.append(kw))
    client = KafkaProducerClient(
        environment,
        settings.kafka.producer_config(),
        MessageFactory(Catalogue.load(), topic_prefix=prefix),
        ack_sink=lambda kind: AckStats(environment, kind),
    )
    client.begin_run(RUN)
    assert client.send(10) == 10
    assert client.drain(10) == 0
    assert client.failed == 10
    assert client.acked == 0
    assert len(events) == 10
    assert all("_MSG_TIMED_OUT" in str(e["exception"]) for e in events)


def test_start_offsets_never_exceed_what_is_there(kafka, prefix):
    """high_watermarks() read before a run is ≤ the true end, so a read from it misses nothing."""
    client, _ = make_client(kafka, prefix)
    client.begin_run(RUN, producer_id=1)
    send_all(client, 1000)
    topics = Catalogue.load().topics(prefix)
    start = high_watermarks({"bootstrap.servers": kafka}, topics)
    client.begin_run("0123456789abcdef", producer_id=2)
    send_all(client, 1000)
    second = read_run({"bootstrap.servers": kafka}, topics, "0123456789abcdef", start)
    assert len(second.messages) == 1000
