"""The tables of the storage hop: the reference sink's layout, and reading any table back.

The reference sink writes one row per message into ``ingestload_messages`` and one per rejected
message into ``ingestload_dead_letters``::

    ingestload_messages                          ingestload_dead_letters
    ─────────────────────────────────────        ─────────────────────────────────────────
    id              text  primary key            topic, kafka_partition, kafka_offset,
    run_id          text  (indexed; NULL:        item                  primary key
                           not ours)             reason          text
    topic, kafka_partition, kafka_offset         body            text
    kafka_timestamp timestamptz                  written_at      timestamptz
    body            jsonb
    written_at      timestamptz (clock_timestamp())

A user's own table is read the same way: a column that holds the message (``--sink-column``), or
a query whose first column is the message and whose optional second and third columns are when the
row was written and the Kafka record's timestamp (``--sink-query``). Reading streams through a
server-side cursor, so a table of millions of rows costs no more memory than one chunk.

Example::

    target = SinkTarget.of("postgresql://…/db", table="ingestload_messages", column="body")
    target.check()                                   # one clear line when it cannot be read
    for value, written_at, kafka_at in target.rows(run_id):
        …
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingestload.errors import DatabaseError

TABLE = "ingestload_messages"
DEAD_LETTERS = "ingestload_dead_letters"
COLUMN = "body"
#: Rows fetched per round trip when reading a table back.
CHUNK = 20_000

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")


def quoted(name: str, what: str = "table") -> str:
    """``name`` (``table`` or ``schema.table``) as a quoted SQL identifier; refuses anything else."""
    if not _IDENT.fullmatch(name):
        raise DatabaseError(f"{name!r} is not a {what} name (letters, digits, _ and one optional schema.)")
    return ".".join(f'"{part}"' for part in name.split("."))


def create_reference_tables(conn: Any, table: str = TABLE, dead_letters: str = DEAD_LETTERS) -> None:
    """Create the reference sink's two tables when missing (idempotent)."""
    t, d = quoted(table), quoted(dead_letters)
    index = quoted(table.split(".")[-1] + "_run_id", "index").split(".")[-1]
    with conn.transaction():
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {t} (
                id text PRIMARY KEY,
                run_id text,
                topic text NOT NULL,
                kafka_partition integer NOT NULL,
                kafka_offset bigint NOT NULL,
                kafka_timestamp timestamptz,
                body jsonb NOT NULL,
                written_at timestamptz NOT NULL DEFAULT clock_timestamp())"""
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {t} (run_id)")
        conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {d} (
                topic text NOT NULL,
                kafka_partition integer NOT NULL,
                kafka_offset bigint NOT NULL,
                item integer NOT NULL,
                reason text NOT NULL,
                body text,
                written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                PRIMARY KEY (topic, kafka_partition, kafka_offset, item))"""
        )


def connect(dsn: str, *, autocommit: bool = False, timeout: float = 5.0) -> Any:
    """A psycopg connection, or a :class:`DatabaseError` naming the database without its password."""
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.Error as e:
        raise DatabaseError(
            f"cannot connect to the sink database {shown_dsn(dsn)}: {_first_line(e)}"
        ) from None


def shown_dsn(dsn: str) -> str:
    """``dsn`` without its password (URL or ``key=value`` form), for messages."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:
        return "(a connection string that does not parse)"
    host, port, db = (
        parts.get("host") or "local socket",
        parts.get("port") or "5432",
        parts.get("dbname") or "",
    )
    user = parts.get("user")
    return f"postgresql://{str(user) + '@' if user else ''}{host}:{port}/{db}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dataclass(frozen=True)
class SinkTarget:
    """Where the storage hop's rows are: a database, and a table + column or a query."""

    dsn: str
    """The connection string (may hold a password: never shown; see :func:`shown_dsn`)."""
    table: str = TABLE
    """The table holding one row per message (ignored with :attr:`query`)."""
    column: str = COLUMN
    """The column holding the message as JSON (``json``, ``jsonb`` or text)."""
    query: str | None = None
    """A query returning the message as its first column (then optionally written-at and Kafka time)."""
    dead_letters: str | None = DEAD_LETTERS
    """The dead-letter table (reference layout), or ``None``."""
    dead_letters_required: bool = False
    """The user named the dead-letter table: its absence is an error, not "none"."""

    @property
    def name(self) -> str:
        """How reports name the table."""
        return "query" if self.query else self.table

    @property
    def reference(self) -> bool:
        """The reference layout (a ``run_id`` column to filter on, timestamps)."""
        return self.query is None and self._columns().issuperset({"run_id", "written_at", "kafka_timestamp"})

    def check(self) -> None:
        """Raise one clear :class:`DatabaseError` when the rows cannot be read as asked."""
        with connect(self.dsn, autocommit=True) as conn:
            if self.query is not None:
                try:
                    conn.execute(f"SELECT * FROM ({self.query}) AS q LIMIT 0")
                except Exception as e:
                    raise DatabaseError(
                        f"--sink-query does not run on {shown_dsn(self.dsn)}: {_first_line(e)}"
                    ) from None
            else:
                columns = self._columns(conn)
                if not columns:
                    raise DatabaseError(
                        f"--sink-table: there is no table {self.table!r} in {shown_dsn(self.dsn)} "
                        "(the reference sink creates it: ingestload sink)"
                    )
                if self.column not in columns:
                    raise DatabaseError(
                        f"--sink-column: table {self.table!r} has no column {self.column!r} "
                        f"(it has {', '.join(sorted(columns))})"
                    )
            if (
                self.dead_letters_required
                and self.dead_letters
                and not self._columns(conn, self.dead_letters)
            ):
                raise DatabaseError(f"--sink-dead-letters: there is no table {self.dead_letters!r}")

    def _columns(self, conn: Any = None, table: str | None = None) -> set[str]:
        table = table or self.table
        quoted(table)
        schema, _, name = table.rpartition(".")
        sql = "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND " + (
            "table_schema = %s" if schema else "table_schema = ANY (current_schemas(false))"
        )
        params = (name, schema) if schema else (name,)
        if conn is None:
            with connect(self.dsn, autocommit=True) as own:
                return {row[0] for row in own.execute(sql, params)}
        return {row[0] for row in conn.execute(sql, params)}

    def _select(self, run_id: str | None) -> tuple[str, tuple[Any, ...]]:
        if self.query is not None:
            return f"SELECT * FROM ({self.query}) AS q", ()
        column = quoted(self.column, "column")
        if self.reference:
            where, params = ("WHERE run_id = %s", (run_id,)) if run_id else ("", ())
            return (
                f"SELECT {column}::text, written_at, kafka_timestamp FROM {quoted(self.table)} {where}",
                params,
            )
        return f"SELECT {column}::text FROM {quoted(self.table)}", ()

    def rows(
        self, run_id: str | None = None
    ) -> Iterator[tuple[bytes | None, datetime | None, datetime | None]]:
        """Every row as (message bytes, written at, Kafka timestamp) — the times ``None`` when unknown."""
        sql, params = self._select(run_id)
        yield from _stream(self.dsn, sql, params)

    def dead_rows(self, run_id: str | None = None) -> Iterator[tuple[bytes | None, str]]:
        """Every dead letter as (message bytes, reason); nothing when there is no dead-letter table."""
        if not self.dead_letters or not self._columns(None, self.dead_letters):
            return
        marker = f"%{run_id}%" if run_id else "%"
        sql = f"SELECT body, reason FROM {quoted(self.dead_letters)} WHERE body LIKE %s"
        for value, reason, *_ in _stream(self.dsn, sql, (marker,)):
            yield value, str(reason)

    def count(self, run_id: str | None = None) -> int:
        """How many rows :meth:`rows` would read now (to tell when a sink has stopped writing)."""
        sql, params = self._select(run_id)
        with connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(f"SELECT count(*) FROM ({sql}) AS c", params).fetchone()
        return int(row[0]) if row else 0


def _stream(dsn: str, sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
    import psycopg

    try:
        with connect(dsn) as conn, conn.cursor(name="ingestload_readback") as cursor:
            cursor.itersize = CHUNK
            cursor.execute(sql, params)
            for row in cursor:
                value = row[0]
                if isinstance(value, str):
                    value = value.encode()
                elif value is not None and not isinstance(value, bytes):
                    value = _as_json(value)
                yield (value, *row[1:3]) if len(row) >= 3 else (value, *row[1:], *([None] * (3 - len(row))))
    except psycopg.Error as e:
        raise DatabaseError(f"cannot read the sink table from {shown_dsn(dsn)}: {_first_line(e)}") from None


def _as_json(value: Any) -> bytes:
    import orjson

    try:
        return orjson.dumps(value)
    except TypeError:
        return str(value).encode()
