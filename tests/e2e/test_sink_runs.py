"""The storage hop in whole runs: `ingestload run --sink` on its own PostgreSQL, a named database
judged during a run and again later, and bad input refused before anything starts."""

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from ingestload.messages.catalogue import Catalogue
from ingestload.sink.running import run_sink
from ingestload.testing import describe_output
from tests.oracle import read_copies

pytestmark = pytest.mark.e2e

#: A password in the connection string: the embedded server trusts its user and ignores it, and it
#: must appear nowhere we print or write.
SECRET = "hunter2-never-shown"


def ingestload(
    root: Path, *args: str, env: dict | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    import os

    command = [sys.executable, "-m", "ingestload.cli", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=root, env={**os.environ, **(env or {})}
    )


def with_password(dsn: str) -> str:
    return dsn.replace("ingestload@", f"ingestload:{SECRET}@", 1)


def test_run_sink_alone_starts_postgresql_and_the_reference_sink_and_passes_every_hop(root, tmp_path):
    """`ingestload run --sink` on a fresh machine: its own PostgreSQL and reference sink, PASS for
    every hop, the table's counts printed — stored equal to what the Kafka verdict read back."""
    done = ingestload(root, "run", "--sink", "-t", "6s", "--rate", "400", "--reports", str(tmp_path))
    assert done.returncode == 0, describe_output(done)
    assert "embedded PostgreSQL at 127.0.0.1:" in done.stdout
    (verdict_file,) = tmp_path.glob("*/verdict.json")
    verdict = json.loads(verdict_file.read_text())
    sink = verdict["sink"]
    assert sink["status"] == "PASS", sink
    assert sink["stored"] == sink["acked"] == verdict["acked"] > 1000
    assert sink["lost"] == sink["duplicated"] == sink["corrupted"] == sink["dead_lettered"] == 0
    assert f"in table ingestload_messages: stored {sink['stored']:,} of {sink['acked']:,}" in done.stdout
    # Locust's stats row: Kafka → row latency; the HTML report's storage section
    assert "SINK     ingestload_messages" in done.stdout + done.stderr
    report = (verdict_file.parent / "report.html").read_text()
    assert "storage: PASS" in report
    assert f"stored={sink['stored']:,}" in report


def test_a_named_database_is_judged_during_the_run_and_again_later_exactly(
    kafka, postgres, prefix, root, tmp_path
):
    """A database named with INGESTLOAD_SINK (password included) and a reference sink of the test's
    own: the run's storage verdict PASSes with one row per message an independent Kafka reader
    finds; rows the test deletes and copies it adds are then counted exactly by `verify --sink`."""
    catalogue = Catalogue.load(None)
    topics = catalogue.topics(prefix)
    table = f"t_{prefix.strip('-').replace('-', '_')}"
    group = f"{prefix}sink"
    dsn = with_password(postgres)
    sink_args = (
        "--topic-prefix",
        prefix,
        "--sink-table",
        table,
        "--sink-dead-letters",
        f"{table}_dead",
        "--sink-group",
        group,
        "--sink-topics",
        ",".join(topics),
    )
    with run_sink(kafka, postgres, *sink_args) as sink:
        done = ingestload(
            root,
            "run",
            "-t",
            "6s",
            "--rate",
            "400",
            "--reports",
            str(tmp_path / "r"),
            "--kafka-bootstrap",
            kafka,
            "--topic-prefix",
            prefix,
            "--sink-table",
            table,
            "--sink-dead-letters",
            f"{table}_dead",
            "--sink-group",
            group,
            env={"INGESTLOAD_SINK": dsn},
        )
        sink_log = sink.log()
    assert done.returncode == 0, describe_output(done)
    (ledger,) = (tmp_path / "r").glob("*/ledger.json")
    run_id = ledger.parent.name
    verdict = json.loads((ledger.parent / "verdict.json").read_text())
    assert verdict["sink"]["status"] == "PASS", verdict["sink"]

    truth = {(c.producer, c.seq) for c in read_copies(kafka, topics, run_id)}
    with psycopg.connect(postgres, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute(f"SELECT id FROM {table} WHERE run_id = %s", (run_id,))]
    in_table = {(int(i.split(":")[1]), int(i.split(":")[2])) for i in ids}
    assert len(ids) == len(in_table) == len(truth) == verdict["sink"]["stored"]
    assert in_table == truth

    everything = (
        done.stdout + done.stderr + sink_log + "".join(p.read_text() for p in ledger.parent.iterdir())
    )
    assert SECRET not in everything

    # Three rows gone, one message written twice under another key, one changed: exactly that.
    with psycopg.connect(postgres, autocommit=True) as conn:
        gone = [
            r[0]
            for r in conn.execute(f"SELECT id FROM {table} WHERE run_id = %s ORDER BY id LIMIT 3", (run_id,))
        ]
        conn.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (gone,))
        conn.execute(
            f"INSERT INTO {table} (id, run_id, topic, kafka_partition, kafka_offset, body) "
            f"SELECT id || '#copy', run_id, topic, kafka_partition, kafka_offset, body FROM {table} "
            "WHERE run_id = %s AND id <> ALL(%s) ORDER BY id DESC LIMIT 1",
            (run_id, gone),
        )
        conn.execute(
            f"UPDATE {table} SET body = jsonb_set(body, '{{Header,EquipmentId}}', '\"tampered\"') "
            "WHERE id = (SELECT id FROM " + table + " WHERE run_id = %s AND id NOT LIKE '%%#copy' "
            "AND id <> ALL(%s) ORDER BY id LIMIT 1)",
            (run_id, gone),
        )
    again = ingestload(
        root,
        "verify",
        "--ledger",
        str(ledger),
        "--kafka-bootstrap",
        kafka,
        "--sink-table",
        table,
        "--sink-dead-letters",
        f"{table}_dead",
        "--sink-group",
        group,
        "--sink-wait",
        "10s",
        env={"INGESTLOAD_SINK": dsn},
    )
    assert again.returncode == 3, describe_output(again)
    assert "lost=3 duplicated=1 corrupted=1 dead_lettered=0" in again.stdout, again.stdout
    for gone_id in gone[:3]:
        producer, seq = gone_id.split(":")[1:]
        assert f"{int(producer):016x}#{seq}" in again.stdout
    assert SECRET not in again.stdout + again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--sink", "postgresql://ingestload@127.0.0.1:1/none"],
            "cannot connect to the sink database postgresql://ingestload@127.0.0.1:1/none",
        ),
        (["--sink-table", "no_such_table"], "--sink-table: there is no table 'no_such_table'"),
        (
            ["--sink-table", "sink_columns", "--sink-column", "payload"],
            "--sink-column: table 'sink_columns' has no column 'payload' (it has body, id)",
        ),
        (["--sink", "not a connection string"], "--sink: not a PostgreSQL connection string"),
    ],
    ids=["unreachable", "no-table", "no-column", "not-a-dsn"],
)
def test_a_database_that_cannot_be_judged_is_one_line_and_exit_2_before_load(
    postgres, root, tmp_path, args, message
):
    """An unreachable database, a missing table, a table without the message column: one line on
    stderr, exit 2, and no broker, API, sink or Locust started."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS sink_columns (id text, body jsonb)")
    args = args if args[0] == "--sink" else ["--sink", postgres, *args]
    started = time.monotonic()
    done = ingestload(root, "run", "--reports", str(tmp_path), *args, timeout=60)
    assert done.returncode == 2, describe_output(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, describe_output(done)
    assert lines[0].startswith(f"ingestload: error: {message}"), lines[0]
    for what in ("embedded Kafka broker at", "reference ingest API at", "Starting Locust", "PostgreSQL at"):
        assert what not in done.stdout + done.stderr
    print(f"{args[-1]!r}: {lines[0]!r} in {time.monotonic() - started:.1f}s")
