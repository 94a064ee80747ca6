"""Run a reference server (``ingestload api``, ``ingestload fanout``) in a subprocess and talk to it.

The servers' own helpers build on it: :func:`ingestload.api.testing.run_api`,
:func:`ingestload.fanout.testing.run_gateway`.

Example (pytest)::

    with run_server("api", kafka, "--topic-prefix", prefix) as server:
        assert server.get("/readyz").status == 200
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from ingestload.kafka.broker import free_port


class Reply(NamedTuple):
    """One HTTP response."""

    status: int
    """Status code."""
    headers: dict[str, str]
    """Headers, names in lower case."""
    body: bytes
    """Body as received."""

    def json(self) -> Any:
        return orjson.loads(self.body)


class ServerProcess:
    """A running server process (see :func:`run_server`)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        host: str,
        port: int,
        log_path: Path,
        name: str = "ingestload api",
    ) -> None:
        self.name = name
        self.process = process
        self.host = host
        self.port = port
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        timeout: float = 30.0,
    ) -> Reply:
        """One request on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": content_type} if content_type and body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def post(self, path: str, body: bytes, content_type: str | None = "application/json") -> Reply:
        return self.request("POST", path, body, content_type)

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def wait_until(self, path: str, predicate: Any, timeout: float = 30.0) -> Reply:
        """GET ``path`` until ``predicate(reply)`` holds; raises ``TimeoutError`` with the last reply."""
        deadline = time.monotonic() + timeout
        last: Reply | str = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                last = self.get(path)
                if predicate(last):
                    return last
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise TimeoutError(f"GET {path}: condition not met within {timeout:g}s; last: {last!r}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, wait for a graceful exit; returns the exit code (kills after ``timeout``)."""
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_server(
    subcommand: str,
    bootstrap: str,
    *args: str,
    ready: bool = True,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Start ``ingestload SUBCOMMAND --kafka-bootstrap BOOTSTRAP ARGS…`` (a server with ``--port``,
    ``/healthz`` and ``/readyz``: ``api`` or ``fanout``) on a free port, in its own process group, and
    stop it after (SIGTERM, graceful). The block starts once ``/readyz`` answers 200 (``ready=True``)
    or else ``/healthz`` does."""
    port = free_port()
    fd, name = tempfile.mkstemp(prefix=f"ingestload-{subcommand}-", suffix=".log")
    log_path = Path(name)
    command = [
        sys.executable,
        "-m",
        "ingestload.cli",
        subcommand,
        "--port",
        str(port),
        "--kafka-bootstrap",
        bootstrap,
        *args,
    ]
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    api = ServerProcess(process, "127.0.0.1", port, log_path, f"ingestload {subcommand}")
    try:
        api.wait_until("/readyz" if ready else "/healthz", lambda r: r.status == 200, timeout)
        yield api
    finally:
        if process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                api.stop(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stray workers, if any
        log_path.unlink(missing_ok=True)
