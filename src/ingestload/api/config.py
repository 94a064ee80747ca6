"""Settings of ``ingestload api``: command-line flags, ``INGESTLOAD_API_…`` variables, validation.

Kafka connection options are the ones every ingestload command takes (``--kafka-bootstrap``,
``--kafka-config KEY=VALUE``, ``--kafka-config-file``, ``INGESTLOAD_KAFKA_PROP_*``), declared in
:mod:`ingestload.kafka.settings` (no bootstrap: the embedded broker); the API adds its own, each with an
``INGESTLOAD_API_<NAME>`` environment variable (``--fault-drop`` ↔ ``INGESTLOAD_API_FAULT_DROP``).
Everything is validated before the server starts; a bad value names the option, the value
and what is allowed.

Example::

    settings = ApiSettings.from_args(["--port", "0", "--fault-drop", "0.1"], environ={})
    settings.producer_config()["message.timeout.ms"]     # "14000": below --request-timeout
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from ingestload import options as opts
from ingestload.api.faults import FaultPlan
from ingestload.errors import ConfigError
from ingestload.kafka import settings as kafka
from ingestload.kafka.settings import KafkaSettings
from ingestload.messages import settings as messages
from ingestload.options import Option, boolean, number, option, settings_class

API_ENV_PREFIX = "INGESTLOAD_API_"

#: Producer settings for an HTTP front. A request waits for its own delivery report, so linger
#: is added to a lone request's response time; under load, though, a longer linger puts the
#: messages of concurrent requests into fewer, larger batches, and the broker keeps up better.
#: `ingestload run` at 2,775 msg/s (57 users), mean POST response time: 20 ms at linger.ms=1,
#: 17 ms at 5 (librdkafka's default), both on target.
API_PRODUCER_DEFAULTS: Mapping[str, str] = {"linger.ms": "5"}

#: An option of ``ingestload api``: its environment variable is ``INGESTLOAD_API_<NAME>``
#: (``--port`` ↔ ``INGESTLOAD_API_PORT``).
ApiOption = functools.partial(Option, env_prefix=API_ENV_PREFIX)


def _host(flag: str, value: Any) -> str:
    host = str(value).strip()
    if not host:
        raise ConfigError(f"{flag}: empty; give an address such as 127.0.0.1 or 0.0.0.0")
    return host


def _envelope(flag: str, value: Any) -> str | None:
    envelope = str(value or "").strip() or None
    if envelope is not None and not re.fullmatch(r"[^\s\"\\]{1,64}", envelope):
        raise ConfigError(
            f"{flag}: {envelope!r} must be 1–64 characters without spaces, quotes or backslashes"
        )
    return envelope


def _fault_seed(flag: str, value: Any) -> int:
    if value in (None, ""):
        return int.from_bytes(os.urandom(4), "big")
    return number(int, minimum=0, what="an integer ≥ 0")(flag, value)


#: Listen port of the servers (``ingestload api``, ``ingestload fanout``).
port = number(int, minimum=0, maximum=65535, what="a port number 0–65535 (0 = any free port)")
_fraction = number(float, minimum=0.0, maximum=1.0, what="a fraction between 0 and 1 (0 = off)")

FAULT_DROP = ApiOption(
    "--fault-drop",
    "0",
    _fraction,
    "FAULT INJECTION: fraction of messages answered 2xx but never produced.",
    "FRACTION",
)
FAULT_DUPLICATE = ApiOption(
    "--fault-duplicate", "0", _fraction, "FAULT INJECTION: fraction of messages produced twice.", "FRACTION"
)
FAULT_ACK_BEFORE_DELIVERY = ApiOption(
    "--fault-ack-before-delivery",
    "0",
    _fraction,
    "FAULT INJECTION: fraction of messages answered 2xx before Kafka acknowledged them "
    "(the naive behaviour; the readiness gate is off while this is on).",
    "FRACTION",
)
FAULT_SEED = ApiOption(
    "--fault-seed",
    None,
    _fault_seed,
    "Seed for fault injection: the same seed hits the same messages (in arrival order); "
    "default: random, shown at /debug/faults.",
    "INT",
)
#: The fault switches, read into :attr:`ApiSettings.faults`.
FAULT_OPTIONS: tuple[Option[Any], ...] = (FAULT_DROP, FAULT_DUPLICATE, FAULT_ACK_BEFORE_DELIVERY, FAULT_SEED)
#: The Kafka and catalogue options every server shares with the other commands (their
#: ``INGESTLOAD_…`` names unchanged).
SHARED_OPTIONS: tuple[Option[Any], ...] = (*kafka.SERVER_OPTIONS, *messages.SERVER_OPTIONS)


@settings_class
class ApiSettings:
    """Validated settings of one ``ingestload api`` server."""

    env_prefix: ClassVar[str] = API_ENV_PREFIX
    """Its options' variables: ``--port`` ↔ ``INGESTLOAD_API_PORT``."""

    kafka: KafkaSettings
    """Kafka connection and partitions (shared with the other commands); when no Kafka was named,
    :data:`~ingestload.kafka.settings.EMBEDDED` until the embedded broker is started."""
    catalogue: Path | None
    """Catalogue file (shared with the other commands); ``None``: the built-in one."""
    topic_prefix: str | None
    """Overrides the catalogue's topic prefix when set (shared with the other commands)."""
    host: str = option("--host", "127.0.0.1", _host, "Address to listen on.", "ADDRESS")
    """Listen address."""
    port: int = option("--port", "8080", port, "Port to listen on.", "PORT")
    """Listen port."""
    workers: int = option(
        "--workers",
        "1",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Server worker processes, each with its own Kafka producer.",
        "N",
    )
    """Worker processes."""
    # message.timeout.ms defaults to 1 s less, and must stay ≥ 1 s: below 2 s the two would meet.
    request_timeout: float = option(
        "--request-timeout",
        "15",
        number(float, minimum=2, what="seconds ≥ 2"),
        "Seconds a request may wait for Kafka's acknowledgement; message.timeout.ms defaults to "
        "1 s less, and must be below it.",
        "SECONDS",
    )
    """Seconds a request waits for the delivery report before the API answers 504."""
    max_body_bytes: int = option(
        "--max-body-bytes",
        "1048576",
        number(int, minimum=2, what="bytes ≥ 2"),
        "Largest request body accepted (413 above).",
        "BYTES",
    )
    """Largest accepted body."""
    max_batch_items: int = option(
        "--max-batch-items",
        "1000",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Most messages in one batch request (413 above).",
        "N",
    )
    """Most items in one batch."""
    max_in_flight: int = option(
        "--max-in-flight",
        "100000",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Most messages per worker waiting for Kafka's acknowledgement; beyond it requests get "
        "503 + Retry-After.",
        "N",
    )
    """Most unacknowledged messages per worker."""
    retry_after: int = option(
        "--retry-after",
        "1",
        number(int, minimum=0, what="whole seconds ≥ 0"),
        "Seconds sent in Retry-After with every 503.",
        "SECONDS",
    )
    """Seconds in ``Retry-After``."""
    envelope_field: str | None = option(
        "--envelope-field",
        "_ingestload",
        _envelope,
        "Top-level member allowed in every message on top of its template's fields and passed "
        "through unchanged ('' = none).",
        "NAME",
    )
    """Extra top-level member every message may carry (``None``: none)."""
    create_topics: bool = option(
        "--create-topics",
        "true",
        boolean,
        "Create missing topics at start and whenever Kafka comes back (true/false).",
        "BOOL",
    )
    """Create missing topics at start and when Kafka comes back."""
    faults: FaultPlan
    """Fault injection (off unless a fraction is set): :data:`FAULT_OPTIONS`."""

    @classmethod
    def from_args(cls, argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Parse ``ingestload api`` arguments (``environ`` defaults to ``os.environ``)."""
        return cls.from_namespace(build_parser().parse_args(list(argv)), environ)

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        # Kafka's options whole (those not on this command line from the environment or defaults).
        values = opts.read((*kafka.OPTIONS, *messages.SERVER_OPTIONS, *API_OPTIONS), ns, environ)
        kafka_settings = KafkaSettings.from_values(values, environ, embedded=True)
        settings = opts.build(
            cls,
            values,
            kafka=kafka_settings,
            catalogue=values[messages.CATALOGUE],
            topic_prefix=values[messages.TOPIC_PREFIX],
            faults=FaultPlan(
                drop=values[FAULT_DROP],
                duplicate=values[FAULT_DUPLICATE],
                ack_before_delivery=values[FAULT_ACK_BEFORE_DELIVERY],
                seed=values[FAULT_SEED],
            ),
        )
        message_timeout = kafka_settings.config.get("message.timeout.ms")
        if message_timeout is not None:
            try:
                ms = float(message_timeout)
            except ValueError:
                raise ConfigError(
                    f"--kafka-config: message.timeout.ms={message_timeout!r} is not a number of milliseconds"
                ) from None
            if ms >= settings.request_timeout * 1000:
                raise ConfigError(
                    f"message.timeout.ms={message_timeout} must be below --request-timeout "
                    f"({settings.request_timeout:g} s) so that every request gets a definite answer; lower "
                    "message.timeout.ms or raise --request-timeout"
                )
        if settings.max_batch_items > settings.max_in_flight:
            raise ConfigError(
                f"--max-batch-items ({settings.max_batch_items}) is larger than --max-in-flight "
                f"({settings.max_in_flight}): such a batch could never be accepted; raise --max-in-flight "
                "or lower --max-batch-items"
            )
        return settings

    @property
    def embedded_broker(self) -> bool:
        """No Kafka was named (flag or env): start the embedded broker for the server's lifetime."""
        return self.kafka.embedded

    def with_bootstrap(self, bootstrap: str) -> ApiSettings:
        """The same settings against ``bootstrap`` (the embedded broker's address)."""
        return replace(self, kafka=self.kafka.with_bootstrap(bootstrap))

    def producer_config(self, client_id: str | None = None) -> dict[str, str]:
        """Producer config: ingestload's safe defaults, the API's, then the user's properties."""
        config = self.kafka.producer_config(client_id)
        api_defaults = dict(API_PRODUCER_DEFAULTS)
        api_defaults["message.timeout.ms"] = str(max(1000, int(self.request_timeout * 1000) - 1000))
        for key, value in api_defaults.items():
            if key not in self.kafka.config:
                config[key] = value
        return config

    def describe(self) -> str:
        """One secret-free line for the startup log."""
        props = self.kafka.shown_properties()
        return (
            f"kafka={self.kafka.shown_bootstrap} workers={self.workers} "
            f"request_timeout={self.request_timeout:g}s max_in_flight={self.max_in_flight} "
            f"max_body_bytes={self.max_body_bytes} max_batch_items={self.max_batch_items} "
            f"faults={self.faults.describe()}" + (f" kafka_config=[{props}]" if props else "")
        )


#: The options of ``ingestload api`` itself, in the order ``--help`` shows them.
API_OPTIONS: tuple[Option[Any], ...] = (*opts.declared(ApiSettings).values(), *FAULT_OPTIONS)


def build_parser() -> argparse.ArgumentParser:
    """The ``ingestload api`` argument parser (every default is applied later, in validation)."""
    parser = argparse.ArgumentParser(
        prog="ingestload api",
        description="The reference ingest API: HTTP → Kafka, 2xx only after Kafka acknowledged. "
        "Without --kafka-bootstrap (or INGESTLOAD_KAFKA_BOOTSTRAP) it starts the embedded broker.",
    )
    opts.add_server_arguments(parser, API_OPTIONS, SHARED_OPTIONS)
    return parser
