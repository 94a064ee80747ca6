"""Shared fixtures. Locust is imported first, as in a locustfile, so gevent patches everything early."""

import locust  # noqa: F401  # isort: skip

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestload.testing import kafka_bootstrap, unique_prefix

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """Bootstrap servers of a real broker: $KAFKA_BOOTSTRAP, or one embedded broker per session."""
    with kafka_bootstrap() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A real PostgreSQL's connection string: $INGESTLOAD_TEST_POSTGRES, or one throwaway server per
    session (Debian's server binaries; see ingestload.sink.postgres)."""
    import os

    from ingestload.sink.postgres import EmbeddedPostgres

    named = os.environ.get("INGESTLOAD_TEST_POSTGRES")
    if named:
        yield named
        return
    with EmbeddedPostgres() as db:
        yield db.dsn


@pytest.fixture
def prefix() -> str:
    """A topic prefix unique to the test."""
    return unique_prefix()


@pytest.fixture
def root() -> Path:
    """The repository root."""
    return ROOT
