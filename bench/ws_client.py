"""Which WebSocket client should a Locust subscriber use? CPU per received message, under gevent.

Locust runs under gevent's monkey patching, so the subscriber must block only in patched
socket calls. Each client below runs in its own process with ``gevent.monkey.patch_all()``,
receives the same gateway frames (fan-out protocol ``messages`` frames of ``--batch``
messages of ~420 bytes, as ``ingestload fanout`` sends them) from a local websockets server
that writes as fast as the client reads, and reports its process CPU per message:

* ``bare socket``         — recv() and a hand-written frame parser, nothing else: the floor;
* ``websocket-client``    — ``websocket.create_connection(...).recv()`` (pure Python);
* ``wsproto``             — python-hyper's sans-I/O protocol over the socket;
* ``websockets.sync``     — the websockets library's threading client (greenlets under gevent);
* ``websockets sans-I/O`` — the websockets library's ``ClientProtocol`` over the socket
  (what :class:`ingestload.fanout.client.WebSocketConnection` does).

Then the whole subscriber — frames parsed (orjson) and every message filed in a
``SubscriberLedger`` — once over the bare socket (the floor for that work), once as
:class:`ingestload.fanout.client.Subscriber`, and once as what a ``WebSocketSubscriberUser``
does per read: the Subscriber filing into an ``ObservedLedger``, whose every message is a ``WS``
request in the Locust statistics of a real local runner (``WsStats.flush()`` after each read, as
the user calls it; the rows are checked to hold every message).

    python bench/ws_client.py [--messages 200000] [--batch 1,100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CLIENTS = ("bare", "websocket-client", "wsproto", "websockets-sync", "websockets-sansio")
SUBSCRIBERS = ("bare+ledger", "ingestload", "ingestload-user")
LABELS = {
    "bare": "bare socket",
    "websocket-client": "websocket-client",
    "wsproto": "wsproto",
    "websockets-sync": "websockets.sync",
    "websockets-sansio": "websockets sans-I/O",
    "bare+ledger": "bare socket + parse + ledger",
    "ingestload": "ingestload Subscriber",
    "ingestload-user": "WebSocketSubscriberUser's work",
}
TOPIC = "gov-movementData"


def frames(total: int, batch: int) -> list[bytes]:
    """The gateway frames: a subscribed confirmation, then ``total`` messages in ``messages`` frames."""
    import orjson

    from ingestload.fanout import protocol

    value = orjson.dumps(
        {
            "Header": {"ControllerType": "LCE", "EquipmentId": "LCE-00417223", "MessageType": "movementData"},
            "Param": {"Timestamp": "2026-11-30T12:34:56.789Z", "Floor": 17, "Speed": 1.75, "Load": 412},
            "_pad": "x" * 200,
        }
    )
    envelope = bytes(25) + (time.time_ns() // 1000).to_bytes(8, "big") + bytes(4)
    out = [protocol.subscribed("w0-1", protocol.Subscribe((TOPIC,), None, None), {(TOPIC, 0): 0})]
    for first in range(0, total, batch):
        out.append(
            protocol.messages(
                protocol.message_fragment(TOPIC, 0, o, 0, envelope, value, True)
                for o in range(first, min(total, first + batch))
            )
        )
    return out


async def serve(port: int, total: int, batch: int) -> None:
    from websockets.asyncio.server import serve as ws_serve

    prepared = frames(total, batch)

    async def handler(ws: object) -> None:
        for frame in prepared:
            await ws.send(frame, text=True)  # type: ignore[attr-defined]
        await ws.close()  # type: ignore[attr-defined]

    async with ws_serve(handler, "127.0.0.1", port, compression=None, max_size=None):
        await asyncio.sleep(3600)


# -- the clients (each in its own gevent-patched process) ------------------------------------------


def run_client(kind: str, url: str) -> tuple[int, float]:
    """Receive until the server closes; (messages, CPU seconds from the first frame)."""
    from gevent import monkey

    monkey.patch_all()
    import orjson

    from ingestload.fanout.ledger import SubscriberLedger

    messages = 0
    cpu0 = None
    ledger = SubscriberLedger("bench", [TOPIC])

    def count(payload: bytes) -> None:
        nonlocal messages, cpu0
        if cpu0 is None:
            cpu0 = time.process_time()
        # A frame's message count, without parsing it: the transport's cost alone.
        messages += payload.count(b'"offset":')

    def file(payload: bytes) -> None:
        nonlocal messages, cpu0
        if cpu0 is None:
            cpu0 = time.process_time()
        frame = orjson.loads(payload)
        ledger.feed(frame, time.time_ns() // 1000)
        if frame["type"] == "messages":
            messages += len(frame["messages"])

    if kind in ("bare", "bare+ledger"):
        bare_receive(url, count if kind == "bare" else file)
    elif kind == "websocket-client":
        import websocket

        ws = websocket.create_connection(url)
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            while True:
                data = ws.recv()
                if not data:
                    break
                count(data if isinstance(data, bytes) else data.encode())
    elif kind == "wsproto":
        wsproto_receive(url, count)
    elif kind == "websockets-sync":
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        with connect(url, compression=None, max_size=None) as ws, contextlib.suppress(ConnectionClosed):
            while True:
                count(ws.recv(decode=False))
    elif kind == "websockets-sansio":
        from ingestload.fanout.client import ConnectionClosedError, WebSocketConnection

        connection = WebSocketConnection(url)
        with contextlib.suppress(ConnectionClosedError):
            while True:
                for data in connection.recv_all(None):
                    count(data)
    elif kind == "ingestload":
        from ingestload.fanout.client import ConnectionClosedError, Subscriber

        subscriber = Subscriber.connect(url, "bench", [TOPIC])
        cpu0 = time.process_time()
        with contextlib.suppress(ConnectionClosedError):
            while True:
                subscriber.pump(None)
        messages = subscriber.messages
    elif kind == "ingestload-user":
        from locust.env import Environment

        from ingestload.fanout.client import ConnectionClosedError, Subscriber
        from ingestload.locust.ws_stats import ObservedLedger, WsStats

        environment = Environment()
        environment.create_local_runner()  # Locust's stats listener on the request event
        stats = WsStats(environment)
        ledger = ObservedLedger(stats, "bench", [TOPIC])
        subscriber = Subscriber.connect(url, "bench", [TOPIC], ledger=ledger)
        cpu0 = time.process_time()
        with contextlib.suppress(ConnectionClosedError):
            while True:
                subscriber.pump(None)
                stats.flush()
        stats.publish()
        messages = subscriber.messages
        in_stats = environment.stats.entries[(TOPIC, "WS")].num_requests
        if in_stats != messages:
            raise SystemExit(
                f"Locust's WS row holds {in_stats:,} requests for {messages:,} messages received"
            )
    return messages, time.process_time() - (cpu0 or 0.0)


def handshake(sock: object, url: str) -> bytes:
    import base64

    host_port = url.split("//", 1)[1].split("/", 1)[0]
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(  # type: ignore[attr-defined]
        f"GET /stream HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)  # type: ignore[attr-defined]
    return buffer.split(b"\r\n\r\n", 1)[1]


def bare_receive(url: str, on_message: object) -> None:
    import socket
    import struct

    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    sock = socket.create_connection((host, int(port)))
    buffer = bytearray(handshake(sock, url))
    while True:
        data = sock.recv(262144)
        if not data:
            return
        buffer += data
        pos = 0
        while len(buffer) - pos >= 2:
            n = buffer[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if len(buffer) - pos < 4:
                    break
                n, head = (buffer[pos + 2] << 8) | buffer[pos + 3], 4
            elif n == 127:
                if len(buffer) - pos < 10:
                    break
                n, head = struct.unpack_from("!Q", buffer, pos + 2)[0], 10
            if len(buffer) - pos < head + n:
                break
            opcode = buffer[pos] & 0x0F
            if opcode == 8:
                return
            on_message(bytes(buffer[pos + head : pos + head + n]))  # type: ignore[operator]
            pos += head + n
        del buffer[:pos]


def wsproto_receive(url: str, on_message: object) -> None:
    import socket

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage

    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    sock = socket.create_connection((host, int(port)))
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=f"{host}:{port}", target="/stream")))
    parts: list[bytes] = []
    while True:
        data = sock.recv(262144)
        ws.receive_data(data or None)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                continue
            if isinstance(event, TextMessage | BytesMessage):
                chunk = event.data.encode() if isinstance(event.data, str) else event.data
                parts.append(chunk)
                if event.message_finished:
                    on_message(b"".join(parts))  # type: ignore[operator]
                    parts = []
            elif isinstance(event, CloseConnection):
                return
        if not data:
            return


# -- orchestration --------------------------------------------------------------------------------


def measure(kind: str, total: int, batch: int) -> tuple[int, float]:
    from ingestload.kafka.broker import free_port
    from wsprobe import kill_group

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--messages", str(total), "--batch", str(batch)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with contextlib.closing(__import__("socket").create_connection(("127.0.0.1", port), 0.2)):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        out = subprocess.run(
            [sys.executable, __file__, "--client", kind, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout.split()
        return int(out[0]), float(out[1])
    finally:
        kill_group(server)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", default="1,100", help="messages per frame, one run each")
    parser.add_argument("--rounds", type=int, default=2, help="runs per cell (the median is shown)")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.serve:
        import uvloop

        uvloop.run(serve(args.serve, args.messages, int(args.batch)))
        return 0
    if args.client:
        messages, cpu = run_client(args.client, f"ws://127.0.0.1:{args.port}/stream")
        print(messages, cpu)
        return 0
    print(f"{'msgs/frame':>10}  {'client':<32} {'messages':>9} {'µs CPU/msg':>11} {'vs bare':>8}", flush=True)
    for batch in (int(b) for b in args.batch.split(",")):
        floor: dict[str, float] = {}
        for kind in CLIENTS + SUBSCRIBERS:
            runs = sorted(measure(kind, args.messages, batch) for _ in range(args.rounds))
            messages, cpu = runs[len(runs) // 2]
            per = 1e6 * cpu / max(1, messages)
            base = "bare" if kind in CLIENTS else "bare+ledger"
            floor.setdefault(base, per) if kind == base else None
            ratio = per / floor[base] if base in floor else float("nan")
            print(f"{batch:>10}  {LABELS[kind]:<32} {messages:>9,} {per:>11.2f} {ratio:>7.2f}×", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
