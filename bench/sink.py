"""The storage hop, side by side in one run on the same broker and the same PostgreSQL (issue 21 item 6):

  (a) bare loops, Kafka → the reference table's layout: consume, then one transaction per 2,000
      records — ``COPY`` straight into the table, or ``executemany`` of an ``INSERT`` (psycopg 3
      pipelines it) — no validation, no key of the message, no offsets committed: the ceiling;
  (b) the reference sink (``ingestload sink`` in its own process, as a user runs it): a consumer
      group, each message parsed and checked against its type, ``COPY`` into a staging table then
      ``INSERT … ON CONFLICT`` keyed by the message's identity, offsets committed after each
      database commit;
  (c) reading the table back: a bare server-side cursor (count only) vs the sink verifier — the
      same read plus ``TableTally`` (each row's message found, its checksum checked, seen / copies
      tallied per producer) — and ``TableTally`` alone on rows already in memory.

Every side writes the same messages (the HTTP path's bodies, the envelope in the ``_ingestload``
member, as the Kafka path carries it with ``--sink``) into a table of its own with the reference
layout. Write rates are rows over the span of the table's own ``written_at`` (first row to last), so
that a process's start and a consumer group's join count for no side.

    python bench/sink.py [--messages 200000] [--kafka-bootstrap HOST:PORT]
    INGESTLOAD_SINK=postgresql://… python bench/sink.py      # that PostgreSQL instead of a throwaway one
    python bench/sink.py --profile      # also the reference sink's writer in this process under cProfile
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from ingestload.http.client import IngestApiClient
from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.sink.postgres import EmbeddedPostgres
from ingestload.sink.progress import read_table
from ingestload.sink.records import Validator
from ingestload.sink.running import SinkProcess
from ingestload.sink.table import SinkTarget, create_reference_tables
from ingestload.sink.verdict import TableTally
from ingestload.sink.writer import CONSUMER_DEFAULTS, ReferenceSink
from ingestload.testing import BOOTSTRAP_ENV, kafka_bootstrap, unique_prefix
from ingestload.verify.body import BodySpec

RUN = "5eed5eed5eed0001"
PARTITIONS = 3
BATCH = 2000
COLUMNS = "id, run_id, topic, kafka_partition, kafka_offset, kafka_timestamp, body"


@contextlib.contextmanager
def database() -> Iterator[str]:
    named = os.environ.get("INGESTLOAD_SINK")
    if named:
        yield named
    else:
        with EmbeddedPostgres() as db:
            yield db.dsn


def produce(bootstrap: str, prefix: str, n: int) -> list[str]:
    """``n`` messages of run :data:`RUN` on the catalogue's topics under ``prefix``."""
    catalogue = Catalogue.load()
    client = IngestApiClient(MessageFactory(catalogue, topic_prefix=prefix))
    client.begin_run(RUN)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    topics: set[str] = set()
    for start in range(0, n, 1000):
        for topic, _, body in client._render(min(1000, n - start)):
            topics.add(topic)
            while True:
                try:
                    producer.produce(topic, body)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    return sorted(topics)


def records_of(bootstrap: str, topics: list[str]) -> Iterator[list[Any]]:
    """Every record of ``topics`` from the start, in batches of up to :data:`BATCH` (no group)."""
    consumer = Consumer(
        {
            **CONSUMER_DEFAULTS,  # the reference sink's fetch settings: the same reads for both
            "bootstrap.servers": bootstrap,
            "group.id": "bench-sink-bare",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
        }
    )
    assignment = [TopicPartition(t, p, 0) for t in topics for p in range(PARTITIONS)]
    consumer.assign(assignment)
    open_ = len(assignment)
    try:
        while open_:
            batch = []
            for record in consumer.consume(BATCH, 0.05):  # as the sink polls: no wait for a full batch
                error = record.error()
                if error is None:
                    batch.append(record)
                elif error.code() == KafkaError._PARTITION_EOF:
                    open_ -= 1
            if batch:
                yield batch
    finally:
        consumer.close()


def row(record: Any) -> tuple[Any, ...]:
    """A record as a row of the reference layout, keyed by where it was read (no message parsed)."""
    topic, partition, offset = record.topic(), record.partition(), record.offset()
    return (f"{topic}/{partition}@{offset}", None, topic, partition, offset, None, record.value().decode())


def bare_copy(conn: Any, table: str, batch: list[Any]) -> None:
    with (
        conn.transaction(),
        conn.cursor() as cursor,
        cursor.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy,
    ):
        for record in batch:
            copy.write_row(row(record))


def bare_executemany(conn: Any, table: str, batch: list[Any]) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)", [row(r) for r in batch]
        )


def fresh_table(dsn: str, name: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(f"DROP TABLE IF EXISTS {name}_dead")
        create_reference_tables(conn, name, f"{name}_dead")
    return name


def written_rate(dsn: str, table: str) -> tuple[int, float]:
    """(rows, seconds from the first row written to the last) of ``table``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        n, span = conn.execute(
            f"SELECT count(*), extract(epoch FROM max(written_at) - min(written_at)) FROM {table}"
        ).fetchone()
    return int(n), float(span or 0)


def bare_side(dsn: str, bootstrap: str, topics: list[str], name: str, write: Callable[..., None]) -> None:
    table = fresh_table(dsn, name)
    with psycopg.connect(dsn) as conn:
        for batch in records_of(bootstrap, topics):
            write(conn, table, batch)


def wait_rows(dsn: str, table: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{table}: fewer than {n:,} rows after {timeout:g}s")
            time.sleep(0.2)


def reference_side(
    dsn: str, bootstrap: str, prefix: str, topics: list[str], name: str, n: int, group: str
) -> None:
    """``ingestload sink`` in its own process, until it has written all ``n``."""
    table = fresh_table(dsn, name)
    args = [
        *("--topic-prefix", prefix, "--sink-topics", ",".join(topics), "--sink-table", table),
        *("--sink-dead-letters", f"{table}_dead", "--sink-group", group),
    ]
    with contextlib.closing(_Stopping(SinkProcess(bootstrap, dsn, args))) as sink:
        sink.process.start()
        wait_rows(dsn, table, n)


class _Stopping:
    def __init__(self, process: SinkProcess) -> None:
        self.process = process

    def close(self) -> None:
        self.process.stop()
        self.process.kill()
        self.process.log_path.unlink(missing_ok=True)


def profile_writer(dsn: str, bootstrap: str, prefix: str, topics: list[str], n: int) -> None:
    """The reference sink's writer in this process under cProfile; prints its top functions."""
    table = fresh_table(dsn, "bench_sink_profiled")
    writer = ReferenceSink(
        dsn,
        {"bootstrap.servers": bootstrap},
        topics,
        Validator.of(Catalogue.load(), prefix),
        group=f"{prefix}profiled",
        table=table,
        dead_letters=f"{table}_dead",
        status_interval=3600,
    )
    writer.prepare()
    stop = threading.Event()

    def stop_when_done() -> None:
        wait_rows(dsn, table, n)
        stop.set()

    threading.Thread(target=stop_when_done, daemon=True).start()
    profiler = cProfile.Profile()
    profiler.enable()
    writer.run(stop)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    rows, span = written_rate(dsn, table)
    print(f"\nreference sink's writer under cProfile: {rows / span:,.0f} rows/s\n{out.getvalue()}")


def read_sides(dsn: str, table: str) -> list[tuple[str, int, float]]:
    """(label, rows, seconds) for the bare read, the verifier (read + TableTally), TableTally alone."""
    target = SinkTarget(dsn, table=table, dead_letters=f"{table}_dead")
    spec = BodySpec.of()  # the built-in catalogue, as the run had it
    start = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench_read") as cursor:
        cursor.itersize = 20_000
        cursor.execute(
            f"SELECT body::text, written_at, kafka_timestamp FROM {table} WHERE run_id = %s", (RUN,)
        )
        count = sum(1 for _ in cursor)
    sides = [("bare read (server-side cursor, count only)", count, time.perf_counter() - start)]

    tally = TableTally(spec, RUN)
    start = time.perf_counter()
    read_table(target, tally, RUN)
    sides.append(("sink verifier: read + TableTally", tally.rows, time.perf_counter() - start))
    if tally.duplicated or tally.corrupted or sum(len(s) for s in tally.seen.values()) != count:
        raise SystemExit(f"the verifier did not find every row intact once: {tally}")

    rows = list(target.rows(RUN))
    alone = TableTally(spec, RUN)
    start = time.perf_counter()
    for value, written_at, kafka_at in rows:
        alone.add_row(value, written_at, kafka_at)
    sides.append(("TableTally alone (rows in memory)", alone.rows, time.perf_counter() - start))
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000, help="messages written by each side")
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side; the best one counts")
    parser.add_argument("--profile", action="store_true", help="also profile the reference sink's writer")
    args = parser.parse_args()
    n = args.messages
    given = {BOOTSTRAP_ENV: args.kafka_bootstrap} if args.kafka_bootstrap else {}
    with kafka_bootstrap(given) as bootstrap, database() as dsn:
        prefix = unique_prefix("bsink")
        catalogue = Catalogue.load()
        ensure_topics({"bootstrap.servers": bootstrap}, catalogue.topics(prefix), PARTITIONS)
        print(f"Storage hop benchmark: {n:,} messages, batches of {BATCH:,}; producing…", flush=True)
        topics = produce(bootstrap, prefix, n)
        sides: list[tuple[str, str, Callable[[str, int], None]]] = [
            (
                "bare COPY loop",
                "bench_sink_copy",
                lambda t, _: bare_side(dsn, bootstrap, topics, t, bare_copy),
            ),
            (
                "bare executemany loop",
                "bench_sink_executemany",
                lambda t, _: bare_side(dsn, bootstrap, topics, t, bare_executemany),
            ),
            (
                "reference sink (ingestload sink)",
                "bench_sink_reference",
                lambda t, r: reference_side(dsn, bootstrap, prefix, topics, t, n, f"{prefix}bench-{r}"),
            ),
        ]
        best: dict[str, tuple[int, float]] = {}
        for r in range(args.rounds):
            for label, name, side in sides:
                side(name, r)
                rows, span = written_rate(dsn, name)
                if label not in best or span < best[label][1]:
                    best[label] = (rows, span)
                print(f"  round {r + 1}: {label}: {rows / span:,.0f} rows/s", flush=True)
        writes = [(label, *best[label]) for label, _, _ in sides]
        if args.profile:
            profile_writer(dsn, bootstrap, prefix, topics, n)
        reads: list[tuple[str, int, float]] = []
        for _ in range(args.rounds):
            this = read_sides(dsn, "bench_sink_reference")
            reads = (
                this
                if not reads
                else [min(a, b, key=lambda x: x[2]) for a, b in zip(reads, this, strict=True)]
            )
    bare_write = writes[0][1] / writes[0][2]
    bare_read = reads[0][1] / reads[0][2]
    print(f"\nbest of {args.rounds} rounds per side")
    print(f"\n{'Kafka → table':<46} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'vs bare COPY':>13}")
    for label, rows, span in writes:
        print(f"{label:<46} {rows:>9,} {span:>8.2f} {rows / span:>9,.0f} {rows / span / bare_write:>12.2f}×")
    print(f"\n{'table → verdict':<46} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'vs bare read':>13}")
    for label, rows, span in reads:
        print(f"{label:<46} {rows:>9,} {span:>8.2f} {rows / span:>9,.0f} {rows / span / bare_read:>12.2f}×")


if __name__ == "__main__":
    main()
