"""The storage hop's options: which database and table to judge, and how to know the sink caught up.

``--sink`` names the database (a ``postgresql://`` URL or libpq ``key=value`` string; it may hold a
password, so it is a secret: give it as ``INGESTLOAD_SINK``, or leave the password out and let
libpq read ``PGPASSWORD`` / ``~/.pgpass``). ``ingestload run --sink`` with no value starts a
PostgreSQL of its own and the reference sink (:data:`EMBEDDED`).

Example::

    sink = SinkSettings.from_values(read(OPTIONS, namespace, os.environ))
    if sink.enabled:
        target = sink.target()
"""

from __future__ import annotations

from typing import Any

from ingestload.errors import ConfigError
from ingestload.options import (
    Option,
    Values,
    build,
    declared,
    duration,
    option,
    optional_text,
    settings_class,
    text,
    topic_list,
)
from ingestload.sink.table import COLUMN, DEAD_LETTERS, TABLE, SinkTarget, quoted

#: ``--sink embedded`` (what ``ingestload run --sink`` with no value means): a PostgreSQL of the run's own.
EMBEDDED = "embedded"
#: The reference sink's consumer group.
GROUP = "ingestload-sink"


def _dsn(flag: str, value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    dsn = str(value).strip()
    if dsn == EMBEDDED:
        return dsn
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except Exception:
        raise ConfigError(
            f"{flag}: not a PostgreSQL connection string (e.g. postgresql://user@host:5432/db, "
            "or host=… dbname=…); the value is not shown, it may hold a password"
        ) from None
    if not (dsn.startswith(("postgresql://", "postgres://")) or "=" in dsn):
        raise ConfigError(f"{flag}: give a postgresql:// URL or key=value pairs (the value is not shown)")
    return dsn


def _name(what: str) -> Any:
    def parse(flag: str, value: Any) -> str:
        name = text(flag, value)
        try:
            quoted(name, what)
        except Exception as e:
            raise ConfigError(f"{flag}: {e}") from None
        return name

    return parse


def _optional_name(flag: str, value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    return str(_name("table")(flag, value))


@settings_class
class SinkSettings:
    """The storage hop: the database, the table (or query), the sink's consumer group, the wait."""

    dsn: str | None = option(
        "--sink",
        None,
        _dsn,
        "Judge the storage hop too: the PostgreSQL database the sink writes to (postgresql://… or "
        "key=value; a secret: prefer INGESTLOAD_SINK, or PGPASSWORD for the password). "
        "`ingestload run --sink` alone starts a PostgreSQL and the reference sink of its own.",
        "DSN",
        secret=True,
    )
    """The database (``None``: the storage hop is not judged; :data:`EMBEDDED`: the run's own)."""
    table: str = option(
        "--sink-table", TABLE, _name("table"), "The table holding one row per message.", "TABLE"
    )
    """The table holding one row per message."""
    column: str = option(
        "--sink-column",
        COLUMN,
        _name("column"),
        "The column of --sink-table that holds the message as JSON (json, jsonb or text).",
        "COLUMN",
    )
    """The column holding the message."""
    query: str | None = option(
        "--sink-query",
        None,
        optional_text,
        "Instead of --sink-table/--sink-column: a query whose first column is the message (JSON), "
        "optionally followed by when the row was written and the Kafka record's timestamp.",
        "SQL",
    )
    """A query returning the messages (then the table and column are not used)."""
    dead_letters: str | None = option(
        "--sink-dead-letters",
        DEAD_LETTERS,
        _optional_name,
        "The dead-letter table (the reference sink's layout: body, reason); messages of the run "
        "found there count as dead-lettered. Empty: none.",
        "TABLE",
    )
    """The dead-letter table, or ``None``."""
    group: str | None = option(
        "--sink-group",
        GROUP,
        optional_text,
        "The sink's Kafka consumer group: the verdict waits until its committed offsets reach "
        "Kafka's end. Empty: unknown (then missing rows are INCONCLUSIVE, never lost).",
        "GROUP",
    )
    """The sink's consumer group (``None``: its progress cannot be known)."""
    topics: tuple[str, ...] | None = option(
        "--sink-topics",
        None,
        topic_list("gov-alarm,gov-fault"),
        "The topics the sink consumes (comma-separated); default: every topic of the run.",
        "TOPICS",
    )
    """The topics the sink consumes (``None``: the run's)."""
    wait: float = option(
        "--sink-wait",
        "60s",
        duration,
        "How long the storage verdict waits, after the drain, for the sink to catch up with Kafka.",
        "DURATION",
    )
    """Seconds to wait for the sink to catch up."""
    dead_letters_named: bool = False
    """The user named the dead-letter table: its absence is then an error, not "none"."""

    @classmethod
    def from_values(cls, values: Values) -> SinkSettings:
        named = values.given(declared(cls)["dead_letters"])
        return build(cls, values, dead_letters_named=named)

    @property
    def enabled(self) -> bool:
        return self.dsn is not None

    def target(self, dsn: str | None = None) -> SinkTarget:
        """Where the rows are (``dsn`` instead of :attr:`dsn`: the embedded database's address)."""
        address = dsn or self.dsn
        if address is None or address == EMBEDDED:
            raise ConfigError("the storage hop has no database yet (--sink)")
        return SinkTarget(
            address,
            table=self.table,
            column=self.column,
            query=self.query,
            dead_letters=self.dead_letters,
            dead_letters_required=self.dead_letters_named,
        )


OPTIONS: tuple[Option[Any], ...] = tuple(declared(SinkSettings).values())
SINK = declared(SinkSettings)["dsn"]
