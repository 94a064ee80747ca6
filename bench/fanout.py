"""The last hop, side by side: ``ingestload fanout`` vs a replica of seed 003's Tornado service.

For each side (its own embedded broker) and each subscriber count N, on a fresh topic of 3
partitions: N WebSocket subscribers connect (ours subscribe to the topic; the replica starts a
consumer per socket), then one producer process sends ``--rate`` catalogue messages per second
with ingestload envelopes for ``--duration`` seconds, and every subscriber should get every
message. One probe process (bench/wsprobe.py: asyncio + uvloop, frames parsed by hand, the
same for every side) files per subscriber the (partition, offset) pairs it got (bitmaps) and
the latency from the envelope's send time, until everything arrived or nothing came for
``--idle`` seconds. Per row:

* offered — N × rate deliveries/s; delivered — distinct deliveries per second, from the first
  send to the last arrival; missed — N × sent − distinct deliveries; duplicated — copies beyond
  the first; p50/p99 — send → received; CPU — the side's process tree, share of one core;
  probe — the receiving process's share of one core (near 100%, the row measures the probe).

A side *falls behind* at N when it misses or duplicates anything, or its p99 exceeds
``--max-p99`` (ms; a side that cannot keep up queues, and its latency grows without bound); its
sweep stops there, and that N is its **knee**. The summary compares the highest delivered rate
each side sustained with nothing missed or duplicated, within the same p99 bound.

Sides: ``ingestload`` (the reference gateway, 1 worker); ``seed 003, own socket`` (a kafka-python
consumer and producer per socket, each consumer writing to its own socket — the seed repaired);
``seed 003 as written`` (every socket's consumer calls ``write_message_to_all``: N copies of each
message per socket). See bench/seed003_gateway.py.

    python bench/fanout.py [--rate 200] [--subscribers 10,50,100,200,500,1000] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

SIDES = {
    "ingestload": "ingestload fanout",
    "seed003-own": "seed 003, own socket",
    "seed003-all": "seed 003 as written",
}
#: One pushed message in either side's frames (the same JSON): partition, offset, envelope.
MESSAGE = re.compile(
    rb'"partition":(\d+),"offset":(\d+),"timestamp":(?:-?\d+|null),"envelope":"([0-9a-f]{82})"'
)


# -- the producer (its own process) -------------------------------------------------------------


def produce(bootstrap: str, topic: str, rate: float, duration: float) -> int:
    """Send ``rate`` msg/s for ``duration`` s on an open schedule; returns how many were acked."""
    from confluent_kafka import Producer

    from ingestload.messages.catalogue import Catalogue
    from ingestload.messages.envelope import EnvelopeWriter, checksum, topic_tag
    from ingestload.messages.factory import MessageFactory

    factory = MessageFactory(Catalogue.load())
    writer = EnvelopeWriter(os.urandom(8).hex(), producer_id=1)
    acked = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked[0] += 1

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": "2", "acks": "all"})
    t0 = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - t0
        due = int(min(elapsed, duration) * rate)
        while sent < due:
            now_ns = time.time_ns()
            _, value = factory.next(now_ns)
            header = writer.pack(sent, now_ns // 1000, checksum(value), topic_tag(topic))
            producer.produce(topic, value, headers=[("ingestload", header)], on_delivery=on_delivery)
            sent += 1
        producer.poll(0)
        if elapsed >= duration:
            break
        time.sleep(0.005)
    producer.flush(30)
    return acked[0]


# -- one cell ------------------------------------------------------------------------------------


class Tally:
    """What the probe saw, per subscriber: distinct deliveries, duplicates, latency buckets."""

    def __init__(self, subscribers: int) -> None:
        from pyroaring import BitMap

        self.seen = [collections.defaultdict(BitMap) for _ in range(subscribers)]
        self.distinct = 0
        self.duplicated = 0
        self.subscribed = 0
        self.latency: collections.Counter[int] = collections.Counter()
        self.last_arrival = 0.0
        self.last_arrival_us = 0
        self.first_sent_us = 2**63

    def on_message(self, index: int, payload: bytes) -> None:
        from ingestload.fanout.ledger import latency_bucket

        if payload.startswith(b'{"type":"subscribed"'):
            self.subscribed += 1
            return
        now_us = time.time_ns() // 1000
        seen = self.seen[index]
        latency = self.latency
        for partition, offset, envelope in MESSAGE.findall(payload):
            bitmap = seen[partition]
            o = int(offset)
            if o in bitmap:
                self.duplicated += 1
                continue
            bitmap.add(o)
            self.distinct += 1
            sent_us = int(envelope[50:66], 16)
            latency[latency_bucket(now_us - sent_us)] += 1
            if sent_us < self.first_sent_us:
                self.first_sent_us = sent_us
        self.last_arrival = time.monotonic()
        self.last_arrival_us = now_us


def start_server(side: str, bootstrap: str, topic: str, port: int) -> subprocess.Popen[bytes]:
    if side == "ingestload":
        command = [sys.executable, "-m", "ingestload.cli", "fanout", "--kafka-bootstrap", bootstrap]
        command += ["--topics", topic, "--port", str(port), "--create-topics", "false"]
    else:
        command = [sys.executable, str(HERE / "seed003_gateway.py"), "--port", str(port)]
        command += ["--bootstrap", bootstrap, "--topic", topic, "--mode", side.split("-", 1)[1]]
    return subprocess.Popen(
        command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def measure(
    side: str,
    bootstrap: str,
    topic: str,
    port: int,
    server: subprocess.Popen[bytes],
    args: argparse.Namespace,
    n: int,
) -> dict[str, Any]:
    import orjson

    from ingestload.fanout import protocol
    from wsprobe import Probe, tree_cpu

    tally = Tally(n)
    probe = Probe("127.0.0.1", port, protocol.PATH, n, tally.on_message)
    deadline = time.monotonic() + 60
    while True:
        try:
            await probe.connect()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            probe.close()
            probe.connections.clear()
            await asyncio.sleep(0.3)
    if side == "ingestload":
        probe.send_all(orjson.dumps({"type": "subscribe", "topics": [topic]}))
        while tally.subscribed < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # the replica's consumers join; ours are confirmed already
    cpu0 = tree_cpu(server.pid)
    probe_cpu0 = time.process_time()
    t0 = time.monotonic()
    producer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--produce", bootstrap, topic, str(args.rate), str(args.duration),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await producer.communicate()
    sent = int(out.split()[-1])
    expected = sent * n
    while tally.distinct < expected and time.monotonic() - max(tally.last_arrival, t0) < args.idle:
        if time.monotonic() - t0 > args.duration + args.max_drain:
            break
        await asyncio.sleep(0.1)
    cpu = tree_cpu(server.pid) - cpu0
    probe_cpu = time.process_time() - probe_cpu0
    # From the first message's send time to the last arrival: the producer's start-up is not counted.
    span = max(1e-9, (tally.last_arrival_us - tally.first_sent_us) / 1e6) if tally.distinct else 1.0
    probe.close()
    from ingestload.fanout.verdict import Latency

    latency = Latency.of(tally.latency)
    return {
        "sent": sent,
        "missed": expected - tally.distinct,
        "duplicated": tally.duplicated,
        "delivered_per_s": tally.distinct / span,
        "p50": latency.p50_ms,
        "p99": latency.p99_ms,
        "cpu": cpu / span,
        "probe_cpu": probe_cpu / span,
    }


def run_cell(side: str, bootstrap: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    from ingestload.kafka.admin import ensure_topics
    from ingestload.kafka.broker import free_port
    from ingestload.testing import unique_prefix
    from wsprobe import kill_group

    topic = f"{unique_prefix('fan')}trails"
    ensure_topics({"bootstrap.servers": bootstrap}, [topic], 3)
    port = free_port()
    server = start_server(side, bootstrap, topic, port)
    try:
        return uvloop.run(measure(side, bootstrap, topic, port, server, args, n))
    finally:
        kill_group(server)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s into Kafka (default 200)")
    parser.add_argument("--subscribers", default="10,50,100,200,500,1000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of production per row")
    parser.add_argument(
        "--idle", type=float, default=5.0, help="stop waiting after this long without arrivals"
    )
    parser.add_argument("--max-drain", type=float, default=30.0, help="most seconds to wait after production")
    parser.add_argument("--max-p99", type=float, default=1000.0, help="p99 ms beyond which a side is behind")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--produce", nargs=4, default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.produce:
        bootstrap, topic, rate, duration = args.produce
        print(produce(bootstrap, topic, float(rate), float(duration)), flush=True)
        return 0
    from ingestload.kafka.broker import EmbeddedBroker

    counts = [int(s) for s in args.subscribers.split(",")]
    print(
        f"{'side':<22} {'subs':>5} {'offered/s':>10} {'delivered/s':>12} {'missed':>9} {'duplicated':>11} "
        f"{'p50 ms':>8} {'p99 ms':>9} {'CPU':>5} {'probe':>6}  state",
        flush=True,
    )
    best: dict[str, tuple[float, int]] = {}
    knees: dict[str, int | None] = {}
    for side in args.sides.split(","):
        knees[side] = None
        with EmbeddedBroker() as broker:
            for n in counts:
                r = run_cell(side, broker.bootstrap, n, args)
                offered = n * args.rate
                behind = r["missed"] > 0 or r["duplicated"] > 0 or r["p99"] is None or r["p99"] > args.max_p99
                p99 = f"{r['p99']:.1f}" if r["p99"] is not None else "—"
                p50 = f"{r['p50']:.1f}" if r["p50"] is not None else "—"
                state = "keeps up"
                if r["missed"] or r["duplicated"]:
                    state = "WRONG (missed or duplicated)"
                elif behind:
                    state = f"BEHIND (p99 > {args.max_p99:g} ms)"
                print(
                    f"{SIDES[side]:<22} {n:>5} {offered:>10,.0f} {r['delivered_per_s']:>12,.0f} "
                    f"{r['missed']:>9,} {r['duplicated']:>11,} {p50:>8} {p99:>9} {r['cpu']:>5.0%} "
                    f"{r['probe_cpu']:>6.0%}  {state}",
                    flush=True,
                )
                if behind:
                    knees[side] = n
                    break
                best[side] = max(best.get(side, (0.0, 0)), (r["delivered_per_s"], n))
    print()
    for side, knee in knees.items():
        rate, n = best.get(side, (0.0, 0))
        where = f"falls behind at {knee} subscribers" if knee else f"kept up through {counts[-1]} subscribers"
        print(
            f"{SIDES[side]:<22} {where}; best sustained {rate:,.0f} deliveries/s (at {n} subscribers, "
            f"0 missed or duplicated, p99 ≤ {args.max_p99:g} ms)"
        )
    ours = best.get("ingestload", (0.0, 0))[0]
    for side in ("seed003-own", "seed003-all"):
        theirs = best.get(side, (0.0, 0))[0]
        if side in knees and ours:
            ratio = f"{ours / theirs:,.1f}×" if theirs else "∞ (it never kept up)"
            print(f"ingestload vs {SIDES[side]}: {ratio} the deliveries/s within the same p99 bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
