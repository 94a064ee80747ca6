"""A small third-party ingest API for the tests — not ingestload's: its own URL contract, its own code.

    python tests/e2e/thirdparty_api.py --port P --bootstrap HOST:PORT --prefix gov- --truth truth.json
        [--drop-every N] [--duplicate-every N] [--duplicate-delay S] [--misroute-every N]
        [--plan '{"first": F, "lost": [i…], …}']

``POST /ingest/<type>`` with one JSON message: the body goes to topic ``<prefix><type>`` and the
answer is ``202 {"queued": true}`` once Kafka acknowledged it (``503`` when it did not). Faults,
applied to accepted messages, model what real pipelines do:

* ``--drop-every N``: every Nth accepted message is answered 202 and never written (lost);
* ``--duplicate-every N``: every Nth is written twice; with ``--duplicate-delay S`` the copy is
  written S seconds later, as a retry queue would;
* ``--misroute-every N``: every Nth is written to the topic of another message type;
* ``--plan``: the same by the message's seq (read from its envelope member), relative to
  ``first``: ``lost``, ``duplicated``, ``corrupted``, ``misrouted`` (lists of offsets from
  ``first``), ``late`` ({"delay": S, "duplicated": […], "corrupted": […]}: an extra copy, changed
  for ``corrupted``, written S seconds after the original), ``phantom`` (an extra copy whose envelope
  names a seq its producer never sent: the seq with bit 62 set), ``pending`` (written in a Kafka
  transaction it acknowledges before committing — and never commits: the record and everything after
  it on its partition stay invisible to a committed reader; aborted at SIGTERM).

On SIGTERM it writes ``--truth``: every message it dropped and every copy it wrote on purpose that
Kafka acknowledged, as [producer, seq] pairs by kind — what the tests compare the verdict with.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confluent_kafka import Producer

TYPES = ["alarm", "fault", "serviceModeChange", "movementData"]


class Truth:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kinds: dict[str, list[list[int]]] = {
            k: [] for k in ("lost", "duplicated", "corrupted", "misrouted", "late", "phantom", "pending")
        }

    def add(self, kind: str, ident: tuple[int, int]) -> None:
        with self.lock:
            self.kinds[kind].append(list(ident))


class Kafka:
    """One producer; a thread serves its delivery reports."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            self.producer.poll(0.05)

    def write(self, topic: str, value: bytes, on_done=None) -> threading.Event:
        done = threading.Event()
        result: dict[str, object] = {}

        def report(err, msg) -> None:
            result["ok"] = err is None
            if on_done is not None:
                on_done(err is None)
            done.set()

        done.result = result  # type: ignore[attr-defined]
        while True:
            try:
                self.producer.produce(topic, value, on_delivery=report)
                return done
            except BufferError:
                time.sleep(0.01)


def envelope_of(body: dict) -> tuple[int, int] | None:
    text = body.get("_ingestload")
    if not isinstance(text, str):
        return None
    raw = bytes.fromhex(text)
    return int.from_bytes(raw[9:17], "big"), int.from_bytes(raw[17:25], "big")


def phantom(value: bytes) -> bytes:
    """The message again, its envelope naming a seq its producer never sends (bit 62 set)."""
    body = json.loads(value)
    raw = bytearray(bytes.fromhex(body["_ingestload"]))
    raw[17] |= 0x40
    body["_ingestload"] = raw.hex()
    return json.dumps(body).encode()


def corrupt(value: bytes) -> bytes:
    """A copy with one value changed (an added member would be enrichment, not corruption)."""
    body = json.loads(value)
    body["Header"]["ControllerType"] = str(body["Header"]["ControllerType"]) + "-tampered"
    return json.dumps(body).encode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--drop-every", type=int, default=0)
    parser.add_argument("--duplicate-every", type=int, default=0)
    parser.add_argument("--duplicate-delay", type=float, default=0.0)
    parser.add_argument("--misroute-every", type=int, default=0)
    parser.add_argument("--plan", default=None)
    args = parser.parse_args()
    plan = json.loads(args.plan) if args.plan else None
    kafka = Kafka(args.bootstrap)
    truth = Truth()
    transactions: list[Producer] = []
    transactions_lock = threading.Lock()

    def pending_write(topic: str, value: bytes) -> bool:
        """Write ``value`` in a transaction of its own, left open (acknowledged before its commit)."""
        producer = Producer(
            {"bootstrap.servers": args.bootstrap, "transactional.id": f"api-{uuid.uuid4().hex}"}
        )
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(topic, value)
        with transactions_lock:
            transactions.append(producer)
        return producer.flush(30) == 0

    counter = {"n": 0}
    counter_lock = threading.Lock()

    def later(delay: float, topic: str, value: bytes, kinds: list[str], ident: tuple[int, int]) -> None:
        """Write ``value`` again ``delay`` seconds from now; file it under ``kinds`` once acknowledged."""

        def fire() -> None:
            def done(ok: bool) -> None:
                if ok:
                    for kind in kinds:
                        truth.add(kind, ident)

            kafka.write(topic, value, done)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()

    def fate(ident: tuple[int, int] | None) -> set[str]:
        with counter_lock:
            counter["n"] += 1
            n = counter["n"]
        kinds = set()
        if args.drop_every and n % args.drop_every == 0:
            kinds.add("lost")
        if args.duplicate_every and n % args.duplicate_every == 0:
            kinds.add("duplicated")
        if args.misroute_every and n % args.misroute_every == 0:
            kinds.add("misrouted")
        if plan is not None and ident is not None:
            i = ident[1] - plan["first"]
            for kind in ("lost", "duplicated", "corrupted", "misrouted", "phantom", "pending"):
                if i in plan.get(kind, []):
                    kinds.add(kind)
            late = plan.get("late", {})
            for kind in ("duplicated", "corrupted"):
                if i in late.get(kind, []):
                    kinds.add("late-" + kind)
        return kinds

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a) -> None:  # quiet
            pass

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            parts = self.path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "ingest" or parts[1] not in TYPES:
                self.answer(404, b'{"error":"no such route"}')
                return
            msg_type = parts[1]
            try:
                ident = envelope_of(json.loads(raw))
            except ValueError:
                self.answer(400, b'{"error":"bad json"}')
                return
            topic = args.prefix + msg_type
            kinds = fate(ident)
            if "lost" in kinds:
                truth.add("lost", ident)
                self.answer(202, b'{"queued":true}')
                return
            value = corrupt(raw) if "corrupted" in kinds else raw
            if "misrouted" in kinds:
                elsewhere = (plan or {}).get("misroute_to")
                if elsewhere is None or elsewhere == topic:
                    elsewhere = args.prefix + TYPES[(TYPES.index(msg_type) + 1) % len(TYPES)]
                topic = elsewhere
            if "pending" in kinds:
                if not pending_write(topic, value):
                    self.answer(503, b'{"error":"kafka"}')
                    return
                truth.add("pending", ident)
                self.answer(202, b'{"queued":true}')
                return
            done = kafka.write(topic, value)
            if not done.wait(30) or not done.result.get("ok"):  # type: ignore[attr-defined]
                self.answer(503, b'{"error":"kafka"}')
                return
            for kind in ("corrupted", "misrouted"):
                if kind in kinds:
                    truth.add(kind, ident)
            if "duplicated" in kinds:
                if args.duplicate_delay:
                    later(args.duplicate_delay, topic, value, ["duplicated"], ident)
                else:
                    copy = kafka.write(topic, value)
                    if copy.wait(30) and copy.result.get("ok"):  # type: ignore[attr-defined]
                        truth.add("duplicated", ident)
            if "phantom" in kinds:
                copy = kafka.write(args.prefix + msg_type, phantom(raw))
                if copy.wait(30) and copy.result.get("ok"):  # type: ignore[attr-defined]
                    truth.add("phantom", ident)
            delay = (plan or {}).get("late", {}).get("delay", 0.0)
            own = args.prefix + msg_type  # a late copy goes where the message belongs
            if "late-duplicated" in kinds:
                later(delay, own, raw, ["duplicated", "late"], ident)
            if "late-corrupted" in kinds:
                later(delay, own, corrupt(raw), ["duplicated", "corrupted", "late"], ident)
            self.answer(202, b'{"queued":true}')

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True

    def stop(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    server.serve_forever()
    kafka.producer.flush(30)
    kafka.running = False
    for producer in transactions:
        producer.abort_transaction(30)
    with open(args.truth, "w") as out:
        json.dump(truth.kinds, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
