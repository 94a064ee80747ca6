"""One ``main`` for the reference servers, and what each needs before it serves.

Example (a server command)::

    def main(argv=None):
        return server_main("ingestload api", ApiSettings.from_args, serve, argv)

    def serve(settings):
        port = listen_port(settings.host, settings.port)       # refused before Kafka is touched
        with kafka_for(settings) as settings:                  # the embedded broker if none was named
            prepare_topics(settings.kafka, topics, create=settings.create_topics)
            …
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, Self, TypeVar

from ingestload.errors import ConfigError, IngestloadError
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EmbeddedBroker, check_port_free, free_port

log = logging.getLogger("ingestload")

LOG_FORMAT = "%(asctime)s %(levelname)s/%(name)s: %(message)s"


class ServerSettings(Protocol):
    """What :func:`kafka_for` needs of a server's settings."""

    @property
    def embedded_broker(self) -> bool:
        """No Kafka was named: the server brings its own."""

    def with_bootstrap(self, bootstrap: str) -> Self:
        """The same settings pointed at ``bootstrap``."""


S = TypeVar("S", bound=ServerSettings)


@contextlib.contextmanager
def kafka_for(settings: S) -> Iterator[S]:
    """``settings`` as given, or pointed at an embedded broker that lives as long as the block."""
    if not settings.embedded_broker:
        yield settings
        return
    with EmbeddedBroker() as broker:
        log.info("embedded Kafka broker (Tansu, memory storage) at %s", broker.bootstrap)
        yield settings.with_bootstrap(broker.bootstrap)


def listen_port(host: str, port: int) -> int:
    """``port`` if it is free on ``host`` (a free one for 0); a taken port raises
    :class:`~ingestload.errors.PortInUseError` saying how to choose another."""
    if port == 0:
        return free_port(host)
    check_port_free(host, port)
    return port


def prepare_topics(admin_config: dict[str, str], topics: Sequence[str], partitions: int) -> None:
    """Create missing topics at start; when Kafka does not answer, serve anyway (an orchestrator
    restarts pods whose dependency is late): readiness answers 503 until Kafka answers."""
    try:
        ensure_topics(admin_config, list(topics), partitions, timeout=5)
    except ConfigError:
        raise
    except IngestloadError as e:
        log.warning("%s; serving anyway, not ready until Kafka answers", e)


def server_main(
    command: str,
    parse: Callable[[list[str]], Any],
    serve: Callable[[Any], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` (default: the process's arguments) and serve until SIGINT/SIGTERM; bad input is
    one line, ``COMMAND: error: …``, and exit code 2."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        return serve(parse(list(sys.argv[1:] if argv is None else argv)))
    except IngestloadError as e:
        sys.stderr.write(f"{command}: error: {e}\n")
        return 2
