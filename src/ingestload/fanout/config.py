"""Settings of ``ingestload fanout``: command-line flags, ``INGESTLOAD_FANOUT_…`` variables, validation.

Kafka options are the ones every ingestload command takes (``--kafka-bootstrap``,
``--kafka-config KEY=VALUE``, ``--kafka-config-file``, ``INGESTLOAD_KAFKA_PROP_*``, secrets
never shown), parsed by :class:`ingestload.settings.Settings`; the gateway adds its own, each
with an ``INGESTLOAD_FANOUT_<NAME>`` variable (``--queue-limit`` ↔ ``INGESTLOAD_FANOUT_QUEUE_LIMIT``).
Everything is checked before anything starts; a bad value names the option, the value and
what is allowed.

Example::

    settings = FanoutSettings.from_args(["--port", "0", "--slow-policy", "disconnect"], environ={})
    settings.consumer_config()["enable.auto.commit"]      # "false": assignment, no group
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ingestload.api.config import SHARED, add_server_options
from ingestload.errors import ConfigError
from ingestload.fanout.hub import POLICIES, PushFaults
from ingestload.kafka.config import CONSUMER_DEFAULTS, redact_config
from ingestload.settings import (
    OPTIONS,
    Option,
    Settings,
    _boolean,
    _number,
)

FANOUT_ENV_PREFIX = "INGESTLOAD_FANOUT_"
#: Consumer settings for a live view: fetch as soon as anything is there (low latency), keep
#: up to 64 MB prefetched so a burst does not stall the partition; any can be overridden.
FANOUT_CONSUMER_DEFAULTS: Mapping[str, str] = {
    **CONSUMER_DEFAULTS,
    "fetch.wait.max.ms": "20",
    "queued.max.messages.kbytes": "65536",
}


class FanoutOption(Option):
    """An option of ``ingestload fanout``; its environment variable is ``INGESTLOAD_FANOUT_<NAME>``."""

    @property
    def env(self) -> str:
        return FANOUT_ENV_PREFIX + self.dest.upper()


FANOUT_OPTIONS: tuple[FanoutOption, ...] = (
    FanoutOption("--host", "127.0.0.1", "Address to listen on.", "ADDRESS"),
    FanoutOption("--port", "8765", "Port for WebSockets (/v1/stream) and HTTP (/readyz, /stats).", "PORT"),
    FanoutOption("--workers", "1", "Worker processes, each with its own Kafka consumer (SO_REUSEPORT).", "N"),
    FanoutOption(
        "--topics",
        None,
        "Topics subscribers may choose from, comma-separated; default: the catalogue's (prefix + type).",
        "T1,T2",
    ),
    FanoutOption(
        "--queue-limit",
        "10000",
        "Most messages queued for one subscriber; beyond it --slow-policy acts.",
        "N",
    ),
    FanoutOption(
        "--slow-policy",
        "drop-oldest",
        "What a full subscriber queue does: drop-oldest (count sent to the subscriber) or disconnect.",
        "POLICY",
    ),
    FanoutOption(
        "--write-buffer",
        "1048576",
        "Bytes waiting in a connection's socket buffer above which nothing more is written to it "
        "(its messages wait in its queue).",
        "BYTES",
    ),
    FanoutOption("--frame-messages", "1000", "Most messages in one WebSocket frame.", "N"),
    FanoutOption(
        "--progress-interval",
        "1",
        "Seconds between progress frames to a subscriber that is caught up.",
        "SECONDS",
    ),
    FanoutOption(
        "--max-subscribers", "10000", "Most WebSocket connections per worker (more are refused).", "N"
    ),
    FanoutOption("--create-topics", "true", "Create missing topics at start (true/false).", "BOOL"),
    FanoutOption(
        "--fault-skip-every", "0", "FAULT INJECTION: silently skip every Nth message pushed (0 = off).", "N"
    ),
    FanoutOption(
        "--fault-duplicate-every", "0", "FAULT INJECTION: push every Nth message twice (0 = off).", "N"
    ),
    FanoutOption(
        "--fault-id",
        None,
        "FAULT INJECTION: only towards subscribers whose subscribe 'id' is this (default: every one).",
        "ID",
    ),
)


@dataclass(frozen=True)
class FanoutSettings:
    """Validated settings of one ``ingestload fanout`` gateway."""

    kafka: Settings
    """Kafka connection, catalogue, topic prefix and partitions (shared with the other commands)."""
    embedded_broker: bool = False
    """No Kafka was named (flag or env): start the embedded broker for the gateway's lifetime."""
    host: str = "127.0.0.1"
    """Listen address."""
    port: int = 8765
    """Listen port (0: a free one)."""
    workers: int = 1
    """Worker processes."""
    topics: tuple[str, ...] | None = None
    """Topics served; ``None``: the catalogue's."""
    queue_limit: int = 10_000
    """Most messages queued per subscriber."""
    slow_policy: str = "drop-oldest"
    """drop-oldest or disconnect."""
    write_buffer: int = 1_048_576
    """Socket-buffer bytes above which a connection is not written to."""
    frame_messages: int = 1000
    """Most messages per frame."""
    progress_interval: float = 1.0
    """Seconds between progress frames."""
    max_subscribers: int = 10_000
    """Most connections per worker."""
    create_topics: bool = True
    """Create missing topics at start."""
    faults: PushFaults = field(default_factory=PushFaults)
    """Fault injection (off unless set)."""

    @classmethod
    def from_args(cls, argv: Sequence[str], environ: Mapping[str, str] | None = None) -> FanoutSettings:
        """Parse ``ingestload fanout`` arguments (``environ`` defaults to ``os.environ``)."""
        return cls.from_namespace(build_parser().parse_args(list(argv)), environ)

    @classmethod
    def from_namespace(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> FanoutSettings:
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for opt in FANOUT_OPTIONS:
            value = getattr(ns, opt.dest, None)
            raw[opt.dest] = environ.get(opt.env, opt.default) if value is None else value
        shared = {
            common.dest: getattr(ns, common.dest, None)
            or (None if common.multiple else environ.get(common.env))
            for common in OPTIONS
            if common.dest in SHARED
        }
        embedded = not shared["kafka_bootstrap"]
        if embedded:
            shared["kafka_bootstrap"] = "127.0.0.1:1"  # replaced by the embedded broker's address
        kafka = Settings.from_options(argparse.Namespace(**shared), environ)

        host = str(raw["host"]).strip()
        if not host:
            raise ConfigError("--host: empty; give an address such as 127.0.0.1 or 0.0.0.0")
        port = _number(
            "--port", raw["port"], int, minimum=0, what="a port number 0–65535 (0 = any free port)"
        )
        if port > 65535:
            raise ConfigError(f"--port: {raw['port']!r} is not allowed; expected a port number 0–65535")
        topics = None
        if raw["topics"]:
            topics = tuple(sorted({t.strip() for t in str(raw["topics"]).split(",") if t.strip()}))
            bad = [t for t in topics if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t)]
            if not topics or bad:
                raise ConfigError(
                    f"--topics: {raw['topics']!r} must be comma-separated Kafka topic names "
                    "(letters, digits, '.', '_', '-')"
                )
        policy = str(raw["slow_policy"]).strip()
        if policy not in POLICIES:
            raise ConfigError(
                f"--slow-policy: {policy!r} is not allowed; expected one of {', '.join(POLICIES)}"
            )
        label = raw["fault_id"]
        return cls(
            kafka=kafka,
            embedded_broker=embedded,
            host=host,
            port=port,
            workers=_number("--workers", raw["workers"], int, minimum=1, what="an integer ≥ 1"),
            topics=topics,
            queue_limit=_number("--queue-limit", raw["queue_limit"], int, minimum=1, what="an integer ≥ 1"),
            slow_policy=policy,
            write_buffer=_number(
                "--write-buffer", raw["write_buffer"], int, minimum=1024, what="bytes ≥ 1024"
            ),
            frame_messages=_number(
                "--frame-messages", raw["frame_messages"], int, minimum=1, what="an integer ≥ 1"
            ),
            progress_interval=_number(
                "--progress-interval", raw["progress_interval"], float, minimum=0.01, what="seconds ≥ 0.01"
            ),
            max_subscribers=_number(
                "--max-subscribers", raw["max_subscribers"], int, minimum=1, what="an integer ≥ 1"
            ),
            create_topics=_boolean("--create-topics", raw["create_topics"]),
            faults=PushFaults(
                skip_every=_number(
                    "--fault-skip-every",
                    raw["fault_skip_every"],
                    int,
                    minimum=0,
                    what="an integer ≥ 0 (0 = off)",
                ),
                duplicate_every=_number(
                    "--fault-duplicate-every",
                    raw["fault_duplicate_every"],
                    int,
                    minimum=0,
                    what="an integer ≥ 0 (0 = off)",
                ),
                label=str(label) if label else None,
            ),
        )

    def with_bootstrap(self, bootstrap: str) -> FanoutSettings:
        """The same settings against ``bootstrap`` (the embedded broker's address)."""
        return replace(self, kafka=replace(self.kafka, kafka_bootstrap=bootstrap))

    def consumer_config(self, client_id: str = "ingestload-fanout") -> dict[str, str]:
        """The gateway's consumer: assignment only (a group id librdkafka wants, never joined),
        no commits, live-view fetch defaults, then the user's properties."""
        return {
            **FANOUT_CONSUMER_DEFAULTS,
            **self.kafka.admin_config(),
            "group.id": f"{client_id}-{os.getpid()}",
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "client.id": client_id,
        }

    def describe(self) -> str:
        """One secret-free line for the startup log."""
        props = ", ".join(f"{k}={v}" for k, v in sorted(redact_config(self.kafka.kafka_config).items()))
        return (
            f"kafka={self.kafka.kafka_bootstrap} workers={self.workers} queue_limit={self.queue_limit} "
            f"slow_policy={self.slow_policy} write_buffer={self.write_buffer} "
            f"faults={self.faults.describe()}" + (f" kafka_config=[{props}]" if props else "")
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``ingestload fanout`` argument parser (every default is applied later, in validation)."""
    parser = argparse.ArgumentParser(
        prog="ingestload fanout",
        description="The reference fan-out gateway: Kafka → WebSocket subscribers, exact windows. "
        "Without --kafka-bootstrap (or INGESTLOAD_KAFKA_BOOTSTRAP) it starts the embedded broker.",
    )
    add_server_options(parser, FANOUT_OPTIONS)
    return parser
