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
import json
import os
import socket
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ingestload.kafka.admin import Offsets, read_to_end, run_messages
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.messages.envelope import HEADER, Envelope, checksum, encode, find

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


class ManualClock:
    """A clock that moves only when told: inject it into a pacer to test schedules without sleeping.

    Example::

        clock = ManualClock()
        pacer = Pacer(100, clock=clock)
        pacer.take(1)            # anchors the schedule
        clock.advance(1.0)
        assert pacer.take(1000) == 100
    """

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


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
    timestamp_ms: int = -1
    """The broker's record timestamp (CreateTime: when the producer accepted it), ms since the epoch."""


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
                Landed(
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    envelope,
                    message.value(),
                    message.timestamp()[1],
                )
            )
    return result


def run_timestamps(
    config: Mapping[str, str], topics: Iterable[str], run_id: str, start: Offsets | None = None
) -> list[int]:
    """The broker timestamps (ms, sorted) of every message of ``run_id`` — cheaper than :func:`read_run`
    for rate checks of large runs (no envelope decoding)."""
    return sorted(message.timestamp()[1] for message in run_messages(config, topics, start, run_id))


def counts_per_window(
    timestamps_ms: Sequence[int], origin_ms: float, width: float, windows: int
) -> list[int]:
    """How many timestamps fall in each of ``windows`` consecutive windows of ``width`` seconds
    from ``origin_ms`` (timestamps outside are ignored).

    Example::

        counts_per_window([1000, 1500, 2100], origin_ms=1000, width=1.0, windows=2)   # [2, 1]
    """
    counts = [0] * windows
    for ts in timestamps_ms:
        k = int((ts - origin_ms) // (width * 1000))
        if 0 <= k < windows:
            counts[k] += 1
    return counts


def locust_command(locustfile: str | Path, *args: str) -> list[str]:
    """argv to run Locust with this interpreter (for ``subprocess``)."""
    return [sys.executable, "-m", "locust", "-f", str(locustfile), *args]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_args(count: int) -> list[str]:
    """``--processes COUNT`` on a free master port (Locust's default 5557 collides between runs).

    Example::

        locust_command(locustfile, "--headless", *processes_args(2))
    """
    port = str(free_port())
    return ["--processes", str(count), "--master-bind-port", port, "--master-port", port]


@contextlib.contextmanager
def worker_processes(
    locustfile: str | Path,
    count: int = 2,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[int]:
    """Start ``count`` ``locust --worker`` processes for a master on a free port; yields the port.

    Run the master with ``--master --master-bind-port PORT --expect-workers COUNT`` inside the
    block; on leaving, each worker gets 15 s to quit on its own before it is killed. ``env``:
    the workers' environment (default: this process's).
    """
    port = free_port()
    command = locust_command(locustfile, "--worker", "--master-port", str(port))
    workers = [
        subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=None if env is None else dict(env),
        )
        for _ in range(count)
    ]
    try:
        yield port
    finally:
        for worker in workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def judge_again(
    ledger_file: str | Path, verdict_file: str | Path, *args: str, cwd: str | Path | None = None
) -> Any:
    """Run ``ingestload verify --ledger LEDGER --verdict-file VERDICT [ARGS]`` (a finished run judged
    again from Kafka) and return the completed process."""
    command = [sys.executable, "-m", "ingestload.cli", "verify", "--ledger", str(ledger_file)]
    command += ["--verdict-file", str(verdict_file), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def describe_output(completed: Any, limit: int = 4000) -> str:
    """stdout/stderr of a finished subprocess, for assertion messages (verdict lines first)."""
    out = (completed.stdout or "") + "\n--- stderr ---\n" + (completed.stderr or "")
    keys = ("VERDICT", "reason:", "first lost", "first duplicated", "first corrupted", "error", "Traceback")
    verdict = [line for line in out.splitlines() if any(k in line for k in keys)][:40]
    return "\n".join(verdict) + "\n--- tail ---\n" + out[-limit:]


# -- fault injection ----------------------------------------------------------------------


class _FakeError:
    """A definite librdkafka delivery error, as reported for a message that is too large."""

    def name(self) -> str:
        return "MSG_SIZE_TOO_LARGE"

    def str(self) -> str:
        return "Broker: Message size too large (injected)"

    def retriable(self) -> bool:
        return False

    def code(self) -> int:
        return 10


def _fake_ack(topic: str, value: bytes, headers: Any) -> Any:
    """A delivery report's message for a message that was never sent (a real ``Message``, so that
    everything that reads reports — Locust's stats included — takes it as it takes the others)."""
    from confluent_kafka import Message

    return Message(topic=topic, value=value, headers=headers, partition=-1, offset=-1, latency=0.001)


#: Set in the seq of a phantom copy: no producer of a test gets anywhere near 2**62 seqs.
PHANTOM_BIT = 1 << 62


def corrupt_value(value: bytes) -> bytes:
    """The same message with one field's value changed (still valid JSON when it was)."""
    changed = value.replace(b'"Param":{', b'"Param":{"Tampered":true,', 1)
    return changed if changed != value else value[:-1] + bytes([value[-1] ^ 0x01])


class FaultyProducer:
    """Wraps a confluent-kafka Producer and misbehaves for chosen seqs, deterministically.

    * ``lose``: report success without sending (→ *lost*);
    * ``duplicate``: send twice, report once (→ *duplicated*);
    * ``corrupt``: send a changed value under the original checksum (→ *corrupted*);
    * ``misroute``: send to another topic of the run, ``misroute_to`` or the next one (→ *misrouted*);
    * ``fail``: report a definite delivery error without sending (→ *failed*, not lost);
    * ``phantom``: besides the message, send a copy whose envelope names a seq the producer never
      sends (:data:`PHANTOM_BIT` set in it) (→ *phantom*; :attr:`truth` lists the original seqs);
    * ``late_duplicate`` / ``late_corrupt``: after the process has drained (:meth:`release_late`,
      called by :func:`inject_faults` :data:`LATE_AFTER_DRAIN` seconds later), send one more copy —
      changed for ``late_corrupt`` — of those messages (→ *duplicated*, and *corrupted*, after the
      last acknowledgement).

    Seqs are per producer (each process of a run applies the same sets). Everything else is
    passed through, so the client cannot tell the difference. :attr:`truth` lists, by kind, the
    seqs actually injected — copies count only once Kafka acknowledged them.
    """

    def __init__(
        self,
        producer: Any,
        *,
        lose: Iterable[int] = (),
        duplicate: Iterable[int] = (),
        corrupt: Iterable[int] = (),
        fail: Iterable[int] = (),
        misroute: Iterable[int] = (),
        late_duplicate: Iterable[int] = (),
        late_corrupt: Iterable[int] = (),
        topics: Iterable[str] = (),
        misroute_to: str | None = None,
        phantom: Iterable[int] = (),
    ) -> None:
        self._producer = producer
        self.phantom = set(phantom)
        self.lose, self.duplicate, self.corrupt, self.fail = (
            set(lose),
            set(duplicate),
            set(corrupt),
            set(fail),
        )
        self.misroute, self.late_duplicate, self.late_corrupt = (
            set(misroute),
            set(late_duplicate),
            set(late_corrupt),
        )
        self.topics = sorted(set(topics))
        self.misroute_to = misroute_to
        self._fake_acks: list[tuple[Any, _FakeError | None, Any]] = []
        self._late: list[tuple[str, str, bytes, Any]] = []
        self.truth: dict[str, list[int]] = {
            k: [] for k in ("lost", "duplicated", "corrupted", "misrouted", "failed", "late", "phantom")
        }
        self.producer_id: int | None = None

    @property
    def injected(self) -> dict[str, int]:
        """How many of each kind were injected (and, for copies, acknowledged)."""
        return {kind: len(seqs) for kind, seqs in self.truth.items()}

    def _filed(self, kinds: tuple[str, ...], seq: int) -> Any:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                for kind in kinds:
                    self.truth[kind].append(seq)

        return on_delivery

    def _elsewhere(self, topic: str) -> str:
        if self.misroute_to is not None and self.misroute_to != topic:
            return self.misroute_to
        others = [t for t in self.topics if t != topic] or [topic + "-elsewhere"]
        return others[(self.topics.index(topic) if topic in self.topics else 0) % len(others)]

    def produce(
        self,
        topic: str,
        value: bytes,
        *args: Any,
        headers: Any = None,
        on_delivery: Any = None,
        **kwargs: Any,
    ) -> None:
        envelope = find(headers)
        seq = envelope.seq if envelope is not None else -1
        if envelope is not None:
            self.producer_id = envelope.producer_id
        if seq in self.lose or seq in self.fail:
            failed = seq in self.fail
            report = (on_delivery, _FakeError() if failed else None, _fake_ack(topic, value, headers))
            self._fake_acks.append(report)
            self.truth["failed" if failed else "lost"].append(seq)
            return
        if seq in self.corrupt:
            value = corrupt_value(value)
            on_delivery = _chain(on_delivery, self._filed(("corrupted",), seq))
        if seq in self.misroute:
            topic = self._elsewhere(topic)
            on_delivery = _chain(on_delivery, self._filed(("misrouted",), seq))
        self._producer.produce(topic, value, *args, headers=headers, on_delivery=on_delivery, **kwargs)
        if seq in self.duplicate:
            self._producer.produce(
                topic, value, *args, headers=headers, on_delivery=self._filed(("duplicated",), seq)
            )
        if seq in self.phantom and envelope is not None:
            invented = envelope._replace(seq=seq | PHANTOM_BIT)
            self._producer.produce(
                topic,
                value,
                headers=[(HEADER, encode(invented))],
                on_delivery=self._filed(("phantom",), seq),
            )
        if seq in self.late_duplicate:
            self._late.append(("dup", topic, value, headers))
        if seq in self.late_corrupt:
            self._late.append(("corrupt", topic, value, headers))

    def release_late(self) -> int:
        """Send the late copies now (after the drain); returns how many."""
        late, self._late = self._late, []
        for kind, topic, value, headers in late:
            seq = find(headers).seq  # type: ignore[union-attr]
            kinds = ("duplicated", "late") if kind == "dup" else ("duplicated", "corrupted", "late")
            changed = value if kind == "dup" else corrupt_value(value)
            self._producer.produce(topic, changed, headers=headers, on_delivery=self._filed(kinds, seq))
        return len(late)

    def poll(self, timeout: float = 0) -> int:
        fakes, self._fake_acks = self._fake_acks, []
        for callback, error, ack in fakes:
            callback(error, ack)
        return len(fakes) + int(self._producer.poll(timeout))

    def __len__(self) -> int:
        return len(self._producer) + len(self._fake_acks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def _chain(first: Any, second: Any) -> Any:
    def both(err: Any, msg: Any) -> None:
        first(err, msg)
        second(err, msg)

    return both


#: Seconds after its process drained that a producer sends its late copies.
LATE_AFTER_DRAIN = 1.0

#: Set this to a directory to have :func:`inject_faults` write what each producer injected there
#: (``truth-<producer id>.json``) when its process ends.
TRUTH_DIR_ENV = "INGESTLOAD_TEST_TRUTH_DIR"


def inject_faults(
    *,
    lose: Iterable[int] = (),
    duplicate: Iterable[int] = (),
    corrupt: Iterable[int] = (),
    fail: Iterable[int] = (),
    misroute: Iterable[int] = (),
    late_duplicate: Iterable[int] = (),
    late_corrupt: Iterable[int] = (),
    misroute_to: str | None = None,
    events: Any = None,
    phantom: Iterable[int] = (),
) -> None:
    """In a locustfile: make every producer of the run lose, duplicate, corrupt, misroute or fail
    these seqs, send phantom copies of them (a seq never sent) or late copies after the drain (see
    :class:`FaultyProducer`).

    With ``$INGESTLOAD_TEST_TRUTH_DIR`` set, each producer writes what it really injected to
    ``truth-<producer id>.json`` there when its process quits — the truth a test compares with.

    Example::

        from ingestload.users import KafkaProducerUser
        from ingestload.testing import inject_faults

        inject_faults(lose={5, 17}, duplicate={30}, corrupt={40}, misroute={50})

        class Devices(KafkaProducerUser):
            pass
    """
    from ingestload.locust.process import state_of

    if events is None:
        from locust import events as default_events

        events = default_events
    faults = {
        "lose": set(lose),
        "duplicate": set(duplicate),
        "corrupt": set(corrupt),
        "fail": set(fail),
        "misroute": set(misroute),
        "late_duplicate": set(late_duplicate),
        "late_corrupt": set(late_corrupt),
        "phantom": set(phantom),
    }
    made: list[FaultyProducer] = []

    def wrap(client: Any) -> FaultyProducer:
        faulty = FaultyProducer(
            client.producer, topics=client.factory.topics, misroute_to=misroute_to, **faults
        )
        made.append(faulty)
        return faulty

    def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
        if runner is None:
            return
        state = state_of(environment)
        state.set_producer_wrapper(wrap)

        def release_late() -> None:
            for faulty in made:
                faulty.release_late()

        import gevent

        # A second after this process drained: after the run's final ledger (the master's too).
        state.after_drain.append(lambda: gevent.spawn_later(LATE_AFTER_DRAIN, release_late))

    def on_quitting(environment: Any = None, **_: Any) -> None:
        folder = os.environ.get(TRUTH_DIR_ENV)
        if folder:
            for faulty in made:
                if faulty.producer_id is not None:
                    path = Path(folder) / f"truth-{faulty.producer_id:016x}.json"
                    path.write_text(json.dumps(faulty.truth))

    events.init.add_listener(on_init)
    events.quitting.add_listener(on_quitting)


def start_seqs_at(first_seq: int, events: Any = None) -> None:
    """In a locustfile: every sender of this process starts each run at ``first_seq`` instead of 0
    (e.g. just below 2**32, to cross it without sending four billion messages first)."""
    from ingestload.locust.process import state_of

    if events is None:
        from locust import events as default_events

        events = default_events

    def on_init(environment: Any, runner: Any = None, **_: Any) -> None:
        if runner is not None:
            state_of(environment).first_seq = first_seq

    events.init.add_listener(on_init)
