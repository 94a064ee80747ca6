"""Which WebSocket server stack fans out fastest? Side by side, in one run, the same source.

Each stack serves the same thing: once ``--subscribers`` connections are open, an in-process
source makes ``--rate`` messages per second (≈400-byte JSON, the send time in µs at a fixed
position) for ``--duration`` seconds and pushes each one to every connection as its own text
frame; then it sends ``end <count>`` and closes. One receiving process (bench/wsprobe.py:
asyncio + uvloop, frames parsed by hand, the same for every stack) counts deliveries and
latencies (send time → received); the server's CPU (process tree) is read from /proc.

Stacks:

* ``websockets`` — the websockets library (asyncio implementation) on uvloop, compression off,
  pushing with ``broadcast()``: a synchronous write into every connection's transport, no
  task per connection.
* ``websockets-tasks`` — the same library, a task per connection awaiting ``send()``.
* ``granian`` — Granian's RSGI WebSocket (HTTP and frames in Rust), a task per connection
  awaiting ``transport.send_str()``.
* ``uvicorn-websockets`` / ``uvicorn-wsproto`` — uvicorn (uvloop) with either WebSocket
  implementation, ASGI ``websocket.send`` awaited per frame by a task per connection.
* ``tornado`` — Tornado's ``write_message`` (seed 003's stack).

    python bench/ws_stacks.py [--subscribers 100,500] [--rate 500,200] [--duration 8]

Each pair (subscribers[i], rate[i]) is one load; every stack runs every load.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

STACKS = ("websockets", "websockets-tasks", "granian", "uvicorn-websockets", "uvicorn-wsproto", "tornado")
#: A catalogue-like message body (~360 bytes), the same for every frame.
VALUE = (
    '{"Header":{"ControllerType":"LCE","EquipmentId":"LCE-00417223","MessageId":'
    '"2b0c7c1e-8f5e-4b57-9d3a-6a1d0e3c9b11","MessageType":"movementData","SchemaVersion":"1.2"},'
    '"Param":{"Direction":"UP","DoorState":"CLOSED","Floor":17,"Load":412,"Speed":1.75,'
    '"Timestamp":"2026-11-30T12:34:56.789Z","TripId":"c2d4f0a8","Acceleration":0.42,'
    '"Position":51.25,"Motor":{"Current":31.5,"Temperature":48.1}}}'
)


def frame(seq: int) -> str:
    # sent_at first, 16 digits at bytes 11..27: the probe reads it without parsing JSON.
    return f'{{"sent_at":{time.time_ns() // 1000},"seq":{seq},"value":{VALUE}}}'


class Source:
    """Makes the messages on schedule and hands each one to ``push`` (one call per message)."""

    def __init__(self, rate: float, duration: float, subscribers: int) -> None:
        self.rate, self.duration, self.subscribers = rate, duration, subscribers
        self.sent = 0
        self.started = asyncio.Event()

    async def run(self, push: Any, finish: Any) -> None:
        await self.started.wait()
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            due = int(min(elapsed, self.duration) * self.rate)
            while self.sent < due:
                push(frame(self.sent))
                self.sent += 1
            if elapsed >= self.duration:
                break
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)
        await finish(f"end {self.sent}")


class Fanout:
    """Per-connection queues for the stacks that need a task per connection to await a send."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.queues: list[tuple[collections.deque[str], asyncio.Event]] = []

    def add(self) -> tuple[collections.deque[str], asyncio.Event]:
        pair: tuple[collections.deque[str], asyncio.Event] = (collections.deque(), asyncio.Event())
        self.queues.append(pair)
        if len(self.queues) == self.source.subscribers:
            self.source.started.set()
        return pair

    def push(self, text: str) -> None:
        for queue, event in self.queues:
            queue.append(text)
            event.set()

    async def finish(self, text: str) -> None:
        self.push(text)

    async def pump(self, queue: collections.deque[str], event: asyncio.Event, send: Any) -> None:
        while True:
            await event.wait()
            event.clear()
            while queue:
                text = queue.popleft()
                await send(text)
                if text.startswith("end "):
                    return


def settings() -> tuple[float, float, int]:
    return float(os.environ["WSB_RATE"]), float(os.environ["WSB_DURATION"]), int(os.environ["WSB_N"])


def shared_fanout(state: dict[str, Any]) -> Fanout:
    """The process's one source and fan-out, started by the first connection (ASGI/RSGI apps)."""
    if "fan" not in state:
        source = Source(*settings())
        state["fan"] = fan = Fanout(source)
        state["task"] = asyncio.get_running_loop().create_task(source.run(fan.push, fan.finish))
    fan: Fanout = state["fan"]
    return fan


# -- websockets --------------------------------------------------------------------------------


async def serve_websockets(port: int, tasks: bool) -> None:
    from websockets.asyncio.server import broadcast, serve

    rate, duration, n = settings()
    source = Source(rate, duration, n)
    fan = Fanout(source)
    connections: set[Any] = set()
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        if tasks:
            queue, event = fan.add()
            await fan.pump(queue, event, ws.send)
        else:
            connections.add(ws)
            if len(connections) == n:
                source.started.set()
            await done.wait()

    async def finish(text: str) -> None:
        if tasks:
            await fan.finish(text)
        else:
            broadcast(connections, text)
            done.set()

    push = fan.push if tasks else (lambda text: broadcast(connections, text))
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        await source.run(push, finish)
        await asyncio.sleep(60)


# -- granian (RSGI) ----------------------------------------------------------------------------

_GRANIAN: dict[str, Any] = {}


async def rsgi_app(scope: Any, proto: Any) -> None:
    if scope.proto != "ws":
        proto.response_str(status=404, headers=[], body="")
        return
    fan = shared_fanout(_GRANIAN)
    transport = await proto.accept()
    queue, event = fan.add()
    await fan.pump(queue, event, transport.send_str)
    proto.close(1000)


def serve_granian(port: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        "ws_stacks:rsgi_app", address="127.0.0.1", port=port, interface=Interfaces.RSGI, loop=Loops.uvloop
    ).serve()


# -- uvicorn (ASGI) ----------------------------------------------------------------------------

_ASGI: dict[str, Any] = {}


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    fan = shared_fanout(_ASGI)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    queue, event = fan.add()

    async def send_text(text: str) -> None:
        await send({"type": "websocket.send", "text": text})

    await fan.pump(queue, event, send_text)
    await send({"type": "websocket.close", "code": 1000})


def serve_uvicorn(port: int, ws: str) -> None:
    import uvicorn

    uvicorn.run(
        "ws_stacks:asgi_app",
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        ws=ws,
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="off",
    )


# -- tornado -----------------------------------------------------------------------------------


def serve_tornado(port: int) -> None:
    import tornado.ioloop
    import tornado.web
    import tornado.websocket

    rate, duration, n = settings()
    sockets: set[Any] = set()

    async def main() -> None:
        source = Source(rate, duration, n)

        class Handler(tornado.websocket.WebSocketHandler):
            def open(self, *args: Any) -> None:
                self.set_nodelay(True)
                sockets.add(self)
                if len(sockets) == n:
                    source.started.set()

        def push(text: str) -> None:
            for ws in sockets:
                ws.write_message(text)

        async def finish(text: str) -> None:
            push(text)

        tornado.web.Application([(r"/ws", Handler)]).listen(port, "127.0.0.1")
        await source.run(push, finish)
        await asyncio.sleep(60)

    asyncio.run(main())


def serve(stack: str, port: int) -> None:
    if stack in ("websockets", "websockets-tasks"):
        import uvloop

        uvloop.run(serve_websockets(port, tasks=stack == "websockets-tasks"))
    elif stack == "granian":
        serve_granian(port)
    elif stack.startswith("uvicorn-"):
        serve_uvicorn(port, stack.split("-", 1)[1])
    elif stack == "tornado":
        serve_tornado(port)


# -- measuring ---------------------------------------------------------------------------------


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1000


async def measure(port: int, pid: int, subscribers: int, duration: float) -> dict[str, Any]:
    from wsprobe import Probe, tree_cpu

    latencies: list[int] = []
    append = latencies.append
    expected = [0]
    received = [0]
    first_last = [0.0, 0.0]

    def on_message(index: int, payload: bytes) -> None:
        now = time.time_ns() // 1000
        if payload.startswith(b"end "):
            expected[0] = max(expected[0], int(payload[4:]))  # what the source sent to everyone
            return
        append(now - int(payload[11:27]))
        received[0] += 1
        if not first_last[0]:
            first_last[0] = time.monotonic()
        first_last[1] = time.monotonic()

    probe = Probe("127.0.0.1", port, "/ws", subscribers, on_message)
    deadline = time.monotonic() + 20
    while True:
        try:
            await probe.connect()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            probe.connections.clear()
            await asyncio.sleep(0.2)
    cpu0 = tree_cpu(pid)
    await probe.closed(timeout=duration + 30)
    cpu1 = tree_cpu(pid)
    probe.close()
    latencies.sort()
    span = max(1e-9, first_last[1] - first_last[0])
    return {
        "received": received[0],
        "expected": expected[0] * subscribers if expected[0] else None,
        "per_s": received[0] / span,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] / 1000 if latencies else float("nan"),
        "cpu_s": cpu1 - cpu0,
        "span": span,
    }


def run_one(stack: str, subscribers: int, rate: float, duration: float) -> dict[str, Any]:
    import uvloop

    from ingestload.kafka.broker import free_port
    from wsprobe import kill_group

    port = free_port()
    env = {**os.environ, "WSB_RATE": str(rate), "WSB_DURATION": str(duration), "WSB_N": str(subscribers)}
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", stack, "--port", str(port)],
        env=env,
        cwd=HERE,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        result = uvloop.run(measure(port, server.pid, subscribers, duration))
    finally:
        kill_group(server)
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="100,500")
    parser.add_argument("--rate", default="500,200", help="messages/s from the source, one per load")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    loads = list(
        zip(
            (int(s) for s in args.subscribers.split(",")),
            (float(r) for r in args.rate.split(",")),
            strict=True,
        )
    )
    stacks = args.stacks.split(",")
    header = (
        f"{'stack':<20} {'subs':>5} {'msg/s':>6} {'offered/s':>10} {'delivered/s':>12} {'missed':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'server CPU':>10} {'µs CPU/delivery':>16}"
    )
    print(header, flush=True)
    for subscribers, rate in loads:
        for stack in stacks:
            r = run_one(stack, subscribers, rate, args.duration)
            # Without any end marker (the run timed out first) the offered total is unknown.
            missed = "?" if r["expected"] is None else f"{r['expected'] - r['received']:,}"
            cpu_share = r["cpu_s"] / max(1e-9, r["span"])
            per_delivery = 1e6 * r["cpu_s"] / max(1, r["received"])
            print(
                f"{stack:<20} {subscribers:>5} {rate:>6g} {subscribers * rate:>10,.0f} {r['per_s']:>12,.0f} "
                f"{missed:>8} {r['p50']:>8.1f} {r['p99']:>8.1f} {r['max']:>8.1f} {cpu_share:>9.0%} "
                f"{per_delivery:>16.1f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
