"""A blocking fan-out subscriber that cooperates under gevent: Locust's side of the last hop.

:class:`WebSocketConnection` drives the websockets library's sans-I/O client protocol
(``websockets.client.ClientProtocol``: handshake, framing, pings answered, close) over a
plain :mod:`socket`. Nothing else does I/O, and there are no threads, so under gevent's
monkey patching every blocking read yields to the other greenlets — one Locust process can
hold hundreds of subscribers. Why this client: ``bench/ws_client.py`` measures the CPU per
received message against a bare socket reader and the other gevent-usable clients
(websocket-client, wsproto, websockets' threading client); see docs/benchmarks.md.

:class:`Subscriber` speaks the fan-out protocol (:mod:`ingestload.fanout.protocol`) and files
everything it receives in a :class:`~ingestload.fanout.ledger.SubscriberLedger`.

Example (the future ``WebSocketSubscriberUser`` does this)::

    with Subscriber.connect("ws://127.0.0.1:8765/v1/stream", "w1-u3-0", ["gov-alarm"]) as sub:
        while running:
            sub.pump(timeout=1.0)                   # frames → ledger; returns messages received
        sub.finish(timeout=10)                      # unsubscribe, wait for the clean end
    ledger = sub.ledger                             # to the master at the drain
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from ingestload.fanout import protocol
from ingestload.fanout.errors import FanoutError
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.ledger import CLOSED, SubscriberLedger
from ingestload.fanout.protocol import TopicPartition

#: Bytes asked of the socket per read: a gateway frame of 1,000 messages is ~400 KB.
READ_SIZE = 262_144


class ConnectionClosedError(FanoutError):
    """The WebSocket closed; ``code`` and ``reason`` are what the gateway said (1006 if nothing)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"the gateway closed the connection ({code} {reason})".strip())
        self.code = code
        self.reason = reason


class NoConfirmationError(FanoutError, TimeoutError):
    """The subscribe request was sent and neither a confirmation nor a refusal came in time: the
    gateway may hold a window the subscriber does not know."""


class WebSocketConnection:
    """One client WebSocket over a blocking socket (gevent-cooperative once patched)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        max_size: int | None = 64 * 1024 * 1024,
        receive_buffer: int | None = None,
    ) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        uri = parse_uri(url)
        if uri.secure:
            raise FanoutError(f"{url}: wss:// is not supported by this client yet; use ws://")
        self.url = url
        self.protocol = ClientProtocol(uri, max_size=max_size)
        if receive_buffer is None:
            self.sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        else:  # a small kernel buffer (set before connecting) makes a slow reader push back sooner
            family = socket.getaddrinfo(uri.host, uri.port, type=socket.SOCK_STREAM)[0][0]
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect((uri.host, uri.port))
            except BaseException:
                self.sock.close()
                raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._messages: list[bytes] = []
        self._fragments: list[bytes] = []
        self._closed: ConnectionClosedError | None = None
        self.protocol.send_request(self.protocol.connect())
        self._send_pending()
        deadline = time.monotonic() + timeout
        while self.protocol.handshake_exc is None and not self._handshaken():
            self._read(max(0.01, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url}: no WebSocket handshake within {timeout:g}s")
        if self.protocol.handshake_exc is not None:
            self.sock.close()
            raise FanoutError(f"{url}: the WebSocket handshake failed: {self.protocol.handshake_exc}")

    def _handshaken(self) -> bool:
        from websockets.protocol import State

        return self.protocol.state is State.OPEN

    def _send_pending(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
            else:  # the protocol asks to half-close after a close frame
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)

    def _read(self, timeout: float | None) -> bool:
        """Read once from the socket and collect complete messages; False on a timeout."""
        from websockets.frames import Frame, Opcode

        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(READ_SIZE)
        except TimeoutError:
            return False
        except OSError as e:
            self._closed = ConnectionClosedError(1006, f"connection lost: {e}")
            self.sock.close()
            raise self._closed from None
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if not isinstance(event, Frame):
                continue  # the handshake response: state and handshake_exc tell the rest
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    self._messages.append(bytes(event.data))
                else:
                    self._fragments = [bytes(event.data)]
            elif opcode is Opcode.CONT:
                self._fragments.append(bytes(event.data))
                if event.fin:
                    self._messages.append(b"".join(self._fragments))
                    self._fragments = []
        self._send_pending()
        if (not data or self.protocol.close_code is not None) and self._closed is None:
            code = self.protocol.close_code or 1006
            self._closed = ConnectionClosedError(code, self.protocol.close_reason or "")
            self.sock.close()  # what arrived before the close is already in self._messages
        return True

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next message, or ``None`` when none arrived within ``timeout``.

        Raises :class:`ConnectionClosedError` once the connection is closed and every message that
        arrived before the close was returned.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._messages:
            if self._closed is not None:
                raise self._closed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._read(remaining)
        return self._messages.pop(0)

    def recv_all(self, timeout: float | None = None) -> list[bytes]:
        """Every message already received (waiting up to ``timeout`` for the first one)."""
        first = self.recv(timeout)
        if first is None:
            return []
        rest, self._messages = self._messages, []
        return [first, *rest]

    def send(self, text: bytes) -> None:
        self.protocol.send_text(text)
        self._send_pending()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close politely (best effort), then the socket."""
        from websockets.protocol import State

        try:
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(code, reason)
                self._send_pending()
        except OSError:
            pass
        finally:
            self.sock.close()


class Subscriber:
    """One subscription over one connection, its frames filed in :attr:`ledger`."""

    def __init__(
        self, connection: WebSocketConnection, ledger: SubscriberLedger, label: str | None = None
    ) -> None:
        self.connection = connection
        self.ledger = ledger
        self.label = label
        self.messages = 0
        """Messages received so far."""
        self.last_frame: dict[str, Any] | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        name: str,
        topics: Iterable[str],
        filter: FieldFilter | None = None,
        *,
        label: str | None = None,
        timeout: float = 10.0,
        ledger: SubscriberLedger | None = None,
        receive_buffer: int | None = None,
    ) -> Subscriber:
        """Connect, subscribe, and wait for the confirmation (its window's start).

        ``ledger``: file into this one (e.g. a subclass that also feeds Locust's stats) instead of
        a new ``SubscriberLedger(name, topics, filter)``; ``receive_buffer``: the socket's
        ``SO_RCVBUF`` in bytes (default: the kernel's, auto-tuned).
        """
        ledger = SubscriberLedger(name, topics, filter) if ledger is None else ledger
        connection = WebSocketConnection(url, timeout=timeout, receive_buffer=receive_buffer)
        subscriber = cls(connection, ledger, label)
        try:
            connection.send(protocol.subscribe_request(ledger.topics, filter, label))
            deadline = time.monotonic() + timeout
            while ledger.state != "open":
                frame = subscriber.next_frame(max(0.0, deadline - time.monotonic()))
                if frame is None:
                    raise NoConfirmationError(f"{url}: no subscription confirmation within {timeout:g}s")
                if frame["type"] == "error":
                    raise FanoutError(
                        f"{url}: subscribe refused: {frame.get('error')}: {frame.get('detail')}"
                    )
        except BaseException:
            connection.close()
            raise
        return subscriber

    def next_frame(self, timeout: float | None) -> dict[str, Any] | None:
        """One gateway frame, filed in the ledger; ``None`` after ``timeout`` without one."""
        try:
            data = self.connection.recv(timeout)
        except ConnectionClosedError:
            self.ledger.disconnected()
            raise
        if data is None:
            return None
        return self._file(data)

    def _file(self, data: bytes) -> dict[str, Any]:
        frame = protocol.parse_server(data)
        now_us = time.time_ns() // 1000
        self.ledger.feed(frame, now_us)
        if frame["type"] == "messages":
            self.messages += len(frame["messages"])
        self.last_frame = frame
        return frame

    def pump(self, timeout: float | None = 1.0) -> int:
        """Receive whatever arrives within ``timeout`` (at least one read); returns messages filed."""
        before = self.messages
        try:
            batch = self.connection.recv_all(timeout)
        except ConnectionClosedError:
            self.ledger.disconnected()
            raise
        for data in batch:
            self._file(data)
        return self.messages - before

    def caught_up(self, end: Mapping[TopicPartition, int]) -> bool:
        """True when the gateway vouched (progress) for every partition of the window up to ``end``."""
        vouched = self.ledger.vouched
        return all(vouched.get(tp, -1) >= offset for tp, offset in end.items() if tp[0] in self.ledger.topics)

    def drain(self, end: Mapping[TopicPartition, int], timeout: float) -> bool:
        """Ask for progress until the gateway vouched for ``end`` (Kafka's end offsets after the
        producers drained); False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        while not self.caught_up(end):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.connection.send(protocol.PROGRESS)
            asked = time.monotonic()
            while time.monotonic() - asked < 0.5 and time.monotonic() < deadline:
                frame = self.next_frame(0.1)
                if frame is not None and frame["type"] == "progress":
                    break
        return True

    def finish(self, timeout: float = 10.0) -> bool:
        """Unsubscribe and read until the clean end; True when it arrived (the window is closed)."""
        if self.ledger.state != "open":
            return self.ledger.state == CLOSED
        self.connection.send(protocol.UNSUBSCRIBE)
        deadline = time.monotonic() + timeout
        while self.ledger.state == "open" and time.monotonic() < deadline:
            self.next_frame(max(0.0, deadline - time.monotonic()))
        return self.ledger.state == CLOSED

    def close(self) -> None:
        """Close the connection; a window without a clean end becomes broken."""
        self.connection.close()
        self.ledger.disconnected()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
