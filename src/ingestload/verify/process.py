"""The live verifier in a process of its own, and the handle the Locust master holds on it.

Consuming hundreds of thousands of messages per second must not steal the Locust master's
event loop, so during a run :class:`~ingestload.verify.readback.Readback` runs in its own
process (``python -m ingestload.verify.process``). It speaks JSON lines: the first stdin line
configures it (secrets travel there, never in argv), then ``{"cmd": "finish", …}``; on stdout it
answers ``ready``, periodic ``progress`` and a final ``verdict``. :class:`VerifierProcess` is the
master's side.

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
    try:
        run = Readback(
            setup["config"],
            setup["topics"],
            setup["run_id"],
            envelope_field=setup.get("envelope_field", "_ingestload"),
            body=setup.get("body"),
            thresholds=Thresholds(**setup.get("thresholds", {})),
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
            verdict = run.finish(
                AckLedger.from_json(command["ledger"]),
                drain_timeout=float(command["drain_timeout"]),
                late_grace=float(command.get("late_grace", LATE_GRACE)),
                missing_workers=command.get("missing_workers", []),
                on_progress=lambda p: _emit(out, {"type": "progress", **p}),
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
    ) -> None:
        self.run_id = run_id
        self.on_progress = on_progress
        self.start: Offsets = {}
        self.cluster_id: str | None = None
        """The Kafka cluster's id, as its metadata says (recorded in the ledger file)."""
        self.error: str | None = None
        self.verdict: dict[str, Any] | None = None
        self.report: str | None = None
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
                    self.error = "the verifier process ended without a verdict"
                return
            if message.get("type") == "progress":
                self.on_progress(message)
            elif message.get("type") == "verdict":
                self.verdict, self.report = message["verdict"], message["report"]
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
            self.error = f"the verifier process is gone ({e})"

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._send({"cmd": "stop"})
        with contextlib.suppress(Exception):
            self._proc.wait(5)
        if self._proc.poll() is None:
            self._proc.kill()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The stdin reader thread may sit in a blocking read; leave without waiting for it.
    os._exit(code)
