"""The Kafka connection's options and settings: bootstrap servers, librdkafka properties, partitions.

Every ingestload command takes these (``ingestload api`` and ``ingestload fanout`` too, under the
same ``INGESTLOAD_…`` variables). Properties reach librdkafka from a file, then
``INGESTLOAD_KAFKA_PROP_<KEY>`` variables, then ``--kafka-config`` items
(:func:`~ingestload.kafka.config.kafka_properties`); secrets are never printed.

The servers and ``ingestload run`` start the embedded broker when no Kafka is named: their
settings hold :data:`EMBEDDED` until :meth:`KafkaSettings.with_bootstrap` gives the address.

Example::

    kafka = KafkaSettings.from_values(read(OPTIONS, namespace, os.environ))
    producer = Producer(kafka.producer_config(client_id="me"))
"""

from __future__ import annotations

import enum
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import field, replace
from typing import Any

from ingestload.errors import ConfigError
from ingestload.kafka.config import (
    CONSUMER_DEFAULTS,
    PRODUCER_DEFAULTS,
    kafka_properties,
    parse_properties,
    redact_config,
)
from ingestload.options import (
    Option,
    Values,
    as_list,
    build,
    declared,
    items,
    number,
    option,
    optional_text,
    settings_class,
)


class Broker(enum.Enum):
    """A Kafka that is not an address yet."""

    EMBEDDED = "embedded"
    """No Kafka was named: the command starts the embedded broker and uses its address."""


#: No ``--kafka-bootstrap`` (nor ``INGESTLOAD_KAFKA_BOOTSTRAP``) given to a command that starts
#: the embedded broker then (``ingestload run``, ``api``, ``fanout``).
EMBEDDED = Broker.EMBEDDED


def _bootstrap(flag: str, value: Any) -> str:
    servers = str(value or "").strip()
    if not re.fullmatch(r"[^\s,]+:\d+(,[^\s,]+:\d+)*", servers):
        raise ConfigError(f"{flag}: {servers!r} is not HOST:PORT[,HOST:PORT…] (e.g. 127.0.0.1:9092)")
    return servers


def _properties(flag: str, value: Any) -> dict[str, str]:
    return parse_properties(as_list(value), flag)


#: Where librdkafka properties come from (file, then ``INGESTLOAD_KAFKA_PROP_*``, then these items),
#: merged into :attr:`KafkaSettings.config`.
CONFIG = Option(
    "--kafka-config",
    None,
    items,
    "A librdkafka property as KEY=VALUE (repeatable), e.g. security.protocol=SASL_SSL. "
    "Also INGESTLOAD_KAFKA_PROP_<KEY> env vars (dots as underscores). Secrets are redacted.",
    "KEY=VALUE",
    secret=True,
    repeatable=True,
)
CONFIG_FILE = Option(
    "--kafka-config-file",
    None,
    optional_text,
    "A librdkafka properties file (KEY=VALUE lines, # comments); --kafka-config wins on conflicts.",
    "PATH",
)


@settings_class
class KafkaSettings:
    """Where Kafka is and how to talk to it."""

    bootstrap: str | Broker = option(
        "--kafka-bootstrap",
        "127.0.0.1:9092",
        _bootstrap,
        "Kafka bootstrap servers, HOST:PORT[,HOST:PORT…].",
        "SERVERS",
    )
    """Bootstrap servers, or :data:`EMBEDDED` until the embedded broker's address is known."""
    config: Mapping[str, str] = field(repr=False)
    """User librdkafka properties (:data:`CONFIG_FILE`, env, then :data:`CONFIG`), secrets included
    (not in repr)."""
    verifier_config: Mapping[str, str] = option(
        "--verifier-config",
        None,
        _properties,
        "A librdkafka property for the verifier's consumer only, as KEY=VALUE (repeatable), "
        "e.g. fetch.wait.max.ms=500; wins over --kafka-config.",
        "KEY=VALUE",
        secret=True,
        repeatable=True,
    )
    """``--verifier-config`` properties: the verifier's consumer only."""
    partitions: int = option(
        "--partitions",
        "3",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Partitions for topics that ingestload creates.",
        "N",
    )
    """Partitions of topics created by ingestload."""

    @classmethod
    def from_values(
        cls, values: Values, environ: Mapping[str, str], *, embedded: bool = False
    ) -> KafkaSettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`OPTIONS`;
        ``environ`` supplies ``INGESTLOAD_KAFKA_PROP_*``. With ``embedded``, no bootstrap given
        means :data:`EMBEDDED` rather than the default address."""
        config = kafka_properties(values[CONFIG_FILE], values[CONFIG], environ)
        if embedded and not values.given(BOOTSTRAP):
            return build(cls, values, config=config, bootstrap=EMBEDDED)
        return build(cls, values, config=config)

    @property
    def embedded(self) -> bool:
        """No Kafka was named: the embedded broker is to be started."""
        return self.bootstrap is EMBEDDED

    @property
    def address(self) -> str:
        """The bootstrap servers (an error while the embedded broker's address is not known)."""
        if isinstance(self.bootstrap, Broker):
            raise ConfigError(
                "the embedded broker's address is not known yet; start it first (with_bootstrap)"
            )
        return self.bootstrap

    def with_bootstrap(self, bootstrap: str) -> KafkaSettings:
        """The same settings against ``bootstrap`` (the embedded broker's address)."""
        return replace(self, bootstrap=bootstrap)

    def producer_config(self, client_id: str | None = None) -> dict[str, str]:
        """The full librdkafka producer config: safe defaults, then the user's properties."""
        config = dict(PRODUCER_DEFAULTS)
        config["client.id"] = client_id or f"ingestload-{socket.gethostname()}-{os.getpid()}"
        config.update(self.config)
        config["bootstrap.servers"] = self.address
        return config

    def admin_config(self) -> dict[str, str]:
        """Connection-only config (security settings included) for admin and consumer clients."""
        producer_only = set(PRODUCER_DEFAULTS) | {
            "enable.idempotence",
            "transactional.id",
            "compression.type",
        }
        config = {k: v for k, v in self.config.items() if k not in producer_only}
        config["bootstrap.servers"] = self.address
        return config

    def consumer_config(self) -> dict[str, str]:
        """Config for the verifier's consumer: fast-fetch defaults, the user's properties, then
        ``--verifier-config``."""
        return {**CONSUMER_DEFAULTS, **self.admin_config(), **self.verifier_config}

    @property
    def shown_bootstrap(self) -> str:
        """The bootstrap servers, or ``embedded``, for log lines."""
        return "embedded" if isinstance(self.bootstrap, Broker) else self.bootstrap

    def shown_properties(self) -> str:
        """The user's properties as ``key=value, …`` with secrets as ``***``, for log lines."""
        return ", ".join(f"{k}={v}" for k, v in sorted(redact_config(self.config).items()))


BOOTSTRAP = declared(KafkaSettings)["bootstrap"]
VERIFIER_CONFIG = declared(KafkaSettings)["verifier_config"]
#: The Kafka options of every command, in the order ``--help`` shows them.
OPTIONS: tuple[Option[Any], ...] = (*declared(KafkaSettings).values(), CONFIG, CONFIG_FILE)
#: What the servers (``ingestload api``, ``ingestload fanout``) show on their command line.
SERVER_OPTIONS: tuple[Option[Any], ...] = (
    BOOTSTRAP,
    CONFIG,
    CONFIG_FILE,
    declared(KafkaSettings)["partitions"],
)
