"""HTTP path: the reference ingest API side by side with a replica of seed 001's naive Flask app.

In one run, on this machine, each side with its own embedded broker:

  (1) throughput — acknowledged single-message requests/s (both sides) and acknowledged
      messages/s through batches of 100, per type and mixed (the reference API; the naive
      app has no batch endpoint). Load generator: **wrk** with a Lua script that cycles through pre-rendered
      mock controller messages of every type (C, one thread, keep-alive connections), so
      the server, not the client, is the bottleneck. wrk is a Debian/Ubuntu package:
      ``apt-get install -y wrk``.
  (2) a broker restart mid-run — a Python client (threads, one request per connection, every
      message with a unique id in its ``_ingestload`` member) posts for ``--restart-duration``
      seconds; a third of the way in the broker is frozen (SIGSTOP), then killed and started
      again on the same port (memory storage: it comes back empty), and the topics are
      created again. Then Kafka is read back.
      **Lost** = answered 2xx *after* the broker was killed, yet not in Kafka. Messages
      answered before the kill are left out: the dead broker's memory took them, which says
      nothing about the API (a real cluster keeps them on other replicas). The freeze makes
      that cut clean: from SIGSTOP on the old broker acknowledges nothing, so a 2xx that
      arrives after the kill cannot stand for a write the old broker took.

Targets (issue 4): ≥ 5,000 acknowledged single-message requests/s per API process and
≥ 50,000 msg/s with batches of 100, and nothing lost.

    python bench/ingest_api.py [--duration 15] [--restart-duration 20] [--connections 64]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ingestload.api.testing import run_api
from ingestload.kafka.admin import ensure_topics, read_to_end
from ingestload.kafka.broker import EmbeddedBroker, free_port
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.serving.testing import ServerProcess
from ingestload.testing import unique_prefix

ROOT = Path(__file__).resolve().parents[1]
WRK_MISSING = (
    "bench/ingest_api.py needs wrk to saturate the servers: it is not on PATH. Install it "
    "(Debian/Ubuntu: apt-get install -y wrk; macOS: brew install wrk) and run the bench again."
)


# -- load generation ------------------------------------------------------------------------


def wrk_script(path: Path, requests: list[tuple[str, bytes]]) -> None:
    """A wrk Lua script that sends ``requests`` (path, JSON body) round-robin."""
    lines = ["local reqs = {}", "local raw = {"]
    for target, body in requests:
        text = body.decode()
        assert "]==]" not in text
        lines.append(f'  {{"{target}", [==[{text}]==]}},')
    lines += [
        "}",
        "local i = 0",
        "function init(args)",
        '  local headers = {["Content-Type"] = "application/json"}',
        '  for n, r in ipairs(raw) do reqs[n] = wrk.format("POST", r[1], headers, r[2]) end',
        "end",
        "function request()",
        "  i = i % #reqs + 1",
        "  return reqs[i]",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")


def run_wrk(url: str, script: Path, duration: float, connections: int) -> tuple[int, int, float]:
    """(requests, non-2xx responses, seconds) from one wrk run."""
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"(\d+) requests in ([\d.]+)(m?s)", done.stdout)
    if match is None:
        sys.exit(f"cannot read wrk's output:\n{done.stdout}\n{done.stderr}")
    seconds = float(match.group(2)) / (1000 if match.group(3) == "ms" else 1)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    errors = re.search(r"Socket errors: .*", done.stdout)
    if errors:
        print(f"    wrk: {errors.group(0)}", flush=True)
    return int(match.group(1)), int(bad.group(1)) if bad else 0, seconds


def mock_messages(count: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """(msgType, JSON body) of ``count`` mock controller messages in the catalogue's mix."""
    catalogue = Catalogue.load()
    factory = MessageFactory(catalogue, seed=seed)
    prefix = catalogue.topic_prefix
    return [
        (topic.removeprefix(prefix), value)
        for topic, value in (factory.next(time.time_ns()) for _ in range(count))
    ]


def single_requests(count: int) -> list[tuple[str, bytes]]:
    return [(f"/v1/messages/{msg_type}", body) for msg_type, body in mock_messages(count)]


def batch_requests(batches: int, size: int) -> list[tuple[str, bytes]]:
    """``batches`` batches of ``size`` same-type messages, types in the catalogue's proportions."""
    by_type: dict[str, list[bytes]] = {}
    for msg_type, body in mock_messages(batches * size * 2, seed=2):
        by_type.setdefault(msg_type, []).append(body)
    out: list[tuple[str, bytes]] = []
    kinds = mock_messages(batches, seed=3)
    for msg_type, _ in kinds:
        bodies = by_type[msg_type]
        chunk, by_type[msg_type] = bodies[:size], bodies[size:] + bodies[:size]
        out.append((f"/v1/messages/{msg_type}:batch", b"[" + b",".join(chunk) + b"]"))
    return out


def mixed_batch_requests(batches: int, size: int) -> list[tuple[str, bytes]]:
    """``batches`` batches of ``size`` messages of every type, in the catalogue's mix, for the
    mixed endpoint (``POST /v1/messages:batch``)."""
    messages = [body for _, body in mock_messages(batches * size, seed=4)]
    return [
        ("/v1/messages:batch", b"[" + b",".join(messages[i : i + size]) + b"]")
        for i in range(0, len(messages), size)
    ]


# -- the two servers ------------------------------------------------------------------------


@contextlib.contextmanager
def naive_app(bootstrap: str, prefix: str) -> Iterator[str]:
    """The naive Flask app on a free port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "naive_flask_app.py"),
            "--port",
            str(port),
            "--bootstrap",
            bootstrap,
            "--topic-prefix",
            prefix,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the restart phase ----------------------------------------------------------------------


class Poster:
    """Threads posting unique messages; records (id, status, time answered) for each request."""

    def __init__(self, host: str, port: int, threads: int, prefix: str) -> None:
        self.host, self.port = host, port
        self.stop = threading.Event()
        self.results: list[tuple[str, int, float]] = []
        self.lock = threading.Lock()
        self.messages = mock_messages(2000, seed=4)
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)]
        self.prefix = prefix

    def run(self, n: int) -> None:
        i = 0
        mine: list[tuple[str, int, float]] = []
        while not self.stop.is_set():
            msg_type, body = self.messages[(n * 7919 + i) % len(self.messages)]
            key = f"{n}-{i}"
            i += 1
            payload = body[:-1] + b',"_ingestload":{"id":"%s"}}' % key.encode()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                connection.request(
                    "POST", f"/v1/messages/{msg_type}", payload, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
            finally:
                connection.close()
            mine.append((key, status, time.monotonic()))
            if status in (0, 503):
                time.sleep(0.05)  # do not spin against a server that is turning requests away
        with self.lock:
            self.results.extend(mine)

    def __enter__(self) -> Poster:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)


def restart_run(
    label: str,
    broker: EmbeddedBroker,
    prefix: str,
    port: int,
    duration: float,
    threads: int,
    api: ServerProcess | None,
) -> dict[str, float]:
    """Post for ``duration`` s with a broker freeze + kill + restart a third of the way in."""
    topics = Catalogue.load().topics(prefix)
    config = {"bootstrap.servers": broker.bootstrap}
    with Poster("127.0.0.1", port, threads, prefix) as poster:
        time.sleep(duration / 3)
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        time.sleep(0.5)
        killed_at = time.monotonic()
        broker.kill()
        broker.requested_port = broker.port
        broker.start()
        ensure_topics(config, topics, partitions=3)
        restarted_at = time.monotonic()
        time.sleep(max(0.0, duration - (restarted_at - killed_at) - duration / 3))
    if api is not None:  # every answered request is final; wait until nothing is in flight
        api.wait_until("/debug/faults", lambda r: r.json()["in_flight"] == 0, timeout=120)
    found: set[str] = set()
    for chunk in read_to_end(config, topics):
        for message in chunk:
            with contextlib.suppress(Exception):
                found.add(orjson.loads(message.value())["_ingestload"]["id"])
    results = poster.results
    acked_after = [k for k, status, t in results if 200 <= status < 300 and t > killed_at]
    lost = [k for k in acked_after if k not in found]
    row = {
        "requests": len(results),
        "acked": sum(1 for _, s, _ in results if 200 <= s < 300),
        "acked_after_kill": len(acked_after),
        "lost": len(lost),
        "refused": sum(1 for _, s, _ in results if s >= 300 or s == 0),
        "outage_s": restarted_at - killed_at,
    }
    print(
        f"  {label}: {row['requests']:,} requests, {row['acked_after_kill']:,} answered 2xx after the kill, "
        f"{row['lost']:,} of those not in Kafka" + (f" (e.g. {', '.join(lost[:3])})" if lost else ""),
        flush=True,
    )
    return row


# -- the benchmark --------------------------------------------------------------------------


class IngestApiBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def main(self) -> None:
        args = self.args
        if shutil.which("wrk") is None:
            sys.exit(WRK_MISSING)
        load_start = os.getloadavg()
        print(
            f"HTTP ingest benchmark: {args.duration:g} s per throughput run, {args.restart_duration:g} s "
            f"restart runs; {os.cpu_count()} CPUs, load average {load_start[0]:.2f} at start",
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            single_lua = Path(tmp) / "single.lua"
            batch_lua = Path(tmp) / "batch.lua"
            mixed_lua = Path(tmp) / "mixed.lua"
            wrk_script(single_lua, single_requests(1000))
            wrk_script(batch_lua, batch_requests(40, args.batch_size))
            wrk_script(mixed_lua, mixed_batch_requests(40, args.batch_size))

            ours_single, ours_batch, ours_mixed, ours_restart = self.reference_api(
                single_lua, batch_lua, mixed_lua
            )
            naive_single, naive_restart = self.naive(single_lua)
        load_end = os.getloadavg()
        self.table(ours_single, ours_batch, ours_mixed, naive_single, ours_restart, naive_restart)
        print(f"\nload average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end (1-minute)")

    def reference_api(
        self, single_lua: Path, batch_lua: Path, mixed_lua: Path
    ) -> tuple[float, float, float, dict[str, float]]:
        args = self.args
        with EmbeddedBroker() as broker:
            prefix = unique_prefix("bench-api")
            with run_api(
                broker.bootstrap, "--topic-prefix", prefix, "--workers", str(args.api_workers)
            ) as api:
                requests, bad, seconds = run_wrk(api.url + "/", single_lua, args.duration, args.connections)
                single = (requests - bad) / seconds
                print(f"  ingestload api, single messages: {single:,.0f} acknowledged req/s ({bad} non-2xx)")
                batched, mixed = (
                    self.batches(api, lua, what)
                    for lua, what in ((batch_lua, "batches"), (mixed_lua, "mixed batches"))
                )
        with EmbeddedBroker() as broker:
            prefix = unique_prefix("bench-api-restart")
            with run_api(broker.bootstrap, "--topic-prefix", prefix) as api:
                restart = restart_run(
                    "ingestload api, broker restart",
                    broker,
                    prefix,
                    api.port,
                    args.restart_duration,
                    args.restart_threads,
                    api,
                )
        return single, batched, mixed, restart

    def batches(self, api: Any, lua: Path, what: str) -> float:
        """Acknowledged msg/s of a wrk run of batch requests."""
        args = self.args
        before = api.get("/debug/faults").json()["accepted"]
        requests, bad, seconds = run_wrk(api.url + "/", lua, args.duration, args.batch_connections)
        accepted = api.get("/debug/faults").json()["accepted"] - before
        rate = (requests - bad) * args.batch_size / seconds
        print(
            f"  ingestload api, {what} of {args.batch_size}: {rate:,.0f} acknowledged msg/s "
            f"({bad} non-2xx; the API counted {accepted:,} accepted"
            + (" in this worker)" if args.api_workers > 1 else ")"),
            flush=True,
        )
        return rate

    def naive(self, single_lua: Path) -> tuple[float, dict[str, float]]:
        args = self.args
        with EmbeddedBroker() as broker:
            prefix = unique_prefix("bench-naive")
            ensure_topics({"bootstrap.servers": broker.bootstrap}, Catalogue.load().topics(prefix), 3)
            with naive_app(broker.bootstrap, prefix) as url:
                requests, bad, seconds = run_wrk(url + "/", single_lua, args.duration, args.connections)
                single = (requests - bad) / seconds
                print(f"  naive Flask app, single messages: {single:,.0f} acknowledged req/s ({bad} non-2xx)")
        with EmbeddedBroker() as broker:
            prefix = unique_prefix("bench-naive-restart")
            ensure_topics({"bootstrap.servers": broker.bootstrap}, Catalogue.load().topics(prefix), 3)
            with naive_app(broker.bootstrap, prefix) as url:
                port = int(url.rsplit(":", 1)[1])
                restart = restart_run(
                    "naive Flask app, broker restart",
                    broker,
                    prefix,
                    port,
                    args.restart_duration,
                    args.restart_threads,
                    None,
                )
        return single, restart

    def table(
        self,
        ours_single: float,
        ours_batch: float,
        ours_mixed: float,
        naive_single: float,
        ours_restart: dict[str, float],
        naive_restart: dict[str, float],
    ) -> None:
        size = self.args.batch_size
        print()
        print(
            f"{'side':<44} {'single req/s':>13} {'vs naive':>9} {f'msg/s, batch {size}':>17} {'vs naive':>9}"
            f" {f'msg/s, mixed {size}':>17}"
        )
        naive = "naive Flask + producer per request (seed 001)"
        print(f"{naive:<44} {naive_single:>13,.0f} {'1.0×':>9} {'—':>17} {'':>9} {'—':>17}")
        print(
            f"{f'ingestload api ({self.args.api_workers} worker)':<44} {ours_single:>13,.0f} "
            f"{ours_single / naive_single:>8.1f}× {ours_batch:>17,.0f} {ours_batch / naive_single:>8.1f}×"
            f" {ours_mixed:>17,.0f}"
        )
        print()
        print(
            f"{'broker restart mid-run':<44} {'requests':>10} {'2xx':>8} {'2xx after kill':>15} "
            f"{'lost':>6} {'refused':>8}"
        )
        for label, row in (
            ("naive Flask + producer per request", naive_restart),
            ("ingestload api", ours_restart),
        ):
            print(
                f"{label:<44} {row['requests']:>10,.0f} {row['acked']:>8,.0f} "
                f"{row['acked_after_kill']:>15,.0f} {row['lost']:>6,.0f} {row['refused']:>8,.0f}"
            )
        print(
            "lost = answered 2xx after the broker was killed, yet not in Kafka; "
            "refused = non-2xx or no answer (the client may retry those)"
        )
        print(
            f"targets: ≥ 5,000 single req/s [{'met' if ours_single >= 5000 else 'NOT met'}], "
            f"≥ 50,000 msg/s in batches [{'met' if ours_batch >= 50_000 else 'NOT met'}], "
            f"0 lost [{'met' if ours_restart['lost'] == 0 else 'NOT met'}]"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds per throughput run (default 15)"
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="wrk connections, single messages (default 64)"
    )
    parser.add_argument(
        "--batch-connections", type=int, default=16, help="wrk connections, batches (default 16)"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="messages per batch (default 100)")
    parser.add_argument("--api-workers", type=int, default=1, help="ingestload api --workers (default 1)")
    parser.add_argument(
        "--restart-duration", type=float, default=20.0, help="seconds per broker-restart run (default 20)"
    )
    parser.add_argument(
        "--restart-threads", type=int, default=16, help="client threads in restart runs (default 16)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    IngestApiBench(parse_args()).main()
