"""Readback against a real broker: exact counts under injected faults, a broker that loses its data."""

import time

import gevent
import pytest
from confluent_kafka import Producer
from locust.env import Environment

from ingestload.kafka.admin import ensure_topics, high_watermarks
from ingestload.kafka.broker import EmbeddedBroker, free_port
from ingestload.kafka.producer import KafkaProducerClient
from ingestload.locust.kafka_stats import AckStats
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.settings import Settings, namespace
from ingestload.testing import FaultyProducer
from ingestload.verify.readback import Readback
from tests.bouncer import bouncer
from tests.oracle import read_copies
from tests.replay import replay_later

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
        absent: tuple[str, ...] = (),
        misroute_to: str | None = None,
        **faults: set[int],
    ) -> None:
        self.settings = Settings.from_options(
            namespace(kafka_bootstrap=bootstrap, kafka_config=list(kafka_config)), environ={}
        )
        self.topics = Catalogue.load().topics(prefix)
        present = [t for t in self.topics if t not in absent]  # the others appear with their first message
        ensure_topics(self.settings.kafka.admin_config(), present, partitions=3)
        factory = MessageFactory(Catalogue.load(), topic_prefix=prefix)
        environment = Environment()
        self.client = KafkaProducerClient(
            environment,
            self.settings.kafka.producer_config(),
            factory,
            ack_sink=lambda kind: AckStats(environment, kind),
        )
        if faults or misroute_to:
            self.client.producer = FaultyProducer(
                self.client.producer, topics=self.topics, misroute_to=misroute_to, **faults
            )
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

    def read_all(self, run: Readback, expected: int) -> None:
        """Let the live verifier read ``expected`` records of the run (it goes on reading after)."""
        deadline = time.monotonic() + 30
        while run.verifier.seen_records < expected and time.monotonic() < deadline:
            run.poll_once(0.1)
        assert run.verifier.seen_records == expected

    def verification(self, start=None) -> Readback:
        return Readback(self.settings.kafka.consumer_config(), self.topics, RUN, start=start)

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
    start = high_watermarks(p.settings.kafka.admin_config(), p.topics)
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
        ensure_topics(settings.kafka.admin_config(), topics, partitions=3)
        run = Readback(settings.kafka.consumer_config(), topics, RUN)
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
            ensure_topics(p.settings.kafka.admin_config(), p.topics, partitions=3)
            time.sleep(1)
            p.send(2000)
            ledger = p.ledger()
            assert ledger.complete  # every send resolved: acked before, timed out (unknown) after
            verdict = run.finish(ledger, drain_timeout=30)
            in_kafka = {c.seq for c in read_copies(broker.bootstrap, p.topics, RUN)}
            acked = set(ledger.producers[1].acked())
            expected_lost = len(acked - in_kafka)
            assert acked >= set(range(3000))  # everything acknowledged before the restart …
            assert not in_kafka & set(range(3000))  # … is gone with the broker's memory
            assert (verdict.status, verdict.lost) == ("FAIL", expected_lost)
        finally:
            p.close()


def prefill(bootstrap: str, topics: list[str], per_topic: int = 60) -> None:
    """Records of another run on every topic, so that the run's start offsets are above 0."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for topic in topics:
        for i in range(per_topic):
            producer.produce(topic, b'{"other":%d}' % i, partition=i % 3)
    assert producer.flush(30) == 0


def test_a_topic_that_appears_mid_run_is_read_from_its_beginning(producing, prefix):
    """A topic of the run that does not exist when the verifier starts (the broker creates it with the
    first message sent to it) is picked up and read whole: its messages are seen, not lost, and a
    copy misrouted into it is counted."""
    newcomer = prefix + "fault"
    p = producing(absent=(newcomer,), misroute={10, 11}, misroute_to=newcomer)
    run = p.verification()
    assert newcomer not in {t for t, _ in run.assigned}
    p.send(3000)
    verdict = run.finish(p.ledger(), drain_timeout=30)
    copies = read_copies(p.settings.kafka.address, p.topics, RUN)
    on_newcomer = {(c.seq, c.misrouted) for c in copies if c.topic == newcomer}
    assert len(on_newcomer) > 2  # messages meant for it, and the two misrouted into it
    assert (verdict.status, verdict.acked, verdict.seen, verdict.lost) == ("FAIL", 3000, 3000, 0)
    assert (verdict.misrouted, verdict.duplicated) == (2, 0)
    assert verdict.seen_by_topic[newcomer] == len(on_newcomer)
    assert {(m.seq, m.topic) for m in verdict.misrouted_samples} == {(10, newcomer), (11, newcomer)}


def test_copies_that_land_after_the_ledger_count_in_the_verdict(producing, tmp_path):
    """Late copies (a pipeline's delayed retry) that land seconds after the final ledger are read: the
    verifier does not stop once every acknowledged message was seen."""
    p = producing()
    run = p.verification()
    p.send(2000)
    copies = [c for c in read_copies(p.settings.kafka.address, p.topics, RUN) if c.seq in (5, 6, 7)]
    ledger = p.ledger()
    p.read_all(run, 2000)  # every acknowledged message is seen before the copies come
    late = replay_later(p.settings.kafka.address, copies, tmp_path, delay=1.5, corrupt={7})
    verdict = run.finish(ledger, drain_timeout=30, late_grace=4.0)
    late.wait(30)
    assert late.returncode == 0
    assert (verdict.status, verdict.duplicated, verdict.corrupted, verdict.lost) == ("FAIL", 3, 1, 0)


def test_a_reread_that_fails_is_inconclusive_never_lost(prefix, monkeypatch):
    """When a replaced log cannot be read again, what it held is unseen and the verdict INCONCLUSIVE,
    not FAIL with invented losses."""
    from ingestload.errors import IngestloadError

    def failing(*args, **kwargs):
        raise IngestloadError("reading back stalled for 10s (injected)")
        yield

    with EmbeddedBroker() as broker:
        p = Producing(broker.bootstrap, prefix, kafka_config=("message.timeout.ms=3000",))
        try:
            run = p.verification()
            p.send(2000)
            p.read_all(run, 2000)
            broker.restart()  # the log is gone: the partitions are replaced under the verifier
            ensure_topics(p.settings.kafka.admin_config(), p.topics, partitions=3)
            ledger = p.ledger()
            monkeypatch.setattr("ingestload.verify.readback.read_partitions", failing)
            verdict = run.finish(ledger, drain_timeout=20, late_grace=1.0)
        finally:
            p.close()
    assert (verdict.status, verdict.lost) == ("INCONCLUSIVE", 0)
    assert verdict.unseen > 0
    assert any("could not read" in r and "again" in r for r in verdict.reasons), verdict.reasons


class SkippingConsumer:
    """The live verifier's consumer, made to skip records: ``consume`` leaves out the first
    ``skip`` records it gets (what a consumer that jumped ahead would do)."""

    def __init__(self, consumer, skip: int) -> None:
        self._consumer, self.skip = consumer, skip
        self.skipped: list[tuple[str, int, int]] = []

    def consume(self, *args, **kwargs):
        kept = []
        for message in self._consumer.consume(*args, **kwargs):
            if message.error() is None and len(self.skipped) < self.skip:
                self.skipped.append((message.topic(), message.partition(), message.offset()))
                continue
            kept.append(message)
        return kept

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_records_the_live_read_skipped_are_not_called_lost(producing, caplog):
    """The live read skips records: before calling them lost, the verifier reads
    the partitions of their topic again and finds them — PASS, and a warning says what it found."""
    p = producing()
    run = p.verification()
    run.consumer = skipping = SkippingConsumer(run.consumer, skip=7)
    p.send(3000)
    verdict = run.finish(p.ledger(), drain_timeout=20, late_grace=1.0)
    assert len(skipping.skipped) == 7
    assert (verdict.status, verdict.acked, verdict.seen, verdict.lost) == ("PASS", 3000, 3000, 0)
    assert "found +7 message(s) the live read had not seen" in caplog.text


def test_real_losses_survive_the_second_read(producing):
    """Messages that are really not in Kafka stay lost after the second read, counted exactly, even
    when the live read also skipped others."""
    p = producing(lose={11, 2222})
    run = p.verification()
    run.consumer = SkippingConsumer(run.consumer, skip=5)
    p.send(3000)
    verdict = run.finish(p.ledger(), drain_timeout=20, late_grace=1.0)
    assert (verdict.status, verdict.lost, verdict.seen) == ("FAIL", 2, 2998)
    assert sorted(i.seq for i in verdict.lost_samples) == [11, 2222]


def test_a_second_read_that_fails_is_inconclusive_never_lost(producing, monkeypatch):
    """When the confirming read fails, the messages it was to look for are unseen: INCONCLUSIVE."""
    from ingestload.errors import IngestloadError

    def failing(*args, **kwargs):
        raise IngestloadError("reading back stalled for 10s (injected)")
        yield

    p = producing(lose={11})
    run = p.verification()
    p.send(1000)
    ledger = p.ledger()
    monkeypatch.setattr("ingestload.verify.readback.read_partitions", failing)
    verdict = run.finish(ledger, drain_timeout=20, late_grace=1.0)
    assert (verdict.status, verdict.lost) == ("INCONCLUSIVE", 0)
    assert verdict.unseen >= 1
    assert any("to confirm" in r for r in verdict.reasons), verdict.reasons


def test_a_clean_broker_restart_is_no_false_alarm(prefix):
    """Every connection cut mid-run while the broker keeps its log (a clean restart): every partition
    still holds what was read, nothing is read again, nothing is called lost: PASS."""
    port = free_port()
    with bouncer(port) as proxy, EmbeddedBroker(port=port, advertised=proxy.address):
        p = Producing(proxy.address, prefix)
        try:
            run = p.verification()
            p.send(2000)
            p.read_all(run, 2000)
            proxy.bounce()
            p.send(2000)
            verdict = run.finish(p.ledger(), drain_timeout=30)
        finally:
            p.close()
    assert not run.replaced  # every partition still holds what was read: nothing is read again
    assert (verdict.status, verdict.acked, verdict.seen, verdict.lost) == ("PASS", 4000, 4000, 0)


def test_a_reused_topics_replaced_log_is_read_again_from_its_beginning(prefix):
    """Topics reused across runs (start offsets > 0) whose log the broker loses mid-run: the new log is
    read from its beginning — messages written after the restart below the old start offsets are
    found — and only what the restart destroyed is lost."""
    with EmbeddedBroker() as broker:
        first = Producing(broker.bootstrap, prefix, producer_id=1, kafka_config=("message.timeout.ms=3000",))
        second = None
        try:
            prefill(broker.bootstrap, first.topics)
            run = first.verification()
            assert min(run.start.values()) > 0
            first.send(1500)
            first.read_all(run, 1500)
            broker.restart()
            # A fresh producer after the restart (the old one's idempotent state is gone with the broker).
            second = Producing(broker.bootstrap, prefix, producer_id=2)
            second.send(3000)
            ledger = first.ledger()
            ledger.merge(second.ledger())
            verdict = run.finish(ledger, drain_timeout=40)
        finally:
            for p in (first, second):
                if p is not None:
                    p.close()
        in_kafka = {(c.producer, c.seq) for c in read_copies(broker.bootstrap, first.topics, RUN)}
    assert {s for p, s in in_kafka if p == 2} == set(range(3000))
    assert not {s for p, s in in_kafka if p == 1}
    assert (verdict.status, verdict.lost, verdict.seen) == ("FAIL", 1500, 3000)
    assert {i.producer_id for i in verdict.lost_samples} == {1}
