"""``ingestload api``: run the reference ingest API under Granian.

Why Granian + Falcon: measured on this project's 2-core machine with one minimal handler
(JSON parse, produce, wait for the delivery report) and ``wrk -c64``, Granian served 16–18k
acknowledged requests/s with Falcon or a bare ASGI callable, 11k with Starlette; uvicorn
(uvloop + httptools) 9–12k. Granian parses HTTP in Rust threads, which leaves the Python
thread to the handler. It also stops gracefully: on SIGTERM it stops accepting connections
and lets in-flight requests finish; the ASGI lifespan shutdown then waits for every
outstanding delivery report and flushes the producer.

What starts where: this (main) process validates the settings, starts the embedded broker
when no Kafka was named, creates the topics, and then runs Granian, which forks
``--workers`` processes; each builds its own app and Kafka producer (librdkafka must not
cross a fork).

Example::

    ingestload api                                   # embedded broker, http://127.0.0.1:8080
    ingestload api --kafka-bootstrap kafka:9092 --workers 2 --port 8080
    INGESTLOAD_API_FAULT_DROP=0.01 ingestload api --fault-seed 7     # lose 1% of acked messages
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, Self, TypeVar

from ingestload.api.config import ApiSettings
from ingestload.errors import ConfigError, IngestloadError
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EmbeddedBroker, check_port_free, free_port
from ingestload.messages.catalogue import Catalogue

log = logging.getLogger("ingestload.api")

#: Logging inside Granian's worker processes: its own loggers, plus ours on stderr.
LOG_CONFIG: dict[str, Any] = {
    "formatters": {
        "ingestload": {"()": "logging.Formatter", "fmt": "%(asctime)s %(levelname)s/%(name)s: %(message)s"}
    },
    "handlers": {
        "ingestload": {
            "formatter": "ingestload",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "_granian": {"handlers": ["ingestload"], "level": "WARNING", "propagate": False},
        "granian.access": {"handlers": ["ingestload"], "level": "WARNING", "propagate": False},
        "ingestload.api": {"handlers": ["ingestload"], "level": "INFO", "propagate": False},
    },
}


def load_app(settings: ApiSettings) -> Any:
    """Granian's target loader: runs in each worker process after the fork."""
    from ingestload.api.app import create_app

    return create_app(settings)


class _ServerSettings(Protocol):
    @property
    def embedded_broker(self) -> bool: ...

    def with_bootstrap(self, bootstrap: str) -> Self: ...


S = TypeVar("S", bound=_ServerSettings)


@contextlib.contextmanager
def kafka_for(settings: S) -> Iterator[S]:
    """``settings`` as given, or pointed at an embedded broker that lives as long as the block
    (``ApiSettings`` or ``FanoutSettings``)."""
    if not settings.embedded_broker:
        yield settings
        return
    with EmbeddedBroker() as broker:
        log.info("embedded Kafka broker (Tansu, memory storage) at %s", broker.bootstrap)
        yield settings.with_bootstrap(broker.bootstrap)


def check_producer_config(settings: ApiSettings) -> None:
    """Let librdkafka validate the producer config now, in the main process (before any fork)."""
    from confluent_kafka import KafkaException, Producer

    from ingestload.kafka.config import scrub

    config = settings.producer_config()
    try:
        producer = Producer(config)
    except (KafkaException, ValueError, TypeError) as e:
        raise ConfigError(f"Kafka producer configuration rejected: {scrub(str(e), config)}") from None
    del producer


def listen_port(host: str, port: int) -> int:
    """``port`` if it is free on ``host`` (a free one for 0); a taken port raises
    :class:`~ingestload.errors.PortInUseError` saying how to choose another."""
    if port == 0:
        return free_port(host)
    check_port_free(host, port)
    return port


def serve(settings: ApiSettings) -> int:
    """Run the API until SIGINT/SIGTERM; returns the exit code."""
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    catalogue = Catalogue.load(settings.catalogue)
    port = listen_port(settings.host, settings.port)
    with kafka_for(settings) as settings:
        check_producer_config(settings)
        topics = catalogue.topics(settings.topic_prefix)
        if settings.create_topics:
            try:
                ensure_topics(settings.kafka.admin_config(), topics, settings.kafka.partitions, timeout=5)
            except ConfigError:
                raise
            except IngestloadError as e:
                # Serve anyway (an orchestrator restarts pods whose dependency is late): /readyz
                # answers 503 until Kafka answers, and the workers create the topics then.
                log.warning("%s; serving anyway, not ready until Kafka answers", e)
        server = Granian(
            "ingestload.api.app:create_app",  # for Granian's process titles; load_app builds the app
            address=settings.host,
            port=port,
            interface=Interfaces.ASGI,
            workers=settings.workers,
            loop=Loops.auto,
            log_level=LogLevels.warning,
            log_dictconfig=LOG_CONFIG,
            log_access=False,
            # A worker that has not finished its requests and flushed by then is killed.
            workers_kill_timeout=int(settings.request_timeout * 2 + 5),
        )
        sys.stderr.write(
            f"ingestload api: listening on http://{settings.host}:{port} — "
            f"{settings.describe()}; topics {', '.join(topics)}; Ctrl-C or SIGTERM to stop\n"
        )
        sys.stderr.flush()
        try:
            server.serve(target_loader=functools.partial(load_app, settings), wrap_loader=False)
        except SystemExit as e:
            return int(e.code or 0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ingestload api``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s/%(name)s: %(message)s")
    try:
        settings = ApiSettings.from_args(list(sys.argv[1:] if argv is None else argv))
        return serve(settings)
    except IngestloadError as e:
        sys.stderr.write(f"ingestload api: error: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
