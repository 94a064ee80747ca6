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

import functools
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ingestload.api.config import ApiSettings
from ingestload.errors import ConfigError
from ingestload.messages.catalogue import Catalogue
from ingestload.serving.main import kafka_for, listen_port, prepare_topics, server_main

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
        if settings.create_topics:  # if Kafka is late, the workers create the topics when it comes
            prepare_topics(settings.kafka.admin_config(), topics, settings.kafka.partitions)
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
    return server_main("ingestload api", ApiSettings.from_args, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
