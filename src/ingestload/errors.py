"""Exceptions raised by ingestload.

    IngestloadError                 base of everything below; ``retriable`` says whether trying again may help
     ├── ConfigError                a setting, option or file is wrong; the message names it and the fix
     │    ├── CatalogueError        the message catalogue / templates file is invalid
     │    └── ProfileError          a rate profile file is invalid (names the file, the stage and the fix)
     ├── EnvelopeError              bytes that do not decode as an ingestload envelope
     ├── BrokerError                the embedded broker could not be started or stopped
     │    └── PortInUseError        the requested port is already taken
     ├── DatabaseError              the sink's database cannot be started, reached or read
     └── KafkaDeliveryError         Kafka did not acknowledge a message (fired as the request exception)

Every message is meant to be shown to a user as is, on one line, before any load starts.
"""

from __future__ import annotations

from typing import Any


class IngestloadError(Exception):
    """Base class of all ingestload errors."""

    #: True when the same operation may succeed if tried again later.
    retriable: bool = False


class ConfigError(IngestloadError, ValueError):
    """A setting, command-line option or input file is invalid; the message says how to fix it."""


class CatalogueError(ConfigError):
    """The message catalogue (controllers, mix, templates) is invalid."""


class ProfileError(ConfigError):
    """A rate profile file is invalid (see :mod:`ingestload.rate.profile`)."""


class EnvelopeError(IngestloadError, ValueError):
    """Bytes that do not decode as an ingestload envelope."""


class BrokerError(IngestloadError, RuntimeError):
    """The embedded broker could not be started, reached or stopped."""


class PortInUseError(BrokerError):
    """The port asked for the embedded broker is already in use."""


class DatabaseError(IngestloadError, RuntimeError):
    """The sink's database (PostgreSQL) cannot be started, reached or read as asked; the message
    names the database without its password and says how to fix it."""


class KafkaDeliveryError(IngestloadError):
    """Kafka reported that a message was not delivered.

    Wraps a ``confluent_kafka.KafkaError`` so that Locust groups failures by a stable,
    readable text (``"KafkaDeliveryError: _MSG_TIMED_OUT: Local: Message timed out"``).
    """

    def __init__(self, kafka_error: Any) -> None:
        self.kafka_error = kafka_error
        self.retriable = bool(kafka_error.retriable())
        super().__init__(f"{kafka_error.name()}: {kafka_error.str()}")
