"""The reference sink never commits past records its consumer jumped over (ingestload.kafka.gaps).

Seen on the test cluster: the embedded broker let a live consumer fetch a later batch of a partition
before an earlier one was readable; the sink wrote what it got, committed past the rest, and the
storage verdict rightly called 2 messages lost. Here the sink runs in-process on a real broker and
a real PostgreSQL, the test writes the records itself and knows each one's offset, and reads the
table with SQL of its own:

* a consumer made to jump over records of one partition once (as the broker did): every record has
  its row, once, and the sink says it read the gap again and found it filled;
* real gaps (transaction markers, which a broker leaves in every partition a transaction wrote):
  every record has its row, and each gap costs one more fetch, not a stall.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import psycopg
import pytest
from confluent_kafka import Consumer, Producer

from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.sink.records import Validator
from ingestload.sink.writer import ReferenceSink

pytestmark = pytest.mark.integration

PARTITIONS = 2


class JumpingConsumer:
    """A real consumer whose first batch holding offset ``at`` of one partition leaves out the
    ``count`` records from there (a fetch that jumped over them); everything else as it comes."""

    def __init__(self, config: dict[str, Any], topic: str, partition: int, at: int, count: int) -> None:
        self._consumer = Consumer(config)
        self.where, self.at, self.count = (topic, partition), at, count
        self.left_out: list[int] = []

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        records = self._consumer.consume(*args, **kwargs)
        if self.left_out or not any(self._is_gap(r) for r in records):
            return records
        kept = []
        for record in records:
            if self._is_gap(record):
                self.left_out.append(record.offset())
            else:
                kept.append(record)
        return kept

    def _is_gap(self, record: Any) -> bool:
        return (
            record.error() is None
            and (record.topic(), record.partition()) == self.where
            and self.at <= record.offset() < self.at + self.count
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def produce(
    kafka: str, topics: list[str], prefix: str, n: int, transactional: bool
) -> dict[tuple[str, int, int], bytes]:
    """``n`` valid messages of the catalogue; what Kafka acknowledged: (topic, partition, offset) → value.
    Transactional: in transactions of 50, each leaving a commit marker (a real gap) in its partitions."""
    factory = MessageFactory(Catalogue.load(), seed=7, topic_prefix=prefix)
    config = {"bootstrap.servers": kafka, "linger.ms": 5}
    if transactional:
        config["transactional.id"] = f"gaps-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    acked: dict[tuple[str, int, int], bytes] = {}

    def report(err: Any, msg: Any) -> None:
        assert err is None, err
        acked[(msg.topic(), msg.partition(), msg.offset())] = msg.value()

    if transactional:
        producer.init_transactions(30)
    for start in range(0, n, 50):
        if transactional:
            producer.begin_transaction()
        for i in range(start, min(n, start + 50)):
            topic, value = factory.next(time.time_ns())
            producer.produce(topic, value, partition=i % PARTITIONS, on_delivery=report)
        if transactional:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
    producer.flush(30)
    assert len(acked) == n
    return acked


@contextmanager
def running_sink(sink: ReferenceSink) -> Iterator[ReferenceSink]:
    """The sink in a native thread of gevent's pool (Locust's pytest plugin patches ``threading``:
    a plain Thread would be a greenlet, and the sink's blocking calls would never let it go)."""
    stop = threading.Event()
    sink.prepare()
    done = gevent.get_hub().threadpool.spawn(sink.run, stop)
    try:
        yield sink
    finally:
        stop.set()
        done.get(timeout=30)


def stored(dsn: str, table: str, topics: list[str]) -> list[tuple[str, int, int]]:
    """The table's rows of ``topics`` as (topic, partition, offset), with SQL of the test's own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [
            (t, p, o)
            for t, p, o in conn.execute(
                f"SELECT topic, kafka_partition, kafka_offset FROM {table} WHERE topic = ANY(%s)", (topics,)
            ).fetchall()
        ]


def wait_for(
    dsn: str, table: str, topics: list[str], n: int, timeout: float = 90.0
) -> list[tuple[str, int, int]]:
    """The rows once ``n`` are there (a hang guard, not a verdict: the assertions come after)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = stored(dsn, table, topics)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def sink_for(
    kafka: str, dsn: str, topics: list[str], prefix: str, table: str, **kwargs: Any
) -> ReferenceSink:
    return ReferenceSink(
        dsn,
        {"bootstrap.servers": kafka, "session.timeout.ms": "6000"},
        topics,
        Validator.of(Catalogue.load(), prefix),
        group=f"{prefix}-sink",
        table=table,
        dead_letters=f"{table}_dead",
        batch_size=200,
        on_status=lambda line: None,
        **kwargs,
    )


@pytest.fixture
def topics(kafka: str, prefix: str) -> list[str]:
    names = Catalogue.load().topics(prefix)
    ensure_topics({"bootstrap.servers": kafka}, names, PARTITIONS)
    return names


def test_records_a_fetch_jumped_over_are_read_again_and_written(kafka, postgres, prefix, topics) -> None:
    acked = produce(kafka, topics, prefix, 2000, transactional=False)
    busiest = max(topics, key=lambda t: sum(1 for k in acked if k[0] == t))
    jumper: list[JumpingConsumer] = []

    def make(config: dict[str, Any]) -> JumpingConsumer:
        jumper.append(JumpingConsumer(config, busiest, 0, at=100, count=17))
        return jumper[0]

    table = f"gaps_{uuid.uuid4().hex[:8]}"
    with running_sink(sink_for(kafka, postgres, topics, prefix, table, consumer_maker=make)) as sink:
        rows = wait_for(postgres, table, topics, len(acked))
    assert jumper[0].left_out == list(range(100, 117)), "the consumer never jumped: the test proved nothing"
    assert sorted(rows) == sorted(acked), f"{len(set(acked) - set(rows))} records have no row"
    assert sink.gaps is not None
    assert (sink.gaps.reread, sink.gaps.filled, sink.gaps.real) == (1, 1, 0)
    assert "gaps read again 1 (filled 1, real 0)" in sink.stats.line(None, 0)


def test_real_gaps_are_passed_after_one_more_fetch(kafka, postgres, prefix, topics) -> None:
    acked = produce(kafka, topics, prefix, 1000, transactional=True)
    by_partition: dict[tuple[str, int], list[int]] = {}
    for t, p, o in acked:
        by_partition.setdefault((t, p), []).append(o)
    # The gaps the markers left between records (the test's own count, from the offsets acked).
    gaps = sum(
        1
        for offsets in by_partition.values()
        for a, b in zip(sorted(offsets), sorted(offsets)[1:], strict=False)
        if b != a + 1
    )
    assert gaps > 0, "no transaction marker between records: the test proved nothing"
    table = f"gaps_{uuid.uuid4().hex[:8]}"
    with running_sink(sink_for(kafka, postgres, topics, prefix, table)) as sink:
        rows = wait_for(postgres, table, topics, len(acked))
    assert sorted(rows) == sorted(acked), f"{len(set(acked) - set(rows))} records have no row"
    assert sink.gaps is not None
    assert sink.gaps.filled == 0
    # Each gap read again once and found real (a gap that a batch boundary hides is never seen).
    assert sink.gaps.real == sink.gaps.reread <= gaps
    assert sink.gaps.real > 0
