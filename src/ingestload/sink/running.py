"""Run the reference sink (``ingestload sink``) in a subprocess: for ``ingestload run --sink``, the
tests and the benchmarks.

The database address reaches the child in its environment (``INGESTLOAD_SINK``), never in its argv.

Example::

    with run_sink(bootstrap, dsn, "--sink-topics", "gov-alarm") as sink:
        …
        sink.kill()                 # a crash: what it wrote stays, what it had not committed is read again
        sink.start()                # the same sink again (same group)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from ingestload.errors import DatabaseError

#: What the sink prints once it is connected, has its tables and has subscribed.
READY = "ingestload sink: ready"


class SinkProcess:
    """One ``ingestload sink`` child process (restartable: :meth:`start` again after :meth:`kill`)."""

    def __init__(
        self,
        bootstrap: str,
        dsn: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        command: Sequence[str] | None = None,
    ) -> None:
        self.command = list(command or [sys.executable, "-m", "ingestload.cli", "sink"])
        self.command += ["--kafka-bootstrap", bootstrap, *args]
        self.env = {**os.environ, **(env or {}), "INGESTLOAD_SINK": dsn}
        fd, name = tempfile.mkstemp(prefix="ingestload-sink-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 60.0) -> SinkProcess:
        """Start it and wait for :data:`READY` in its output."""
        self._log_from = self.log_path.stat().st_size
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()[self._log_from :]
            if READY in text:
                return self
            if self.process.poll() is not None:
                raise DatabaseError(
                    f"the reference sink exited with {self.process.returncode}: {text.strip()[-500:]}"
                )
            time.sleep(0.05)
        self.kill()
        raise DatabaseError(f"the reference sink was not ready within {timeout:g}s: {self.log()[-500:]}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM: it finishes its batch, commits and exits; killed after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def remove_log(self) -> None:
        """Delete its output file (once read: nothing of a run is left in /tmp)."""
        self.log_path.unlink(missing_ok=True)

    def follow(self, on_line: Callable[[str], None], interval: float = 0.5) -> threading.Event:
        """Hand each new line of its output to ``on_line`` from a daemon thread (its status lines on
        the run's console) until the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            position = self.log_path.stat().st_size
            while True:
                finished = stop.wait(interval)
                try:
                    with open(self.log_path, "rb") as log:
                        log.seek(position)
                        chunk = log.read()
                except FileNotFoundError:  # removed after the run
                    return
                complete = chunk[: chunk.rfind(b"\n") + 1]
                position += len(complete)
                for line in complete.decode(errors="replace").splitlines():
                    on_line(line)
                if finished:
                    return

        threading.Thread(target=loop, name="ingestload-sink-log", daemon=True).start()
        return stop


@contextlib.contextmanager
def run_sink(
    bootstrap: str, dsn: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> Iterator[SinkProcess]:
    """A reference sink for the block (stopped with SIGTERM after, killed if it hangs)."""
    sink = SinkProcess(bootstrap, dsn, args, env)
    sink.start(timeout)
    try:
        yield sink
    finally:
        sink.stop()
        sink.kill()
        sink.remove_log()
