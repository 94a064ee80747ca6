"""The storage hop's fault matrix (issue 21 item 5), counted exactly: whole Locust runs on the Kafka
path with ``--sink``, a real broker, a real PostgreSQL and real sink processes, faults injected
while the run writes — timed by what the table holds, never by the clock.

The expected column comes from the fault's own account, taken by the test's own readers and never
by the code under test: the table's rows at the moment of the fault (SQL of the test's own, after
the killed sink's server backend is gone, so that nothing it sent can still land), the consumer
group's committed offsets at that moment (a Kafka client of the test's own), and the run's records
in Kafka (tests/oracle.py). From these the test knows which record each row holds and what a
restarted sink will read again, so it knows what the table must end with; it checks that the
table does end so (SQL again), then that the verdict counted exactly that.

* the reference sink SIGKILLed mid-run, its group's last offset commits undone (as a kill between
  a batch's database commit and its offset commit leaves them), and restarted: nothing lost, no
  duplicate row; the rows of the run are exactly the run's records in Kafka, one each; the
  restarted sink found "already there" exactly the rows written past the rewound offsets;
* PostgreSQL crashed mid-run and started again: the sink retried (each failed write logged), then
  nothing lost, no duplicate row;
* a naive sink (tests/naive_sink.py: auto-commit before the write, one INSERT per message, no key)
  killed twice and restarted: once while it had written past its committed offsets (those rows
  come twice), once while it had committed past what it had written (those never come) — the
  verdict's lost and duplicated equal the account's, both > 0: FAIL.

The numbers of the fault matrix in docs/sink-faults.md come from these tests (``pytest -s`` prints
each row).
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg.conninfo import make_conninfo

from ingestload.http.client import IngestApiClient
from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.sink.postgres import EmbeddedPostgres
from ingestload.sink.running import SinkProcess
from ingestload.testing import describe_output, locust_command
from tests.oracle import read_copies

pytestmark = pytest.mark.e2e

NAIVE_SINK = Path(__file__).resolve().parents[1] / "naive_sink.py"
TOPICS_OF = Catalogue.load().topics
PARTITIONS = 3
#: A killed consumer's partitions come back after its session times out: 1 s, not 6 s.
FAST_REJOIN = ("session.timeout.ms=1000", "heartbeat.interval.ms=200")
REFERENCE = "ingestload_messages"
#: Offsets per partition the reference sink's group is set back by at its kill.
REWIND = 300
#: Records that a table holds more than once.
COPIES = (
    "SELECT count(*) FROM (SELECT 1 FROM {} GROUP BY topic, kafka_partition, kafka_offset "
    "HAVING count(*) > 1) AS copies"
)


def named(dsn: str, application: str) -> str:
    """``dsn`` with an application name, by which the test finds the sink's server backends."""
    return make_conninfo(dsn, application_name=application)


# -- the run -------------------------------------------------------------------------------------


def start_run(root, kafka, prefix, tmp_path, dsn, run_id, *sink_args, rate=2000, seconds=5):
    """A headless Locust run on the Kafka path judging the storage hop (the database's address in
    the environment, as a user gives a secret); returns the process."""
    args = [
        *("--headless", "-t", f"{seconds}s", "--only-summary", "-u", "1", "-r", "1"),
        *("--rate", str(rate), "--kafka-bootstrap", kafka, "--topic-prefix", prefix),
        *("--run-id", run_id, "--verdict-file", str(tmp_path / "verdict.json"), "--sink-wait", "60s"),
        *sink_args,
    ]
    return subprocess.Popen(
        locust_command(root / "locustfiles" / "kafka.py", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "INGESTLOAD_SINK": dsn},
    )


def finish_run(process, tmp_path, timeout=150):
    """Wait for the run; returns (completed process, verdict document)."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    done = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    verdict_file = tmp_path / "verdict.json"
    assert verdict_file.exists(), describe_output(done)
    return done, json.loads(verdict_file.read_text())


def sink_process(tmp_path, kafka, dsn, args):
    """A reference sink (``ingestload sink``) whose log is in the test's own directory, not left
    in /tmp."""
    sink = SinkProcess(kafka, dsn, args)
    sink.log_path.unlink()
    sink.log_path = tmp_path / "sink.log"
    sink.log_path.touch()
    return sink


def prepared_topics(kafka, prefix):
    topics = TOPICS_OF(prefix)
    ensure_topics({"bootstrap.servers": kafka}, topics, PARTITIONS)
    return topics


# -- the account: the test's own SQL and Kafka client ---------------------------------------------


def scalar(dsn, sql, params=()):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()[0]


def wait_rows(dsn, sql, params, at_least, timeout=60.0):
    """Until ``sql`` (a count) reaches ``at_least``; the fault's trigger."""
    deadline = time.monotonic() + timeout
    while (n := scalar(dsn, sql, params)) < at_least:
        assert time.monotonic() < deadline, f"{n} rows (< {at_least}) after {timeout:g}s"
        time.sleep(0.05)
    return n


def wait_backends_gone(dsn, application, timeout=30.0):
    """Until the server has no backend of ``application`` left: what a killed sink sent is then in
    the table or never will be (an INSERT it sent just before dying may still commit until then)."""
    deadline = time.monotonic() + timeout
    while scalar(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application,)):
        assert time.monotonic() < deadline, f"backends of {application} still there after {timeout:g}s"
        time.sleep(0.02)


def coordinates(dsn, table, where="", params=()):
    """The table's rows as a multiset of where each record was read: (topic, partition, offset) → rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT topic, kafka_partition, kafka_offset FROM {table} {where}", params
        ).fetchall()
    return Counter((t, p, o) for t, p, o in rows)


class GroupOffsets:
    """The test's own view of a consumer group's committed offsets (it never joins the group)."""

    def __init__(self, kafka, group, topics):
        self.bootstrap, self.group = kafka, group
        self.consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "enable.auto.commit": False})
        self.partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]

    def now(self):
        """(topic, partition) → the next offset the group would read (0: nothing committed)."""
        answer = self.consumer.committed(self.partitions, timeout=10)
        return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in answer}

    def settled(self):
        """The committed offsets once a second read 0.3 s later agrees (a commit the killed consumer
        sent just before dying is then in)."""
        first = self.now()
        while True:
            time.sleep(0.3)
            second = self.now()
            if second == first:
                return second
            first = second

    def rewind(self, offsets, timeout=30.0):
        """Commit ``offsets`` for the group as a member of it (it takes commits from members only):
        join, get every partition (the killed member timed out), commit, leave."""
        topics = sorted({t for t, _ in offsets})
        member = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                **dict(prop.split("=") for prop in FAST_REJOIN),
            }
        )
        try:
            member.subscribe(topics)
            deadline = time.monotonic() + timeout
            while len(member.assignment()) < len(offsets):
                assert time.monotonic() < deadline, "the group never gave the test its partitions"
                member.poll(0.1)
            member.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        finally:
            member.close()

    def close(self):
        self.consumer.close()


def account(written, committed, records):
    """What a sink restarted from ``committed`` leaves in the table, per message, when it writes
    every record from there to the end once: the rows ``written`` before (by coordinates) plus one
    per record at or past the committed offset. ``records``: the oracle's copies of the run."""
    by_place = {(c.topic, c.partition, c.offset): (c.producer, c.seq) for c in records}
    rows = Counter()
    for place, n in written.items():
        rows[place] += n
    for place in by_place:
        topic, partition, offset = place
        if offset >= committed.get((topic, partition), 0):
            rows[place] += 1
    per_message = Counter()
    for place, n in rows.items():
        per_message[by_place[place]] += n
    acked = set(by_place.values())
    return {
        "rows": rows,
        "lost": len(acked - set(per_message)),
        "duplicated": sum(n - 1 for n in per_message.values() if n > 1),
    }


def at_kill(written, committed):
    """(read again, never written) at a kill: rows at or past the committed offset of their partition
    (a restarted sink reads those records again), and records below it that no row holds (a
    restarted sink never reads those). Offsets start at 0: each test's topics are new."""
    reread = sum(n for (t, p, o), n in written.items() if o >= committed.get((t, p), 0))
    held = {}
    for t, p, o in written:
        held.setdefault((t, p), set()).add(o)
    unwritten = sum(
        sum(1 for o in range(end) if o not in held.get(place, ())) for place, end in committed.items()
    )
    return reread, unwritten


def stopped_stats(log):
    """The counters of a reference sink's last "stopped" line (the restarted one's)."""
    line = [line for line in log.splitlines() if "ingestload sink: stopped;" in line][-1]
    words = (
        line.split("stopped;", 1)[1]
        .strip()
        .removeprefix("sink: ")
        .replace("already there", "already_there")
        .replace("dead letters", "dead")
    )
    parts = words.split()
    return {parts[i]: int(parts[i + 1].replace(",", "")) for i in range(0, len(parts) - 1, 2)}


def wait_for_state(dsn, table, offsets, want, *, margin=20, timeout=30.0):
    """Until the naive sink is in the state ``want`` on some partition: ``"ahead"`` — it wrote at
    least ``margin`` records past its committed offset (a kill now writes them twice) — or
    ``"behind"`` — it committed at least ``margin`` records past what it wrote (a kill now loses
    them). Only a trigger: the account is taken after the kill."""
    deadline = time.monotonic() + timeout
    sql = f"SELECT topic, kafka_partition, max(kafka_offset) + 1 FROM {table} GROUP BY 1, 2"
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            # Each read in the order that can only understate the gap (both only grow).
            if want == "ahead":
                written = {(t, p): end for t, p, end in conn.execute(sql).fetchall()}
                committed = offsets.now()
            else:
                committed = offsets.now()
                written = {(t, p): end for t, p, end in conn.execute(sql).fetchall()}
            for place, end in written.items():
                gap = end - committed.get(place, 0)
                if (gap if want == "ahead" else -gap) >= margin:
                    return
            if want == "behind":
                for place, at in committed.items():
                    if place not in written and at >= margin:
                        return
            time.sleep(0.005)
    raise AssertionError(f"the naive sink was never {want} by {margin} within {timeout:g}s")


@contextlib.contextmanager
def naive_sink(kafka, dsn, group, table, topics):
    """tests/naive_sink.py, restartable: yields a function that (re)starts it and returns it once
    the group gave it its partitions; killed (SIGKILL) on leaving."""
    processes = []
    env = {**os.environ, "NAIVE_SINK_DSN": dsn}

    def start():
        process = subprocess.Popen(
            [sys.executable, str(NAIVE_SINK), kafka, group, table, ",".join(topics)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        processes.append(process)
        assert process.stdout.readline().strip() == "ready"
        assert process.stdout.readline().startswith("assigned ")
        return process

    try:
        yield start
    finally:
        for process in processes:
            kill(process)


def kill(process):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def assert_one_row_each(done, verdict, records, final):
    """A run the sink lost nothing of: exit 0, every verdict PASS; the table holds each of the run's
    records in Kafka exactly once (``final``: the test's own read of it), and the verdict says so."""
    stored = verdict["sink"]
    assert done.returncode == 0, describe_output(done)
    assert len(records) == len({(c.producer, c.seq) for c in records}) == verdict["acked"] > 2000
    assert final == Counter({(c.topic, c.partition, c.offset): 1 for c in records})
    assert (stored["status"], stored["acked"], stored["stored"], stored["rows"]) == (
        "PASS",
        len(records),
        len(records),
        len(records),
    )
    assert stored["lost"] == stored["duplicated"] == stored["corrupted"] == stored["dead_lettered"] == 0
    assert (verdict["status"], verdict["overall"]["status"]) == ("PASS", "PASS")


# -- the matrix ----------------------------------------------------------------------------------


def test_reference_sink_killed_mid_run_and_restarted_loses_and_duplicates_nothing(
    kafka, postgres, prefix, root, tmp_path
):
    """SIGKILL the reference sink once 2,000 rows of the run are in its table, set its group's
    offsets back by REWIND per partition, restart it: it had committed nothing it had not written;
    the restarted sink found "already there" exactly the rows at or past the rewound offsets and
    added none of them again; the verdict PASSes with lost = duplicated = 0; the run's rows are
    exactly its records in Kafka, one row each (the test's SQL and Kafka reader)."""
    topics, run_id, group = prepared_topics(kafka, prefix), uuid.uuid4().hex[:16], f"{prefix}sink"
    application = f"ref-{prefix}"
    dsn = named(postgres, application)
    sink = sink_process(
        tmp_path,
        kafka,
        dsn,
        [
            *("--topic-prefix", prefix, "--sink-group", group, "--sink-topics", ",".join(topics)),
            *(arg for prop in FAST_REJOIN for arg in ("--kafka-config", prop)),
        ],
    )
    sink.start()
    offsets = GroupOffsets(kafka, group, topics)
    try:
        run = start_run(root, kafka, prefix, tmp_path, postgres, run_id, "--sink-group", group)
        count = f"SELECT count(*) FROM {REFERENCE} WHERE run_id = %s"
        wait_rows(postgres, count, (run_id,), 2000)
        sink.kill()
        wait_backends_gone(postgres, application)
        written = coordinates(postgres, REFERENCE, "WHERE run_id = %s", (run_id,))
        committed = offsets.settled()
        # A kill between a batch's database commit and its offset commit is a window of
        # milliseconds; the rewind makes it wide: the last REWIND offsets of each partition
        # committed in the database and not in Kafka, as if the crash had come just so.
        rewound = {place: max(0, at - REWIND) for place, at in committed.items()}
        offsets.rewind(rewound)
        sink.start()
        done, verdict = finish_run(run, tmp_path)
        sink.stop()
    finally:
        sink.kill()
        offsets.close()
    records = read_copies(kafka, topics, run_id)  # an independent reader of what Kafka holds
    unwritten = at_kill(written, committed)[1]
    reread = at_kill(written, rewound)[0]
    final = coordinates(postgres, REFERENCE, "WHERE run_id = %s", (run_id,))
    stored = verdict["sink"]
    print(
        f"\nreference sink SIGKILLed at {sum(written.values()):,} rows: committed and not written "
        f"{unwritten}, read again {reread} (kept once: keyed); verdict {stored['status']} lost "
        f"{stored['lost']} duplicated {stored['duplicated']} of {stored['acked']:,}"
    )
    assert unwritten == 0  # it commits only what it wrote
    assert reread > 0
    assert_one_row_each(done, verdict, records, final)
    assert stopped_stats(sink.log())["already_there"] == reread


def test_postgres_crashed_mid_run_and_restarted_the_sink_retries_and_loses_nothing(
    kafka, prefix, root, tmp_path
):
    """Crash PostgreSQL (SIGKILL to the postmaster) once 2,000 rows of the run are in, start it
    again once the sink logged a failed write and a failed retry: every failed write was logged and
    retried; the verdict PASSes; the run's rows are exactly its records in Kafka, one row each."""
    topics, run_id, group = prepared_topics(kafka, prefix), uuid.uuid4().hex[:16], f"{prefix}sink"
    with EmbeddedPostgres() as db:
        sink = sink_process(
            tmp_path,
            kafka,
            db.dsn,
            ["--topic-prefix", prefix, "--sink-group", group, "--sink-topics", ",".join(topics)],
        )
        sink.start()
        try:
            run = start_run(root, kafka, prefix, tmp_path, db.dsn, run_id, "--sink-group", group)
            count = f"SELECT count(*) FROM {REFERENCE} WHERE run_id = %s"
            at_crash = wait_rows(db.dsn, count, (run_id,), 2000)
            db.crash()
            deadline = time.monotonic() + 30
            while sink.log().count("failed (") < 2:  # the fault's event: a write failed, and its retry
                assert time.monotonic() < deadline, sink.log()[-2000:]
                time.sleep(0.05)
            db.start()
            done, verdict = finish_run(run, tmp_path)
            sink.stop()
        finally:
            sink.kill()
        final = coordinates(db.dsn, REFERENCE, "WHERE run_id = %s", (run_id,))
    records = read_copies(kafka, topics, run_id)
    log = sink.log()
    failed = [line for line in log.splitlines() if "failed (" in line and "trying again" in line]
    stats = stopped_stats(log)
    stored = verdict["sink"]
    print(
        f"\nPostgreSQL crashed at ≥{at_crash:,} rows: {len(failed)} failed writes retried; account lost 0 "
        f"duplicated 0; verdict {stored['status']} lost {stored['lost']} duplicated "
        f"{stored['duplicated']} of {stored['acked']:,}"
    )
    assert len(failed) == stats["retries"] >= 1
    assert_one_row_each(done, verdict, records, final)


def test_naive_sink_killed_mid_run_its_losses_and_duplicates_are_counted_exactly(
    kafka, postgres, prefix, root, tmp_path
):
    """The naive sink (auto-commit before the write, one INSERT per message, no key) writes more
    slowly than the run produces. It is SIGKILLed twice and restarted each time: first while it has
    written past its committed offsets, then while it has committed past what it wrote. The account
    at the last kill (its table, its group's committed offsets, the run's records) says what the
    table ends with — the test checks the table does — and so how many messages are lost and how
    many rows are copies; the verdict (judging its table by --sink-table/--sink-column, its group)
    counts exactly those, both > 0: FAIL, exit 3."""
    topics, run_id = prepared_topics(kafka, prefix), uuid.uuid4().hex[:16]
    group, table = f"{prefix}naive", "naive_" + prefix.replace("-", "_").strip("_")
    application = f"naive-sink-{table}"
    offsets = GroupOffsets(kafka, group, topics)
    try:
        with naive_sink(kafka, postgres, group, table, topics) as start:
            process = start()
            run = start_run(
                root, kafka, prefix, tmp_path, postgres, run_id,
                *("--sink-group", group, "--sink-table", table, "--sink-column", "body"),
                "--sink-dead-letters=",
            )  # fmt: skip
            wait_rows(postgres, f"SELECT count(*) FROM {table}", (), 1000)
            kills = 0
            for want in ("ahead", "behind"):
                for _ in range(5):  # the state may pass between the look and the kill: kill again
                    wait_for_state(postgres, table, offsets, want)
                    kill(process)
                    kills += 1
                    wait_backends_gone(postgres, application)
                    written = coordinates(postgres, table)
                    committed = offsets.settled()
                    process = start()
                    reread, unwritten = at_kill(written, committed)
                    if (reread if want == "ahead" else unwritten) > 0:
                        break
                if want == "ahead":  # the copies are in before the next kill can skip them
                    wait_rows(postgres, COPIES.format(table), (), 1)
            done, verdict = finish_run(run, tmp_path)
    finally:
        offsets.close()
    records = read_copies(kafka, topics, run_id)
    expected = account(written, committed, records)
    final = coordinates(postgres, table)
    stored = verdict["sink"]
    print(
        f"\nnaive sink SIGKILLed {kills} times, last at {sum(written.values()):,} rows: account lost "
        f"{expected['lost']} duplicated {expected['duplicated']}; verdict {stored['status']} lost "
        f"{stored['lost']} duplicated {stored['duplicated']} of {stored['acked']:,}"
    )
    assert done.returncode == 3, describe_output(done)
    assert len(records) == len({(c.producer, c.seq) for c in records}) == verdict["acked"]
    assert final == expected["rows"]  # the account holds: the table is what it says
    assert expected["lost"] > 0
    assert expected["duplicated"] > 0
    assert (stored["lost"], stored["duplicated"]) == (expected["lost"], expected["duplicated"])
    assert stored["stored"] == len(records) - expected["lost"]
    assert stored["rows"] == sum(final.values())
    assert stored["corrupted"] == stored["dead_lettered"] == 0
    assert (verdict["status"], stored["status"], verdict["overall"]["status"]) == ("PASS", "FAIL", "FAIL")


def test_records_postgresql_cannot_store_are_dead_lettered_not_retried_for_ever(
    kafka, postgres, prefix, tmp_path
):
    """Two poison records among 50 good ones on one partition: a valid message holding U+0000 in a
    string (valid JSON that jsonb refuses) and a value that is not JSON and holds a NUL byte (which
    no PostgreSQL text holds). The reference sink writes the 50 and dead-letters exactly those two,
    at the offsets the test produced them, with their reasons — no failed write, no retry (before:
    the batch failed and was retried for ever, the partition stalled)."""
    catalogue = Catalogue.load()
    topic = f"{prefix}movementData"
    ensure_topics({"bootstrap.servers": kafka}, [topic], 1)
    client = IngestApiClient(MessageFactory(catalogue, topic_prefix=prefix))
    client.begin_run(uuid.uuid4().hex[:16])
    producer = Producer({"bootstrap.servers": kafka})
    bodies = [body for t, _, body in client._render(400) if t == topic][:51]
    for body in bodies[:50]:
        producer.produce(topic, body)
    poison = json.loads(bodies[50])
    poison["Header"]["MessageId"] = "bad\u0000id"
    producer.produce(topic, json.dumps(poison).encode())  # offset 50
    producer.produce(topic, b"not JSON \x00 at all")  # offset 51
    producer.flush(30)
    table = "poison_" + prefix.replace("-", "_").strip("_")
    args = ["--topic-prefix", prefix, "--sink-topics", topic, "--sink-group", f"{prefix}sink"]
    sink = sink_process(
        tmp_path, kafka, postgres, [*args, "--sink-table", table, "--sink-dead-letters", f"{table}_dead"]
    )
    sink.start()
    try:
        wait_rows(postgres, f"SELECT count(*) FROM {table}_dead", (), 2)
        wait_rows(postgres, f"SELECT count(*) FROM {table}", (), 50)
        sink.stop()
    finally:
        sink.kill()
    with psycopg.connect(postgres, autocommit=True) as conn:
        written = sorted(o for (o,) in conn.execute(f"SELECT kafka_offset FROM {table}"))
        dead = conn.execute(f"SELECT kafka_offset, reason FROM {table}_dead ORDER BY 1").fetchall()
    print(f"\npoison records at offsets 50, 51: {len(written)} rows; dead letters {dead}")
    assert written == list(range(50))
    assert [offset for offset, _ in dead] == [50, 51]
    assert "U+0000" in dead[0][1]
    assert dead[1][1].startswith("not JSON")
    assert "failed (" not in sink.log()
