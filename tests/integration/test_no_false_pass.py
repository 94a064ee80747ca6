"""No false PASS, no false FAIL against a real broker (issue 18 items 5, 7, 9, 10).

Every record here is written by the test with the oracle's own envelope (tests/oracle.py: its own
layout and CRC-32), so the truth — which seqs are where, which are in an open transaction — is what
the test wrote; timing decides nothing: a transaction ends when the verifier reports progress, a late
copy is written once the live verdict is out.
"""

import json
import uuid

import pytest
from confluent_kafka import Producer

from ingestload.cli import main as cli_main
from ingestload.kafka.admin import ensure_topics, high_watermarks
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.verify.readback import Readback
from tests.oracle import crc32, envelope, read_copies, tally

pytestmark = pytest.mark.integration

RUN = "0ddba11cafe00018"
PRODUCER = 0x18


def record(producer, topic, seq, *, meant_for=None, value=None):
    """Produce one message of the run with the oracle's envelope."""
    value = value if value is not None else json.dumps({"seq": seq}).encode()
    header = envelope(RUN, PRODUCER, seq, 1_700_000_000_000_000, crc32(value), meant_for or topic)
    producer.produce(topic, value, headers=[("ingestload", header)], partition=0)


def acked(n, **meta):
    return AckLedger([ProducerLedger(PRODUCER, sent=n, acked_count=n, meta=meta)])


@pytest.fixture
def topic(kafka, prefix):
    name = f"{prefix}one"
    ensure_topics({"bootstrap.servers": kafka}, [name], partitions=1)
    return name


def open_transaction(kafka, topic, seqs):
    """A transactional producer that wrote ``seqs`` in a transaction it has not ended (an API that
    acknowledged before its commit)."""
    producer = Producer({"bootstrap.servers": kafka, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    producer.init_transactions(20)
    producer.begin_transaction()
    for seq in seqs:
        record(producer, topic, seq)
    assert producer.flush(20) == 0
    return producer


def committed(kafka, topic, seqs):
    producer = Producer({"bootstrap.servers": kafka})
    for seq in seqs:
        record(producer, topic, seq)
    assert producer.flush(20) == 0


def test_the_verifier_reads_committed_records_whatever_the_properties_say(kafka, topic, caplog):
    """Item 5: with isolation.level=read_uncommitted in the run's properties, 10 committed records and
    5 acknowledged in a transaction still open: the verifier reads committed records only (and says
    so), so the 5 do not count as delivered — INCONCLUSIVE, never PASS. Before: PASS."""
    start = high_watermarks({"bootstrap.servers": kafka}, [topic])
    committed(kafka, topic, range(10))
    pending = open_transaction(kafka, topic, range(10, 15))
    try:
        config = {"bootstrap.servers": kafka, "isolation.level": "read_uncommitted"}
        run = Readback(config, [topic], RUN, start=start, record_latency=False)
        verdict = run.finish(acked(15), drain_timeout=15, late_grace=0.5)
    finally:
        pending.abort_transaction(20)
    assert run.config["isolation.level"] == "read_committed"
    assert "reads committed records only" in caplog.text
    assert (verdict.status, verdict.seen, verdict.lost) == ("INCONCLUSIVE", 10, 0), verdict.report()


def test_records_not_yet_visible_are_unseen_not_lost(kafka, topic):
    """Item 9: 5 acknowledged records sit in a transaction that stays open (the last stable offset
    stays behind the high watermark): after waiting within the grace, INCONCLUSIVE naming the
    partition and how many offsets, unseen 5 — not FAIL lost 5 (before)."""
    start = high_watermarks({"bootstrap.servers": kafka}, [topic])
    committed(kafka, topic, range(10))
    pending = open_transaction(kafka, topic, range(10, 15))
    try:
        run = Readback({"bootstrap.servers": kafka}, [topic], RUN, start=start, record_latency=False)
        verdict = run.finish(acked(15), drain_timeout=15, late_grace=0.5)
    finally:
        pending.abort_transaction(20)
    assert (verdict.status, verdict.lost, verdict.unseen) == ("INCONCLUSIVE", 0, 5), verdict.report()
    assert verdict.not_visible == {f"{topic}[0]": 5}
    assert any("not yet visible" in r for r in verdict.reasons)


def test_a_transaction_that_commits_within_the_grace_is_waited_for(kafka, topic):
    """Item 9: the transaction commits while the verifier waits (when it first reports progress, not
    after some sleep): the 5 records become visible and the verdict is PASS."""
    start = high_watermarks({"bootstrap.servers": kafka}, [topic])
    committed(kafka, topic, range(10))
    pending = open_transaction(kafka, topic, range(10, 15))
    done = []

    def commit_once(_progress):
        if not done:
            pending.commit_transaction(20)
            done.append(True)

    run = Readback({"bootstrap.servers": kafka}, [topic], RUN, start=start, record_latency=False)
    verdict = run.finish(acked(15), drain_timeout=20, late_grace=0.5, on_progress=commit_once)
    assert done
    assert (verdict.status, verdict.seen) == ("PASS", 15), verdict.report()


def test_a_late_duplicate_after_the_watched_window_is_caught_by_one_verify_command(kafka, topic, tmp_path):
    """Item 7: the live verdict says how long after the last acknowledgement it watched; a duplicate
    that lands after that (written once the verdict is out) is not in it, and `ingestload verify
    --ledger FILE` — one command, with the run's thresholds from the file — catches it (FAIL, exit 3).
    Before: the verdict said nothing of what it covered, and verify judged by its own defaults."""
    start = high_watermarks({"bootstrap.servers": kafka}, [topic])
    committed(kafka, topic, range(20))
    run = Readback({"bootstrap.servers": kafka}, [topic], RUN, start=start)
    live = run.finish(acked(20), drain_timeout=15, late_grace=0.5)
    assert live.status == "PASS", live.report()
    assert live.watched_s is not None
    assert 0.5 <= live.watched_s < 15
    assert "watched for" in live.report()

    committed(kafka, topic, [7])  # the pipeline's late retry lands after the live verdict
    ledger_file = tmp_path / "ledger.json"

    def write(thresholds):
        document = {
            "run_id": RUN,
            "topics": [topic],
            "start": [[t, p, o] for (t, p), o in sorted(start.items())],
            "kafka_bootstrap": kafka,
            "envelope_field": "_ingestload",
            "thresholds": thresholds,
            "missing_workers": [],
            "producers": acked(20).to_json(),
        }
        ledger_file.write_text(json.dumps(document))

    write({"max_lost": 0, "max_duplicated": 0, "max_corrupted": 0, "max_misrouted": 0})
    assert cli_main(["verify", "--ledger", str(ledger_file), "--drain-timeout", "15"]) == 3
    assert tally(read_copies(kafka, [topic], RUN))["duplicated"] == 1  # the oracle agrees

    # The run tolerated one duplicate: re-judged by the same command, by the run's own thresholds.
    write({"max_lost": 0, "max_duplicated": 1, "max_corrupted": 0, "max_misrouted": 0})
    assert cli_main(["verify", "--ledger", str(ledger_file), "--drain-timeout", "15"]) == 0


class SkippingConsumer:
    """The live verifier's consumer, made to skip its first ``skip`` records."""

    def __init__(self, consumer, skip):
        self._consumer, self.skip, self.skipped = consumer, skip, []

    def consume(self, *args, **kwargs):
        kept = []
        for message in self._consumer.consume(*args, **kwargs):
            if message.error() is None and len(self.skipped) < self.skip:
                self.skipped.append(message.offset())
                continue
            kept.append(message)
        return kept

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_with_an_api_topic_map_the_second_read_reads_the_topic_messages_were_meant_for(kafka, prefix):
    """Item 10: an API routes every type to one topic (--api-topic-map '*=<prefix>all'); the live read
    skips 7 records. Before calling them lost the verifier reads again the topic they were meant for
    — the mapped one, named in the ledger — and finds them: PASS. Before: it named the catalogue's
    topics, re-read nothing there, and called the 7 lost (FAIL)."""
    routed = f"{prefix}all"
    ensure_topics({"bootstrap.servers": kafka}, [routed], partitions=1)
    factory = MessageFactory(Catalogue.load(), topic_prefix=prefix)
    meant_for = dict.fromkeys(set(factory.topics), routed)
    start = high_watermarks({"bootstrap.servers": kafka}, [routed])
    producer = Producer({"bootstrap.servers": kafka})
    for seq in range(200):
        record(producer, routed, seq)
    assert producer.flush(20) == 0
    ledger = acked(200, **factory.describe(), meant_for=meant_for)
    run = Readback({"bootstrap.servers": kafka}, [routed], RUN, start=start, record_latency=False)
    run.consumer = skipping = SkippingConsumer(run.consumer, skip=7)
    verdict = run.finish(ledger, drain_timeout=15, late_grace=0.5)
    assert len(skipping.skipped) == 7
    assert (verdict.status, verdict.lost, verdict.seen) == ("PASS", 0, 200), verdict.report()


def test_messages_missing_on_a_compacted_topic_are_unseen_not_lost(kafka, prefix):
    """Item 8 (compaction): on a topic with cleanup.policy=compact, compaction may remove any record
    without moving the log's start, so 5 acknowledged messages not found there are unseen and the
    verdict INCONCLUSIVE naming the topic — not FAIL lost 5 (before). The same on a plain topic
    stays FAIL lost 5."""
    from confluent_kafka.admin import AdminClient, NewTopic

    compacted, plain = f"{prefix}compacted", f"{prefix}plain"
    admin = AdminClient({"bootstrap.servers": kafka})
    topics = [NewTopic(compacted, 1, 1, config={"cleanup.policy": "compact"}), NewTopic(plain, 1, 1)]
    for future in admin.create_topics(topics).values():
        future.result(15)
    verdicts = {}
    for topic in (compacted, plain):
        start = high_watermarks({"bootstrap.servers": kafka}, [topic])
        committed(kafka, topic, range(10))  # the ledger says 15 were acknowledged
        run = Readback({"bootstrap.servers": kafka}, [topic], RUN, start=start, record_latency=False)
        verdicts[topic] = run.finish(acked(15), drain_timeout=15, late_grace=0.5)
    v = verdicts[compacted]
    assert (v.status, v.lost, v.unseen) == ("INCONCLUSIVE", 0, 5), v.report()
    assert any(f"compacted topic(s) {compacted}" in r for r in v.reasons)
    assert (verdicts[plain].status, verdicts[plain].lost) == ("FAIL", 5)
