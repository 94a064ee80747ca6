"""VerificationRun against a real broker: exact counts under injected faults, a broker that loses its data."""

import time

import gevent
import pytest
from locust.env import Environment
from pyroaring import BitMap

from ingestload.kafka.admin import ensure_topics, high_watermarks
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.kafka.producer import KafkaProducerClient
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.settings import Settings, namespace
from ingestload.testing import FaultyProducer, read_run
from ingestload.verify.run import VerificationRun

pytestmark = pytest.mark.integration

RUN = "feedfacecafe0042"


class Producing:
    """A real producer client on the built-in catalogue, optionally with injected faults."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        producer_id: int = 1,
        kafka_config: tuple[str, ...] = (),
        **faults: set[int],
    ) -> None:
        self.settings = Settings.from_options(
            namespace(kafka_bootstrap=bootstrap, kafka_config=list(kafka_config)), environ={}
        )
        self.topics = Catalogue.load().topics(prefix)
        ensure_topics(self.settings.admin_config(), self.topics, partitions=3)
        factory = MessageFactory(Catalogue.load(), topic_prefix=prefix)
        self.client = KafkaProducerClient(Environment(), self.settings.producer_config(), factory)
        if faults:
            self.client.producer = FaultyProducer(self.client.producer, **faults)
        self.client.begin_run(RUN, producer_id=producer_id)

    def send(self, n: int) -> None:
        """Send n messages and wait until each is acknowledged (the run goes on)."""
        sent = 0
        deadline = time.monotonic() + 60
        while sent < n and time.monotonic() < deadline:
            sent += self.client.send(min(500, n - sent))
            gevent.sleep(0)
        while self.client.in_flight and time.monotonic() < deadline:
            self.client.poll()
            gevent.sleep(0.01)
        assert sent == n, f"only {sent} of {n} sent"

    def ledger(self) -> AckLedger:
        """End the run (drain) and return its ledger."""
        self.client.drain(30)
        return AckLedger([self.client.ledger()])

    def verification(self, start=None) -> VerificationRun:
        return VerificationRun(self.settings.consumer_config(), self.topics, RUN, start=start)

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def producing(kafka, prefix):
    made = []

    def make(**kw):
        made.append(Producing(kafka, prefix, **kw))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_clean_run_passes_with_latency(producing):
    """Every acknowledged message seen once: PASS, with end-to-end latency per topic."""
    p = producing()
    run = p.verification()
    p.send(5000)
    verdict = run.finish(p.ledger(), drain_timeout=20)
    assert (verdict.status, verdict.acked, verdict.seen, verdict.lost) == ("PASS", 5000, 5000, 0)
    assert set(verdict.latency_ms) == set(p.topics)
    assert sum(int(s["count"]) for s in verdict.latency_ms.values()) == 5000
    assert sum(verdict.seen_by_topic.values()) == 5000


def test_injected_faults_are_counted_exactly(producing):
    """Lost, duplicated, corrupted and failed sends come out as exactly what was injected, named by topic."""
    p = producing(lose={5, 17, 4000}, duplicate={30, 31}, corrupt={40}, fail={50, 51, 52})
    run = p.verification()
    p.send(5000)
    verdict = run.finish(p.ledger(), drain_timeout=20)
    assert verdict.status == "FAIL"
    assert (verdict.lost, verdict.duplicated, verdict.corrupted, verdict.failed) == (3, 2, 1, 3)
    assert verdict.acked == 5000 - 3
    assert sorted(i.seq for i in verdict.lost_samples) == [5, 17, 4000]
    factory = MessageFactory(Catalogue.load(), topic_prefix=p.topics[0].rsplit("alarm", 1)[0])
    assert {i.seq: i.topic for i in verdict.lost_samples} == {s: factory.topic_at(s) for s in (5, 17, 4000)}
    assert [i.seq for i in verdict.corrupted_samples] == [40]
    assert sorted(i.seq for i in verdict.duplicated_samples) == [30, 31]


def test_later_verification_from_start_offsets(producing):
    """Verifying after the fact from recorded start offsets gives the same verdict."""
    p = producing(lose={9})
    start = high_watermarks(p.settings.admin_config(), p.topics)
    p.send(2000)
    run = p.verification(start=start)
    run.record_latency = False
    verdict = run.finish(p.ledger(), drain_timeout=20)
    assert (verdict.status, verdict.lost, verdict.seen) == ("FAIL", 1, 1999)
    assert verdict.latency_ms == {}


def test_verifier_that_cannot_reach_the_end_is_inconclusive(prefix):
    """Acknowledged messages the verifier cannot read before the drain window ends: INCONCLUSIVE, not lost."""
    with EmbeddedBroker() as broker:
        settings = Settings.from_options(namespace(kafka_bootstrap=broker.bootstrap), environ={})
        topics = Catalogue.load().topics(prefix)
        ensure_topics(settings.admin_config(), topics, partitions=3)
        run = VerificationRun(settings.consumer_config(), topics, RUN)
        broker.kill()
        ledger = AckLedger([ProducerLedger(1, sent=1000, acked_count=1000)])
        verdict = run.finish(ledger, drain_timeout=3)
    assert (verdict.status, verdict.exit_code, verdict.lost, verdict.unseen) == ("INCONCLUSIVE", 4, 0, 1000)


def test_broker_that_loses_its_log_is_caught_exactly(prefix):
    """A broker restart (memory storage) loses what came before: FAIL with exactly that many lost."""
    with EmbeddedBroker() as broker:
        # The producer cannot deliver to the restarted broker (it forgot the idempotent
        # producer's state): a short message timeout resolves those sends as unknown sooner.
        p = Producing(broker.bootstrap, prefix, kafka_config=("message.timeout.ms=5000",))
        try:
            run = p.verification()
            p.send(3000)
            for _ in range(20):  # let the verifier read them all before the data disappears
                run.poll_once(0.1)
            assert run.verifier.seen_records == 3000
            broker.restart()
            ensure_topics(p.settings.admin_config(), p.topics, partitions=3)
            time.sleep(1)
            p.send(2000)
            ledger = p.ledger()
            assert ledger.complete  # every send resolved: acked before, timed out (unknown) after
            verdict = run.finish(ledger, drain_timeout=30)
            final = read_run(p.settings.admin_config(), p.topics, RUN)
            acked = ledger.producers[1].acked()
            expected_lost = len(acked - BitMap(m.envelope.seq for m in final.messages))
            assert expected_lost >= 3000  # at least everything acknowledged before the restart
            assert (verdict.status, verdict.lost) == ("FAIL", expected_lost)
        finally:
            p.close()
