"""A minimal, cheap WebSocket receiver for many connections in one process — the benches' eyes.

The fan-out benches compare servers, so the receiving side must cost as little as possible
and the same for every server: one asyncio protocol per connection (uvloop when present),
the opening handshake written by hand, server frames parsed from the byte stream (a
server never masks, so a frame is 2–10 bytes of header and the payload), pings answered,
and every complete text or binary message handed to ``on_message(connection_index, payload)``.
It is not a general client (no fragmentation across reads of control frames, no extensions):
just enough of RFC 6455 for these benches.

Example::

    probe = Probe("127.0.0.1", 8765, "/ws", count=100, on_message=count_it)
    await probe.connect()
    probe.send_all(b'{"type":"subscribe","topics":["gov-alarm"]}')
    await probe.closed(timeout=30)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import struct
import subprocess
from collections.abc import Callable
from typing import Any

OnMessage = Callable[[int, bytes], None]


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (clients must mask), FIN set."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    # XOR with the repeated key through big integers: fast enough for control messages.
    repeated = (key * (n // 4 + 1))[:n]
    masked = (
        (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big") if n else b""
    )
    return head + key + masked


class _Connection(asyncio.Protocol):
    def __init__(self, index: int, on_message: OnMessage, request: bytes) -> None:
        self.index = index
        self.on_message = on_message
        self.request = request
        self.buffer = bytearray()
        self.handshaken = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.fragments: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.handshaken.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[:end]).split(b"\r\n", 1)[0]
            del buffer[: end + 4]
            if b" 101 " not in status:
                self.handshaken.set_exception(ConnectionError(f"handshake refused: {status!r}"))
                return
            self.handshaken.set_result(None)
        pos = 0
        size = len(buffer)
        on_message = self.on_message
        while size - pos >= 2:
            b0 = buffer[pos]
            n = buffer[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buffer[pos + 2] << 8) | buffer[pos + 3]
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = struct.unpack_from("!Q", buffer, pos + 2)[0]
                head = 10
            if size - pos < head + n:
                break
            payload = bytes(buffer[pos + head : pos + head + n])
            pos += head + n
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                if b0 & 0x80:
                    on_message(self.index, payload)
                else:
                    self.fragments = [payload]
            elif opcode == 0:
                self.fragments.append(payload)
                if b0 & 0x80:
                    on_message(self.index, b"".join(self.fragments))
                    self.fragments = []
            elif opcode == 9 and self.transport is not None:
                self.transport.write(mask_frame(10, payload))
            elif opcode == 8 and self.transport is not None:
                self.transport.write(mask_frame(8, payload[:2]))
                self.transport.close()
        if pos:
            del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshaken.done():
            self.handshaken.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.done.done():
            self.done.set_result(None)

    def send(self, payload: bytes, opcode: int = 1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(mask_frame(opcode, payload))


class Probe:
    """``count`` WebSocket connections to one server, every message to ``on_message``."""

    def __init__(self, host: str, port: int, path: str, count: int, on_message: OnMessage) -> None:
        self.host, self.port, self.path, self.count = host, port, path, count
        self.on_message = on_message
        self.connections: list[_Connection] = []

    def _request(self) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    async def connect(self, parallel: int = 50) -> None:
        """Open every connection (``parallel`` handshakes at a time)."""
        loop = asyncio.get_running_loop()

        async def one(i: int) -> _Connection:
            _, protocol = await loop.create_connection(
                lambda: _Connection(i, self.on_message, self._request()), self.host, self.port
            )
            await asyncio.wait_for(protocol.handshaken, 30)
            return protocol

        for first in range(0, self.count, parallel):
            batch = range(first, min(self.count, first + parallel))
            self.connections += await asyncio.gather(*(one(i) for i in batch))

    def send(self, index: int, payload: bytes) -> None:
        self.connections[index].send(payload)

    def send_all(self, payload: bytes) -> None:
        for connection in self.connections:
            connection.send(payload)

    async def closed(self, timeout: float) -> bool:
        """Wait until every connection closed; False when ``timeout`` ran out first."""
        pending = [c.done for c in self.connections]
        if not pending:
            return True
        done, _ = await asyncio.wait(pending, timeout=timeout)
        return len(done) == len(pending)

    def close(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.close()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its children so far."""
    import psutil

    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
    return total


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL a server started with ``start_new_session=True`` and everything it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
