"""The reference sink: Kafka → PostgreSQL, seed 001's handler done so that nothing is lost.

Seed 001's handler joined a consumer group with ``auto_offset_reset=latest``, wrote each record on
its own and let the client commit offsets whenever it liked: a restart between a commit and a write
loses the record, a restart between a write and a commit writes it twice, and a new group starts
after whatever was already there. The reference sink:

* consumes in a consumer group (run more sinks with the same ``--sink-group`` to scale out), from
  the earliest offset for a new group, auto-commit off;
* checks each message against its type (:class:`~ingestload.sink.records.Validator`); an invalid
  one goes to the dead-letter table with the reason (and is logged, as the seed's
  "字段不符合要求" lines were);
* writes a batch in one transaction, each row keyed by the message's identity
  (:func:`~ingestload.sink.records.message_key`, the primary key) — ``COPY`` straight into the
  table, or, when a row is there already, ``COPY`` into a staging table and ``INSERT … ON CONFLICT
  DO NOTHING`` — so a batch written again after a crash adds nothing;
* commits the batch's offsets to Kafka only after the database transaction committed; a database
  that fails keeps the batch and retries it (backing off) until it is written — never skipped;
* never moves past a gap in a partition's offsets before it has read the gap again
  (:mod:`~ingestload.kafka.gaps`): a broker that lets a later batch be fetched first would
  otherwise have it commit past records it never saw.

Example::

    sink = ReferenceSink(dsn, consumer_config, topics, validator)
    sink.prepare()           # connect, create the tables
    sink.run(stop)           # until stop.is_set(); status lines every --status-interval
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ingestload.errors import DatabaseError
from ingestload.kafka.gaps import GapGuard
from ingestload.sink.records import Validator, message_key, split
from ingestload.sink.table import DEAD_LETTERS, TABLE, connect, create_reference_tables, quoted, shown_dsn

log = logging.getLogger("ingestload.sink")
_COLUMNS = "id, run_id, topic, kafka_partition, kafka_offset, kafka_timestamp, body"
#: Why a message holding U+0000 in a string is dead-lettered (PostgreSQL's jsonb refuses it).
NUL_REASON = "holds the character U+0000 (\\u0000), which PostgreSQL's jsonb cannot store"
#: Batches written by the keyed path after one whose rows were partly there already.
KEYED_AFTER_CONFLICT = 50

#: librdkafka settings of the sink's consumer that correctness depends on (the user cannot undo them).
CONSUMER_FIXED = {"enable.auto.commit": "false", "enable.auto.offset.store": "false"}
#: Defaults the user may change (``--kafka-config``): a new group reads what is already there;
#: a short session so that a restarted sink's partitions come back within seconds.
#: Fetches that wait at most 100 ms at the log's end keep Kafka → row latency low without polling hot.
CONSUMER_DEFAULTS = {
    "auto.offset.reset": "earliest",
    "session.timeout.ms": "6000",
    "fetch.wait.max.ms": "100",
}


@dataclass
class SinkStats:
    """What the sink did (since it started), for status lines and its final line."""

    rows: int = 0
    """Rows inserted (messages written for the first time)."""
    repeats: int = 0
    """Messages whose row was already there (a batch read again after a restart; a duplicate upstream)."""
    dead: int = 0
    """Messages sent to the dead-letter table."""
    batches: int = 0
    retries: int = 0
    """Batch writes that failed and were tried again."""
    lag: int = 0
    """Messages in the assigned partitions not yet written (high watermark − next offset)."""
    started: float = field(default_factory=time.monotonic)
    gaps: str = ""
    """Gaps in the offsets read again (:meth:`~ingestload.kafka.gaps.GapGuard.line`), if any."""

    def line(self, previous: SinkStats | None, interval: float) -> str:
        rate = (
            f" (+{(self.rows - previous.rows) / interval:,.0f}/s)"
            if previous is not None and interval > 0
            else ""
        )
        return (
            f"sink: rows {self.rows:,}{rate}  already there {self.repeats:,}  "
            f"dead letters {self.dead:,}  lag {self.lag:,}  batches {self.batches:,}"
            + (f"  retries {self.retries:,}" if self.retries else "")
            + (f"  {self.gaps}" if self.gaps else "")
        )

    def copy(self) -> SinkStats:
        return SinkStats(
            self.rows, self.repeats, self.dead, self.batches, self.retries, self.lag, self.started, self.gaps
        )


def _timestamp(record: Any) -> datetime | None:
    kind, ms = record.timestamp()
    if kind == 0 or ms is None or ms < 0:  # TIMESTAMP_NOT_AVAILABLE
        return None
    return datetime.fromtimestamp(ms / 1000, UTC)


class ReferenceSink:
    """One sink process's consumer and database connection (run several for more throughput)."""

    def __init__(
        self,
        dsn: str,
        consumer_config: Mapping[str, str],
        topics: Sequence[str],
        validator: Validator,
        *,
        group: str = "ingestload-sink",
        table: str = TABLE,
        dead_letters: str = DEAD_LETTERS,
        batch_size: int = 2000,
        envelope_field: str = "_ingestload",
        on_status: Callable[[str], None] | None = None,
        status_interval: float = 5.0,
        consumer_maker: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        quoted(table)
        quoted(dead_letters)
        self.dsn = dsn
        self.config = {**CONSUMER_DEFAULTS, **consumer_config, **CONSUMER_FIXED, "group.id": group}
        self.topics = list(topics)
        self.validator = validator
        self.group = group
        self.table = table
        self.dead_letters = dead_letters
        self.batch_size = batch_size
        self.envelope_field = envelope_field
        self.on_status = on_status or log.info
        self.status_interval = status_interval
        self.stats = SinkStats()
        self.consumer_maker = consumer_maker or _consumer
        """Makes the Kafka consumer from its configuration (tests: one that jumps over records)."""
        self.gaps: GapGuard | None = None
        """The gap check of the running consumer (:mod:`ingestload.kafka.gaps`)."""
        self._conn: Any = None
        self._keyed_left = 0
        """Batches still to write by the keyed path (after a row was found there already)."""
        self._insert = (
            f"INSERT INTO {quoted(table)} ({_COLUMNS}) "
            f"SELECT id, run_id, topic, kafka_partition, kafka_offset, kafka_timestamp, body::jsonb "
            f"FROM ingestload_staging ON CONFLICT (id) DO NOTHING"
        )
        self._dead = (
            f"INSERT INTO {quoted(dead_letters)} (topic, kafka_partition, kafka_offset, item, reason, body) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        )

    # -- database -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Connect and create the tables when missing; raises :class:`DatabaseError` in one line."""
        self._connect()

    def _connect(self) -> None:
        self._drop()
        conn = connect(self.dsn)
        create_reference_tables(conn, self.table, self.dead_letters)
        conn.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS ingestload_staging (id text, run_id text, topic text, "
            "kafka_partition integer, kafka_offset bigint, kafka_timestamp timestamptz, body text) "
            "ON COMMIT DELETE ROWS"
        )
        conn.commit()
        self._conn = conn

    def _drop(self) -> None:
        """Close the connection (a broken one may fail to close: it is dropped anyway)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def write(self, records: Sequence[Any]) -> None:
        """Write one batch of Kafka records in one transaction (rows and dead letters)."""
        rows: dict[str, tuple[Any, ...]] = {}
        dead: list[tuple[Any, ...]] = []
        for record in records:
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            messages, why = split(record.value())
            if why is not None:
                dead.append((topic, partition, offset, 0, why, _text(record.value())))
                continue
            headers = record.headers()
            single = len(messages) == 1
            at = _timestamp(record)
            for index, message in enumerate(messages):
                problem = self.validator.problem(topic, message)
                body = orjson.dumps(message).decode()
                if problem is None and "\\u0000" in body and _holds_nul(message):
                    # Valid JSON that jsonb refuses: written, it would fail the batch for ever.
                    problem = NUL_REASON
                if problem is not None:
                    dead.append((topic, partition, offset, index, problem, body))
                    continue
                key = message_key(
                    message, headers, (topic, partition, offset, index), self.envelope_field, single
                )
                run_id = key.split(":", 1)[0] if ":" in key else None
                rows.setdefault(key, (key, run_id, topic, partition, offset, at, body))
        conn = self._conn
        with conn.transaction():
            inserted = self._insert_rows(conn, list(rows.values())) if rows else 0
            if dead:
                with conn.cursor() as cursor:
                    cursor.executemany(self._dead, dead)
                for topic, partition, offset, _, reason, _ in dead:
                    log.warning("sink: %s[%d]@%d dead-lettered: %s", topic, partition, offset, reason)
        self.stats.rows += inserted
        self.stats.repeats += len(rows) - inserted
        self.stats.dead += len(dead)
        self.stats.batches += 1

    def _insert_rows(self, conn: Any, rows: list[tuple[Any, ...]]) -> int:
        """Insert the batch's rows (keys distinct); returns how many were not there yet.

        ``COPY`` straight into the table, in a savepoint: batches hold new messages but for the
        first one read again after a restart, and a plain ``COPY`` costs the server about half of
        the keyed path. When a row is there already (a unique violation), the savepoint is rolled
        back and the keyed path writes the batch — ``COPY`` into the staging table, then ``INSERT …
        ON CONFLICT DO NOTHING`` — and the next :data:`KEYED_AFTER_CONFLICT` batches too, so that a
        stream with duplicates upstream does not pay for a failed ``COPY`` per batch."""
        import psycopg

        if self._keyed_left:
            self._keyed_left -= 1
        else:
            try:
                with (
                    conn.transaction(),
                    conn.cursor() as cursor,
                    cursor.copy(f"COPY {quoted(self.table)} ({_COLUMNS}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
            except psycopg.errors.UniqueViolation:
                self._keyed_left = KEYED_AFTER_CONFLICT
        with conn.cursor() as cursor:
            with cursor.copy(f"COPY ingestload_staging ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(self._insert)
            return max(int(cursor.rowcount), 0)

    def write_until_done(self, records: Sequence[Any], stop: threading.Event) -> bool:
        """:meth:`write`, again and again (reconnecting, backing off) until it succeeds; False when
        stopped first (the batch is then not committed to Kafka: it is read again next time)."""
        import psycopg

        delay = 0.2
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._connect()
                self.write(records)
                return True
            except (psycopg.Error, DatabaseError) as e:
                self.stats.retries += 1
                log.error(
                    "sink: writing %d records failed (%s); trying again in %.1fs",
                    len(records),
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                    delay,
                )
                self._drop()
            if stop.wait(delay):
                return False
            delay = min(delay * 2, 5.0)

    # -- Kafka --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> SinkStats:
        """Consume, write, commit, until ``stop`` is set; returns the stats."""
        from confluent_kafka import KafkaException, TopicPartition

        consumer = self.consumer_maker({**self.config, "logger": logging.getLogger("ingestload.librdkafka")})
        guard = self.gaps = GapGuard(consumer.seek)
        consumer.subscribe(
            self.topics, on_assign=guard.on_assign, on_revoke=guard.on_revoke, on_lost=guard.on_revoke
        )
        last_status, previous = time.monotonic(), self.stats.copy()
        try:
            while not stop.is_set():
                records = consumer.consume(self.batch_size, timeout=0.05)
                # Never past a gap in a partition's offsets before it was read again (kafka.gaps).
                records = guard.admit([r for r in records if r.error() is None])
                if records:
                    if not self.write_until_done(records, stop):
                        break
                    ends: dict[tuple[str, int], int] = {}
                    for r in records:
                        ends[(str(r.topic()), int(r.partition() or 0))] = int(r.offset() or 0) + 1
                    offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
                    try:
                        # Only now, with the rows committed: a crash before this reads them again,
                        # and the keyed insert makes that harmless.
                        consumer.commit(offsets=offsets, asynchronous=False)
                    except KafkaException as e:
                        log.warning("sink: committing offsets failed (%s); they are written again later", e)
                now = time.monotonic()
                if now - last_status >= self.status_interval:
                    self.stats.lag = _lag(consumer)
                    self.stats.gaps = guard.line()
                    self.on_status(self.stats.line(previous, now - last_status))
                    last_status, previous = now, self.stats.copy()
        finally:
            self.stats.lag = _lag(consumer)
            self.stats.gaps = guard.line()
            consumer.close()
            if self._conn is not None:
                self._conn.close()
        return self.stats

    def describe(self) -> str:
        return (
            f"reference sink: {', '.join(self.topics)} → {shown_dsn(self.dsn)} table {self.table} "
            f"(dead letters: {self.dead_letters}), group {self.group}"
        )


def _consumer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config)


def _lag(consumer: Any) -> int:
    lag = 0
    try:
        for tp in consumer.assignment():
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            position = consumer.position([tp])[0].offset
            if high >= 0:
                lag += max(0, high - (position if position >= 0 else low))
    except Exception:  # lag is a status figure; never stop the sink over it
        return 0
    return lag


def _holds_nul(value: Any) -> bool:
    """A string of parsed JSON ``value`` (a member name too) holds the character U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def _text(value: bytes | None) -> str | None:
    """A record's value as text for the dead-letter table (which, as any PostgreSQL text, cannot
    hold U+0000: written as ``\\u0000``)."""
    if value is None:
        return None
    return value.decode("utf-8", errors="replace").replace("\x00", "\\u0000")
