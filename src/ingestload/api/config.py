"""Settings of ``ingestload api``: command-line flags, ``INGESTLOAD_API_…`` variables, validation.

Kafka connection options are the ones every ingestload command takes (``--kafka-bootstrap``,
``--kafka-config KEY=VALUE``, ``--kafka-config-file``, ``INGESTLOAD_KAFKA_PROP_*``), parsed
by :class:`ingestload.settings.Settings`; the API adds its own, each with an
``INGESTLOAD_API_<NAME>`` environment variable (``--fault-drop`` ↔ ``INGESTLOAD_API_FAULT_DROP``).
Everything is validated before the server starts; a bad value names the option, the value
and what is allowed.

Example::

    settings = ApiSettings.from_args(["--port", "0", "--fault-drop", "0.1"], environ={})
    settings.producer_config()["message.timeout.ms"]     # "14000": below --request-timeout
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingestload.api.faults import FaultPlan
from ingestload.errors import ConfigError
from ingestload.kafka.config import redact_config
from ingestload.settings import (
    OPTIONS,
    Option,
    Settings,
    _boolean,
    _number,
    add_plain_argument,
)

API_ENV_PREFIX = "INGESTLOAD_API_"

#: The Kafka-side options shared with the other commands (their env names are unchanged).
SHARED = ("kafka_bootstrap", "kafka_config", "kafka_config_file", "catalogue", "topic_prefix", "partitions")

#: Producer settings for an HTTP front. A request waits for its own delivery report, so linger
#: is added to a lone request's response time; under load, though, a longer linger puts the
#: messages of concurrent requests into fewer, larger batches, and the broker keeps up better.
#: `ingestload run` at 2,775 msg/s (57 users), mean POST response time: 20 ms at linger.ms=1,
#: 17 ms at 5 (librdkafka's default), both on target.
API_PRODUCER_DEFAULTS: Mapping[str, str] = {"linger.ms": "5"}


class ApiOption(Option):
    """An option of ``ingestload api``: as every ingestload option, but its environment variable
    is ``INGESTLOAD_API_<NAME>`` (``--port`` ↔ ``INGESTLOAD_API_PORT``)."""

    @property
    def env(self) -> str:
        return API_ENV_PREFIX + self.dest.upper()


API_OPTIONS: tuple[ApiOption, ...] = (
    ApiOption("--host", "127.0.0.1", "Address to listen on.", "ADDRESS"),
    ApiOption("--port", "8080", "Port to listen on.", "PORT"),
    ApiOption("--workers", "1", "Server worker processes, each with its own Kafka producer.", "N"),
    ApiOption(
        "--request-timeout",
        "15",
        "Seconds a request may wait for Kafka's acknowledgement; message.timeout.ms defaults to "
        "1 s less, and must be below it.",
        "SECONDS",
    ),
    ApiOption("--max-body-bytes", "1048576", "Largest request body accepted (413 above).", "BYTES"),
    ApiOption("--max-batch-items", "1000", "Most messages in one batch request (413 above).", "N"),
    ApiOption(
        "--max-in-flight",
        "100000",
        "Most messages per worker waiting for Kafka's acknowledgement; beyond it requests get "
        "503 + Retry-After.",
        "N",
    ),
    ApiOption("--retry-after", "1", "Seconds sent in Retry-After with every 503.", "SECONDS"),
    ApiOption(
        "--envelope-field",
        "_ingestload",
        "Top-level member allowed in every message on top of its template's fields and passed "
        "through unchanged ('' = none).",
        "NAME",
    ),
    ApiOption(
        "--create-topics",
        "true",
        "Create missing topics at start and whenever Kafka comes back (true/false).",
        "BOOL",
    ),
    ApiOption(
        "--fault-drop",
        "0",
        "FAULT INJECTION: fraction of messages answered 2xx but never produced.",
        "FRACTION",
    ),
    ApiOption("--fault-duplicate", "0", "FAULT INJECTION: fraction of messages produced twice.", "FRACTION"),
    ApiOption(
        "--fault-ack-before-delivery",
        "0",
        "FAULT INJECTION: fraction of messages answered 2xx before Kafka acknowledged them "
        "(the naive behaviour; the readiness gate is off while this is on).",
        "FRACTION",
    ),
    ApiOption(
        "--fault-seed",
        None,
        "Seed for fault injection: the same seed hits the same messages (in arrival order); "
        "default: random, shown at /debug/faults.",
        "INT",
    ),
)


@dataclass(frozen=True)
class ApiSettings:
    """Validated settings of one ``ingestload api`` server."""

    kafka: Settings
    """Kafka connection, catalogue, topic prefix and partitions (shared with the other commands)."""
    embedded_broker: bool = False
    """No Kafka was named (flag or env): start the embedded broker for the server's lifetime."""
    host: str = "127.0.0.1"
    """Listen address."""
    port: int = 8080
    """Listen port."""
    workers: int = 1
    """Worker processes."""
    request_timeout: float = 15.0
    """Seconds a request waits for the delivery report before the API answers 504."""
    max_body_bytes: int = 1_048_576
    """Largest accepted body."""
    max_batch_items: int = 1000
    """Most items in one batch."""
    max_in_flight: int = 100_000
    """Most unacknowledged messages per worker."""
    retry_after: int = 1
    """Seconds in ``Retry-After``."""
    envelope_field: str | None = "_ingestload"
    """Extra top-level member every message may carry (``None``: none)."""
    create_topics: bool = True
    """Create missing topics at start and when Kafka comes back."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    """Fault injection (off unless a fraction is set)."""

    @classmethod
    def from_args(cls, argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Parse ``ingestload api`` arguments (``environ`` defaults to ``os.environ``)."""
        return cls.from_namespace(build_parser().parse_args(list(argv)), environ)

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ApiSettings:
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for opt in API_OPTIONS:
            value = getattr(ns, opt.dest, None)
            if value is None:
                value = environ.get(opt.env, opt.default)
            raw[opt.dest] = value

        shared: dict[str, Any] = {}
        for common in OPTIONS:
            if common.dest in SHARED:
                value = getattr(ns, common.dest, None)
                if value is None and not common.multiple:
                    value = environ.get(common.env)
                shared[common.dest] = value
        embedded = not shared["kafka_bootstrap"]
        if embedded:
            shared["kafka_bootstrap"] = "127.0.0.1:1"  # replaced by the embedded broker's address
        kafka = Settings.from_options(argparse.Namespace(**shared), environ)

        # message.timeout.ms defaults to 1 s less, and must stay ≥ 1 s: below 2 s the two would meet.
        request_timeout = _number(
            "--request-timeout", raw["request_timeout"], float, minimum=2, what="seconds ≥ 2"
        )
        message_timeout = kafka.kafka_config.get("message.timeout.ms")
        if message_timeout is not None:
            try:
                ms = float(message_timeout)
            except ValueError:
                raise ConfigError(
                    f"--kafka-config: message.timeout.ms={message_timeout!r} is not a number of milliseconds"
                ) from None
            if ms >= request_timeout * 1000:
                raise ConfigError(
                    f"message.timeout.ms={message_timeout} must be below --request-timeout "
                    f"({request_timeout:g} s) so that every request gets a definite answer; lower "
                    "message.timeout.ms or raise --request-timeout"
                )

        host = str(raw["host"]).strip()
        if not host:
            raise ConfigError("--host: empty; give an address such as 127.0.0.1 or 0.0.0.0")
        envelope = str(raw["envelope_field"] or "").strip() or None
        if envelope is not None and not re.fullmatch(r"[^\s\"\\]{1,64}", envelope):
            raise ConfigError(
                f"--envelope-field: {envelope!r} must be 1–64 characters "
                "without spaces, quotes or backslashes"
            )
        max_in_flight = _number(
            "--max-in-flight", raw["max_in_flight"], int, minimum=1, what="an integer ≥ 1"
        )
        max_batch = _number(
            "--max-batch-items", raw["max_batch_items"], int, minimum=1, what="an integer ≥ 1"
        )
        if max_batch > max_in_flight:
            raise ConfigError(
                f"--max-batch-items ({max_batch}) is larger than --max-in-flight ({max_in_flight}): "
                "such a batch could never be accepted; raise --max-in-flight or lower --max-batch-items"
            )
        seed = raw["fault_seed"]
        try:
            faults = FaultPlan(
                drop=_fraction("--fault-drop", raw["fault_drop"]),
                duplicate=_fraction("--fault-duplicate", raw["fault_duplicate"]),
                ack_before_delivery=_fraction(
                    "--fault-ack-before-delivery", raw["fault_ack_before_delivery"]
                ),
                seed=(
                    _number("--fault-seed", seed, int, minimum=0, what="an integer ≥ 0")
                    if seed not in (None, "")
                    else int.from_bytes(os.urandom(4), "big")
                ),
            )
        except ValueError as e:  # pragma: no cover - _fraction checks the range first
            raise ConfigError(str(e)) from None
        return cls(
            kafka=kafka,
            embedded_broker=embedded,
            host=host,
            port=_bounded("--port", raw["port"], int, 0, 65535, "a port number 0–65535 (0 = any free port)"),
            workers=_number("--workers", raw["workers"], int, minimum=1, what="an integer ≥ 1"),
            request_timeout=request_timeout,
            max_body_bytes=_number(
                "--max-body-bytes", raw["max_body_bytes"], int, minimum=2, what="bytes ≥ 2"
            ),
            max_batch_items=max_batch,
            max_in_flight=max_in_flight,
            retry_after=_number(
                "--retry-after", raw["retry_after"], int, minimum=0, what="whole seconds ≥ 0"
            ),
            envelope_field=envelope,
            create_topics=_boolean("--create-topics", raw["create_topics"]),
            faults=faults,
        )

    def with_bootstrap(self, bootstrap: str) -> ApiSettings:
        """The same settings against ``bootstrap`` (the embedded broker's address)."""
        from dataclasses import replace

        return replace(self, kafka=replace(self.kafka, kafka_bootstrap=bootstrap))

    def producer_config(self, client_id: str | None = None) -> dict[str, str]:
        """Producer config: ingestload's safe defaults, the API's, then the user's properties."""
        config = self.kafka.producer_config(client_id)
        api_defaults = dict(API_PRODUCER_DEFAULTS)
        api_defaults["message.timeout.ms"] = str(max(1000, int(self.request_timeout * 1000) - 1000))
        for key, value in api_defaults.items():
            if key not in self.kafka.kafka_config:
                config[key] = value
        return config

    def describe(self) -> str:
        """One secret-free line for the startup log."""
        props = ", ".join(f"{k}={v}" for k, v in sorted(redact_config(self.kafka.kafka_config).items()))
        return (
            f"kafka={self.kafka.kafka_bootstrap} workers={self.workers} "
            f"request_timeout={self.request_timeout:g}s max_in_flight={self.max_in_flight} "
            f"max_body_bytes={self.max_body_bytes} max_batch_items={self.max_batch_items} "
            f"faults={self.faults.describe()}" + (f" kafka_config=[{props}]" if props else "")
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``ingestload api`` argument parser (every default is applied later, in validation)."""
    parser = argparse.ArgumentParser(
        prog="ingestload api",
        description="The reference ingest API: HTTP → Kafka, 2xx only after Kafka acknowledged. "
        "Without --kafka-bootstrap (or INGESTLOAD_KAFKA_BOOTSTRAP) it starts the embedded broker.",
    )
    add_server_options(parser, API_OPTIONS)
    return parser


def add_server_options(parser: argparse.ArgumentParser, own: Sequence[Option]) -> None:
    """A server command's own options, then the Kafka options it shares with every command
    (``ingestload api`` and ``ingestload fanout``)."""
    for opt in own:
        shown = f" (default {opt.default})" if opt.default not in (None, "") else ""
        parser.add_argument(
            opt.flag, default=None, metavar=opt.metavar, help=f"{opt.help}{shown} [{opt.env}]"
        )
    for common in OPTIONS:
        if common.dest in SHARED:
            add_plain_argument(parser, common, common.help + ("" if common.multiple else f" [{common.env}]"))


def _bounded(flag: str, value: Any, kind: type[int] | type[float], low: float, high: float, what: str) -> Any:
    number = _number(flag, value, kind, minimum=low, what=what)
    if number > high:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected {what}")
    return number


def _fraction(flag: str, value: Any) -> float:
    return float(_bounded(flag, value, float, 0.0, 1.0, "a fraction between 0 and 1 (0 = off)"))
