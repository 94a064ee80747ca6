"""Helpers for tests — ours and yours.

Example (pytest)::

    from ingestload.testing import kafka_bootstrap, read_run

    @pytest.fixture(scope="session")
    def kafka():
        with kafka_bootstrap() as bootstrap:
            yield bootstrap

    def test_my_pipeline(kafka):
        … run a load with --run-id RUN …
        run = read_run({"bootstrap.servers": kafka}, topics, RUN)
        assert run.check_contiguous() == []
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ingestload.broker import EmbeddedBroker
from ingestload.envelope import Envelope, checksum, find
from ingestload.kafka import Offsets, read_to_end

#: Set this to use an existing Kafka instead of starting the embedded broker.
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP"


@contextlib.contextmanager
def kafka_bootstrap(environ: Mapping[str, str] | None = None) -> Iterator[str]:
    """``$KAFKA_BOOTSTRAP`` when set, else an embedded broker for the duration of the block."""
    environ = os.environ if environ is None else environ
    given = environ.get(BOOTSTRAP_ENV)
    if given:
        yield given
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


def unique_prefix(label: str = "t") -> str:
    """A topic prefix no other test uses, e.g. ``t-3f2a9c-``."""
    return f"{label}-{uuid.uuid4().hex[:10]}-"


class Landed(NamedTuple):
    """One message of a run, as read back from Kafka."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope
    value: bytes


@dataclass
class RunReadback:
    """Everything of one run found on the topics, plus what did not belong to it."""

    run_id: str
    messages: list[Landed] = field(default_factory=list)
    foreign: int = 0
    """Messages without an envelope of this run."""

    def seqs_by_producer(self) -> dict[int, list[int]]:
        seqs: dict[int, list[int]] = defaultdict(list)
        for m in self.messages:
            seqs[m.envelope.producer_id].append(m.envelope.seq)
        return dict(seqs)

    def check_contiguous(self) -> list[str]:
        """Problems with the seqs of each producer: gaps or repeats (empty list = none)."""
        problems = []
        for producer, seqs in self.seqs_by_producer().items():
            unique = set(seqs)
            if len(unique) != len(seqs):
                problems.append(f"producer {producer:016x}: {len(seqs) - len(unique)} repeated seqs")
            if unique != set(range(len(unique))):
                missing = sorted(set(range(max(unique) + 1)) - unique)
                problems.append(f"producer {producer:016x}: missing seqs {missing[:10]}")
        return problems

    def corrupted(self) -> list[Landed]:
        """Messages whose value does not match the checksum in their envelope."""
        return [m for m in self.messages if checksum(m.value) != m.envelope.checksum]

    def per_topic(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for m in self.messages:
            counts[m.topic] += 1
        return dict(counts)


def read_run(
    config: Mapping[str, str], topics: Iterable[str], run_id: str, start: Offsets | None = None
) -> RunReadback:
    """Read every message of ``topics`` (from ``start``) and keep those of ``run_id``."""
    result = RunReadback(run_id)
    for batch in read_to_end(config, topics, start):
        for message in batch:
            envelope = find(message.headers())
            if envelope is None or envelope.run_id != run_id:
                result.foreign += 1
                continue
            result.messages.append(
                Landed(message.topic(), message.partition(), message.offset(), envelope, message.value())
            )
    return result


def locust_command(locustfile: str | Path, *args: str) -> list[str]:
    """argv to run Locust with this interpreter (for ``subprocess``)."""
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *args]


def describe_output(completed: Any, limit: int = 4000) -> str:
    """stdout/stderr of a finished subprocess, for assertion messages."""
    out = (completed.stdout or "") + "\n--- stderr ---\n" + (completed.stderr or "")
    return out[-limit:]
