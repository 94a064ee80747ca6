"""A TCP proxy for the tests that can drop every connection at once: to its clients, a broker restart
that keeps every record (as a real Kafka with its log on disk does), which the embedded broker cannot.

It runs as a process of its own (the tests' process is monkey-patched by gevent, where its threads
would stall whenever the test blocks in librdkafka):

    with bouncer(target_port) as proxy:         # listens on 127.0.0.1:proxy.port
        …
        proxy.bounce()                           # cut every connection, refuse new ones for 2 s
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bouncer:
    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = port or _free_port()
        self._closed_until = 0.0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", self.port))
        self._server.listen(128)
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Bouncer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._server.close()
        self._cut()

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if time.monotonic() < self._closed_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def bounce(self, down_for: float) -> None:
        """Cut every connection and refuse new ones for ``down_for`` seconds."""
        self._closed_until = time.monotonic() + down_for
        self._cut()


class Proxy:
    """The test's handle on a bouncer process."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process, self.port = process, port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def bounce(self) -> None:
        """Cut every connection now; new ones are refused for the process's --down seconds."""
        self.process.send_signal(signal.SIGUSR1)


@contextlib.contextmanager
def bouncer(target_port: int, down_for: float = 2.0) -> Iterator[Proxy]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__)), str(target_port), str(port), str(down_for)],
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        yield Proxy(process, port)
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    target, listen, down = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    with Bouncer(target, listen) as running:
        signal.signal(signal.SIGUSR1, lambda *_: running.bounce(down))
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        print("ready", flush=True)
        while True:
            time.sleep(3600)
