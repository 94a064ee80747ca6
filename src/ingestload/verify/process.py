"""The live verifier in a process of its own, and the handle the Locust master holds on it.

Consuming hundreds of thousands of messages per second must not steal the Locust master's
event loop, so during a run :class:`~ingestload.verify.readback.Readback` runs in its own
process (``python -m ingestload.verify.process``). It speaks JSON lines: the first stdin line
configures it (secrets travel there, never in argv), then ``{"cmd": "finish", …}``; on stdout it
answers ``ready``, periodic ``progress`` and a final ``verdict``. :class:`VerifierProcess` is the
master's side.

With ``--verifier-processes N`` (:class:`VerifierShards`) there are N such processes, each reading
the partitions :func:`~ingestload.verify.shards.shard_of` gives it. At the end each reads its
partitions to their end; the others answer ``shard`` (their state, :meth:`Readback.export`), and the
first takes them in (``{"cmd": "judge", "shards": …}``, :meth:`Readback.merge`) and answers the one
``verdict``: the same verdict one process reading every partition would give.

Example::

    process = VerifierProcess(config, topics, run_id, envelope_field="_ingestload",
                              thresholds=Thresholds(), on_progress=print)
    process.wait_ready()                 # it holds the start offsets: load may begin
    gevent.spawn(process.follow)
    …
    process.finish(ledger, drain_timeout=45, missing_workers=[])
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import orjson

from ingestload import gctune
from ingestload.kafka.admin import Offsets
from ingestload.kafka.config import scrub
from ingestload.messages.ledger import AckLedger
from ingestload.verify.readback import LATE_GRACE, Readback
from ingestload.verify.shards import Shard, shard_of
from ingestload.verify.verdict import Thresholds

#: The verifier process's generation-0 GC threshold: every consumed record is a GC-tracked
#: ``Message`` whose headers become a list and a tuple, so Python's 700 meant a young collection
#: every ~200 records (see :mod:`ingestload.gctune`).
GC_THRESHOLD = 50_000


def _emit(out: IO[bytes], message: Mapping[str, Any]) -> None:
    out.write(orjson.dumps(message) + b"\n")
    out.flush()


def main() -> int:
    """``python -m ingestload.verify.process``: the live verifier (see the module docstring)."""
    logging.basicConfig(level=logging.WARNING, format="[verifier] %(levelname)s %(message)s")
    # Its parent ends it (end of input); a Ctrl-C meant for the load test must not kill the verdict.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout.buffer
    first = sys.stdin.buffer.readline()
    if not first:
        return 2
    setup = orjson.loads(first)
    shard = Shard(*setup["shard"]) if setup.get("shard") else None
    try:
        run = Readback(
            setup["config"],
            setup["topics"],
            setup["run_id"],
            envelope_field=setup.get("envelope_field", "_ingestload"),
            body=setup.get("body"),
            thresholds=Thresholds(**setup.get("thresholds", {})),
            shard=shard,
            start={(t, p): o for t, p, o in setup["start"]} if setup.get("start") else None,
        )
    except Exception as e:
        _emit(out, {"type": "error", "message": scrub(str(e), setup.get("config", {}))})
        return 1
    gctune.tune(GC_THRESHOLD)
    cluster = run.consumer.list_topics(timeout=5.0).cluster_id  # recorded in the ledger file
    start = [[t, p, o] for (t, p), o in sorted(run.start.items())]
    _emit(out, {"type": "ready", "start": start, "cluster_id": cluster})

    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read_commands() -> None:
        for line in sys.stdin.buffer:
            commands.put(orjson.loads(line))
        commands.put(None)  # the master went away

    threading.Thread(target=read_commands, daemon=True).start()
    interval = float(setup.get("interval", 1.0))
    next_report = time.monotonic() + interval
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = {}
        if command is None or command.get("cmd") == "stop":
            return 0
        if command.get("cmd") == "finish":
            run.read_to_end(
                drain_timeout=float(command["drain_timeout"]),
                late_grace=float(command.get("late_grace", LATE_GRACE)),
                on_progress=lambda p: _emit(out, {"type": "progress", **p}),
            )
            if shard is not None and shard.number > 0:  # the first process judges
                _emit(out, {"type": "shard", "state": run.export()})
                return 0
            if shard is not None and not _merge_shards(run, commands, shard):
                return 0
            verdict = run.judge(
                AckLedger.from_json(command["ledger"]), missing_workers=command.get("missing_workers", [])
            )
            _emit(out, {"type": "verdict", "verdict": verdict.to_dict(), "report": verdict.report()})
            return 0
        try:
            run.poll_once()
        except Exception as e:
            run.errors.append(scrub(str(e), run.config))
            time.sleep(0.2)
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + interval
            _emit(out, {"type": "progress", **run.take_progress()})


def _merge_shards(run: Readback, commands: queue.Queue[dict[str, Any] | None], shard: Shard) -> bool:
    """The first of several processes, its own partitions read: wait for the others' states and take
    them in. A process that sent none (it failed, or did not end in time) leaves its partitions
    unjudged: an error, so the verdict is INCONCLUSIVE. False when the master went away."""
    while True:
        command = commands.get()
        if command is None or command.get("cmd") == "stop":
            return False
        if command.get("cmd") == "judge":
            break
    states = list(command.get("shards") or ())
    for number in range(1, shard.of):
        state = states[number - 1] if number - 1 < len(states) else None
        if isinstance(state, Mapping) and "partitions" in state:
            run.merge(state)
        else:
            why = state.get("error") if isinstance(state, Mapping) else None
            run.errors.append(
                f"verifier process {number + 1} of {shard.of} gave no account of its partitions"
                + (f" ({why})" if why else "")
            )
            run.reached_end = False
    return True


class VerifierProcess:
    """The master's handle on the live verifier process (gevent-friendly when Locust is loaded)."""

    def __init__(
        self,
        config: Mapping[str, str],
        topics: Iterable[str],
        run_id: str,
        *,
        envelope_field: str,
        thresholds: Thresholds,
        body: Mapping[str, Any] | None = None,
        on_progress: Callable[[dict[str, Any]], None],
        interval: float = 1.0,
        shard: Shard | None = None,
        start: Offsets | None = None,
    ) -> None:
        self.run_id = run_id
        self.shard = shard
        self.on_progress = on_progress
        self.start: Offsets = {}
        self.cluster_id: str | None = None
        """The Kafka cluster's id, as its metadata says (recorded in the ledger file)."""
        self.error: str | None = None
        self.verdict: dict[str, Any] | None = None
        self.report: str | None = None
        self.state: dict[str, Any] | None = None
        """A process of several but the first: its partitions' state at the end (``shard``)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ingestload.verify.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        setup = {
            "config": dict(config),
            "topics": sorted(set(topics)),
            "run_id": run_id,
            "envelope_field": envelope_field,
            "body": dict(body) if body else None,
            "thresholds": thresholds.__dict__,
            "interval": interval,
            "shard": list(shard) if shard is not None else None,
            # Where to begin (a run's are Kafka's ends when the verifier starts; a bench gives 0).
            "start": [[t, p, o] for (t, p), o in sorted(start.items())] if start is not None else None,
        }
        self._send(setup)
        self._reader: Any = None

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps(message) + b"\n")
        self._proc.stdin.flush()

    def _read(self) -> dict[str, Any] | None:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        return orjson.loads(line) if line else None

    def wait_ready(self) -> bool:
        """Block (cooperatively under gevent) until the verifier has its start offsets."""
        message = self._read()
        if message is None or message.get("type") != "ready":
            self.error = (message or {}).get("message", "the verifier process exited during startup")
            return False
        self.start = {(t, p): o for t, p, o in message["start"]}
        self.cluster_id = message.get("cluster_id")
        return True

    def follow(self) -> None:
        """Read progress until the verdict arrives (run it in a greenlet)."""
        while True:
            message = self._read()
            if message is None:
                if self.verdict is None and self.error is None:
                    if self.shard is not None and self.shard.number > 0:  # it owed its state
                        self.error = f"it ended: {self._exit()}"
                    else:
                        self.error = f"the verifier process ended without a verdict ({self._exit()})"
                return
            if message.get("type") == "progress":
                self.on_progress(message)
            elif message.get("type") == "verdict":
                self.verdict, self.report = message["verdict"], message["report"]
                return
            elif message.get("type") == "shard":
                self.state = message["state"]
                return
            elif message.get("type") == "error":
                self.error = message.get("message")

    def finish(
        self,
        ledger: AckLedger,
        drain_timeout: float,
        missing_workers: Iterable[str],
        late_grace: float = LATE_GRACE,
    ) -> None:
        """Hand over the final ledger; :meth:`follow` then receives the verdict."""
        try:
            self._send(
                {
                    "cmd": "finish",
                    "ledger": ledger.to_json(),
                    "drain_timeout": drain_timeout,
                    "late_grace": late_grace,
                    "missing_workers": sorted(missing_workers),
                }
            )
        except (BrokenPipeError, OSError) as e:
            self.error = self.error or f"the verifier process is gone ({self._exit(e)})"

    def _exit(self, error: Exception | None = None) -> str:
        """How the process ended, in words (``killed by SIGKILL``), as far as is known yet."""
        with contextlib.suppress(Exception):
            self._proc.wait(1)
        code = self._proc.poll()
        if code is None:
            return str(error) if error is not None else "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._send({"cmd": "stop"})
        with contextlib.suppress(Exception):
            self._proc.wait(5)
        if self._proc.poll() is None:
            self._proc.kill()


class VerifierShards:
    """N verifier processes sharing the partitions, behind :class:`VerifierProcess`'s interface:
    ready when all are, progress summed, one verdict (the first process judges with the others'
    states: see the module doc)."""

    def __init__(
        self,
        count: int,
        config: Mapping[str, str],
        topics: Iterable[str],
        run_id: str,
        *,
        envelope_field: str,
        thresholds: Thresholds,
        body: Mapping[str, Any] | None = None,
        on_progress: Callable[[dict[str, Any]], None],
        interval: float = 1.0,
        start: Offsets | None = None,
    ) -> None:
        self.run_id = run_id
        self.on_progress = on_progress
        self.start: Offsets = {}
        self.cluster_id: str | None = None
        self.error: str | None = None
        self._totals: list[dict[str, int]] = [{} for _ in range(count)]
        self._finishing = threading.Event()
        self.processes: list[VerifierProcess] = []
        try:
            for number in range(count):
                self.processes.append(
                    VerifierProcess(
                        config,
                        topics,
                        run_id,
                        envelope_field=envelope_field,
                        thresholds=thresholds,
                        body=body,
                        on_progress=functools.partial(self._progress, number),
                        interval=interval,
                        shard=Shard(number, count),
                        start=start,
                    )
                )
        except OSError:
            self.stop()
            raise

    @property
    def verdict(self) -> dict[str, Any] | None:
        return self.processes[0].verdict

    @property
    def report(self) -> str | None:
        return self.processes[0].report

    def _progress(self, number: int, progress: Mapping[str, Any]) -> None:
        """One process's totals (kept) and latency since its last report (passed on as it is)."""
        self._totals[number] = {k: v for k, v in progress.items() if isinstance(v, int)}
        summed: dict[str, Any] = {}
        for totals in self._totals:
            for key, value in totals.items():
                summed[key] = summed.get(key, 0) + value
        summed["latency"] = progress.get("latency") or {}
        self.on_progress(summed)

    def wait_ready(self) -> bool:
        """Every process holds its start offsets; the start of a partition is its owner's."""
        for number, process in enumerate(self.processes):
            if not process.wait_ready():
                self.error = f"verifier process {number + 1} of {len(self.processes)}: {process.error}"
                return False
        for process in self.processes:
            assert process.shard is not None
            self.start.update(
                (key, offset)
                for key, offset in process.start.items()
                if shard_of(*key, process.shard.of) == process.shard.number
            )
        self.cluster_id = self.processes[0].cluster_id
        return True

    def follow(self) -> None:
        """Read every process until the verdict: once the others have sent their states (or ended),
        hand them to the first (run it in a greenlet)."""
        others = [threading.Thread(target=p.follow, daemon=True) for p in self.processes[1:]]
        first = threading.Thread(target=self.processes[0].follow, daemon=True)
        for thread in [first, *others]:
            thread.start()
        for thread in others:
            thread.join()
        # A process that ended early (it failed) is no reason to judge before the end.
        while not self._finishing.wait(0.5) and first.is_alive():
            pass
        if self._finishing.is_set():
            states: list[dict[str, Any]] = []
            for process in self.processes[1:]:
                state = process.state
                if state is None:
                    state = {"error": process.error or "it ended without one"}
                states.append(state)
            with contextlib.suppress(BrokenPipeError, OSError):
                self.processes[0]._send({"cmd": "judge", "shards": states})
        first.join()
        self.error = self.processes[0].error

    def finish(
        self,
        ledger: AckLedger,
        drain_timeout: float,
        missing_workers: Iterable[str],
        late_grace: float = LATE_GRACE,
    ) -> None:
        """Hand every process the end: the first gets the final ledger, the others read to their ends."""
        self._finishing.set()
        missing = sorted(missing_workers)
        self.processes[0].finish(ledger, drain_timeout, missing, late_grace)
        empty = AckLedger([])
        for process in self.processes[1:]:
            process.finish(empty, drain_timeout, missing, late_grace)
        self.error = self.processes[0].error

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The stdin reader thread may sit in a blocking read; leave without waiting for it.
    os._exit(code)
