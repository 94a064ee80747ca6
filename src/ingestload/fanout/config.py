"""Settings of ``ingestload fanout``: command-line flags, ``INGESTLOAD_FANOUT_…`` variables, validation.

Kafka options are the ones every ingestload command takes (``--kafka-bootstrap``,
``--kafka-config KEY=VALUE``, ``--kafka-config-file``, ``INGESTLOAD_KAFKA_PROP_*``, secrets
never shown), declared in :mod:`ingestload.kafka.settings` (no bootstrap: the embedded broker);
the gateway adds its own, each
with an ``INGESTLOAD_FANOUT_<NAME>`` variable (``--queue-limit`` ↔ ``INGESTLOAD_FANOUT_QUEUE_LIMIT``).
Everything is checked before anything starts; a bad value names the option, the value and
what is allowed.

Example::

    settings = FanoutSettings.from_args(["--port", "0", "--slow-policy", "disconnect"], environ={})
    settings.consumer_config()["enable.auto.commit"]      # "false": assignment, no group
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from ingestload import options as opts
from ingestload.errors import ConfigError
from ingestload.fanout.hub import POLICIES, PushFaults
from ingestload.kafka import settings as kafka
from ingestload.kafka.config import CONSUMER_DEFAULTS
from ingestload.kafka.settings import KafkaSettings
from ingestload.messages import settings as messages
from ingestload.options import Option, boolean, number, option, optional_text, settings_class, topic_list

FANOUT_ENV_PREFIX = "INGESTLOAD_FANOUT_"
#: Consumer settings for a live view: fetch as soon as anything is there (low latency), keep
#: up to 64 MB prefetched so a burst does not stall the partition; any can be overridden.
FANOUT_CONSUMER_DEFAULTS: Mapping[str, str] = {
    **CONSUMER_DEFAULTS,
    "fetch.wait.max.ms": "20",
    "queued.max.messages.kbytes": "65536",
}

#: An option of ``ingestload fanout``; its environment variable is ``INGESTLOAD_FANOUT_<NAME>``.
FanoutOption = functools.partial(Option, env_prefix=FANOUT_ENV_PREFIX)


def _host(flag: str, value: Any) -> str:
    host = str(value).strip()
    if not host:
        raise ConfigError(f"{flag}: empty; give an address such as 127.0.0.1 or 0.0.0.0")
    return host


def _policy(flag: str, value: Any) -> str:
    policy = str(value).strip()
    if policy not in POLICIES:
        raise ConfigError(f"{flag}: {policy!r} is not allowed; expected one of {', '.join(POLICIES)}")
    return policy


_EVERY = number(int, minimum=0, what="an integer ≥ 0 (0 = off)")


def _port(flag: str, value: Any) -> int:
    port = number(int, minimum=0, what="a port number 0–65535 (0 = any free port)")(flag, value)
    if port > 65535:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected a port number 0–65535")
    return port


FAULT_SKIP_EVERY = FanoutOption(
    "--fault-skip-every",
    "0",
    _EVERY,
    "FAULT INJECTION: silently skip every Nth message pushed (0 = off).",
    "N",
)
FAULT_DUPLICATE_EVERY = FanoutOption(
    "--fault-duplicate-every", "0", _EVERY, "FAULT INJECTION: push every Nth message twice (0 = off).", "N"
)
FAULT_ID = FanoutOption(
    "--fault-id",
    None,
    optional_text,
    "FAULT INJECTION: only towards subscribers whose subscribe 'id' is this (default: every one).",
    "ID",
)
#: The fault switches, read into :attr:`FanoutSettings.faults`.
FAULT_OPTIONS: tuple[Option[Any], ...] = (FAULT_SKIP_EVERY, FAULT_DUPLICATE_EVERY, FAULT_ID)
#: The Kafka and catalogue options the gateway shares with the other commands (their
#: ``INGESTLOAD_…`` names unchanged).
SHARED_OPTIONS: tuple[Option[Any], ...] = (*kafka.SERVER_OPTIONS, *messages.SERVER_OPTIONS)


@settings_class
class FanoutSettings:
    """Validated settings of one ``ingestload fanout`` gateway."""

    env_prefix: ClassVar[str] = FANOUT_ENV_PREFIX
    """Its options' variables: ``--queue-limit`` ↔ ``INGESTLOAD_FANOUT_QUEUE_LIMIT``."""

    kafka: KafkaSettings
    """Kafka connection and partitions (shared with the other commands); when no Kafka was named,
    :data:`~ingestload.kafka.settings.EMBEDDED` until the embedded broker is started."""
    catalogue: Path | None
    """Catalogue file (shared with the other commands); ``None``: the built-in one."""
    topic_prefix: str | None
    """Overrides the catalogue's topic prefix when set (shared with the other commands)."""
    host: str = option("--host", "127.0.0.1", _host, "Address to listen on.", "ADDRESS")
    """Listen address."""
    port: int = option(
        "--port", "8765", _port, "Port for WebSockets (/v1/stream) and HTTP (/readyz, /stats).", "PORT"
    )
    """Listen port (0: a free one)."""
    workers: int = option(
        "--workers",
        "1",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Worker processes, each with its own Kafka consumer (SO_REUSEPORT).",
        "N",
    )
    """Worker processes."""
    topics: tuple[str, ...] | None = option(
        "--topics",
        None,
        topic_list("Kafka topic names (letters, digits, '.', '_', '-')", blank=False),
        "Topics subscribers may choose from, comma-separated; default: the catalogue's (prefix + type).",
        "T1,T2",
    )
    """Topics served; ``None``: the catalogue's."""
    queue_limit: int = option(
        "--queue-limit",
        "10000",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Most messages queued for one subscriber; beyond it --slow-policy acts.",
        "N",
    )
    """Most messages queued per subscriber."""
    slow_policy: str = option(
        "--slow-policy",
        "drop-oldest",
        _policy,
        "What a full subscriber queue does: drop-oldest (count sent to the subscriber) or disconnect.",
        "POLICY",
    )
    """drop-oldest or disconnect."""
    write_buffer: int = option(
        "--write-buffer",
        "1048576",
        number(int, minimum=1024, what="bytes ≥ 1024"),
        "Bytes waiting in a connection's socket buffer above which nothing more is written to it "
        "(its messages wait in its queue).",
        "BYTES",
    )
    """Socket-buffer bytes above which a connection is not written to."""
    frame_messages: int = option(
        "--frame-messages",
        "1000",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Most messages in one WebSocket frame.",
        "N",
    )
    """Most messages per frame."""
    progress_interval: float = option(
        "--progress-interval",
        "1",
        number(float, minimum=0.01, what="seconds ≥ 0.01"),
        "Seconds between progress frames to a subscriber that is caught up.",
        "SECONDS",
    )
    """Seconds between progress frames."""
    max_subscribers: int = option(
        "--max-subscribers",
        "10000",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Most WebSocket connections per worker (more are refused).",
        "N",
    )
    """Most connections per worker."""
    create_topics: bool = option(
        "--create-topics", "true", boolean, "Create missing topics at start (true/false).", "BOOL"
    )
    """Create missing topics at start."""
    faults: PushFaults
    """Fault injection (off unless set): :data:`FAULT_OPTIONS`."""

    @classmethod
    def from_args(cls, argv: Sequence[str], environ: Mapping[str, str] | None = None) -> FanoutSettings:
        """Parse ``ingestload fanout`` arguments (``environ`` defaults to ``os.environ``)."""
        return cls.from_namespace(build_parser().parse_args(list(argv)), environ)

    @classmethod
    def from_namespace(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> FanoutSettings:
        environ = os.environ if environ is None else environ
        # Kafka's options whole (those not on this command line from the environment or defaults).
        values = opts.read((*kafka.OPTIONS, *messages.SERVER_OPTIONS, *FANOUT_OPTIONS), ns, environ)
        return opts.build(
            cls,
            values,
            kafka=KafkaSettings.from_values(values, environ, embedded=True),
            catalogue=values[messages.CATALOGUE],
            topic_prefix=values[messages.TOPIC_PREFIX],
            faults=PushFaults(
                skip_every=values[FAULT_SKIP_EVERY],
                duplicate_every=values[FAULT_DUPLICATE_EVERY],
                label=values[FAULT_ID],
            ),
        )

    @property
    def embedded_broker(self) -> bool:
        """No Kafka was named (flag or env): start the embedded broker for the gateway's lifetime."""
        return self.kafka.embedded

    def with_bootstrap(self, bootstrap: str) -> FanoutSettings:
        """The same settings against ``bootstrap`` (the embedded broker's address)."""
        return replace(self, kafka=self.kafka.with_bootstrap(bootstrap))

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
        props = self.kafka.shown_properties()
        return (
            f"kafka={self.kafka.shown_bootstrap} workers={self.workers} queue_limit={self.queue_limit} "
            f"slow_policy={self.slow_policy} write_buffer={self.write_buffer} "
            f"faults={self.faults.describe()}" + (f" kafka_config=[{props}]" if props else "")
        )


#: The options of ``ingestload fanout`` itself, in the order ``--help`` shows them.
FANOUT_OPTIONS: tuple[Option[Any], ...] = (*opts.declared(FanoutSettings).values(), *FAULT_OPTIONS)


def build_parser() -> argparse.ArgumentParser:
    """The ``ingestload fanout`` argument parser (every default is applied later, in validation)."""
    parser = argparse.ArgumentParser(
        prog="ingestload fanout",
        description="The reference fan-out gateway: Kafka → WebSocket subscribers, exact windows. "
        "Without --kafka-bootstrap (or INGESTLOAD_KAFKA_BOOTSTRAP) it starts the embedded broker.",
    )
    opts.add_server_arguments(parser, FANOUT_OPTIONS, SHARED_OPTIONS)
    return parser
