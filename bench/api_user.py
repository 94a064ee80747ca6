"""HTTP client side: ingestload's IngestApiUser against a bare FastHttpUser, same bodies, same run.

All post mock controller messages (with a 74-hex ``_ingestload`` member) to the same paths of
the same server: a minimal Granian + ASGI app (bench/http_sink.py) that reads the body and
answers 200 at once, so the server is not what limits any side. Each side is one Locust
process with the same number of users and no pacing limit, for the same duration, one after
the other, the order rotating over ``--rounds`` rounds:

  (a) bare FastHttpUser, pre-rendered — ``self.client.post(path, body)`` over bodies rendered
      before the run: the HTTP ceiling, no work per message at all;
  (b) bare FastHttpUser, renders — the same user rendering fresh messages (ingestload's
      MessageFactory, timestamps stamped now) for every take, as a hand-written locustfile
      would: the baseline that does the same job without ingestload;
  (c) ingestload IngestApiUser — ``--rate 0`` (as fast as possible): renders each message with
      its own envelope (seq, send time, checksum), files every answer in the ack ledger
      (acked/failed/unknown per seq), keeps the pacer's books. Verification is off (the sink
      keeps nothing).

Batches: both sides take ``B`` messages from the mix at a time and post one request per message
type among them (the batch endpoint is per type), so a batch of 25 is a few requests of 1–20
messages; bench/http_bodies.py cuts (a)'s bodies exactly that way.

Reported, over the steady part of each run (from 4 s after launch to 1 s before the end, so
start-up work such as imports is left out): acknowledged requests/s (Locust's own per-second
counts), messages/s (requests × mean messages per request), the Locust process's CPU time per
message (user + system, sampled at both ends — steadier than rates on a shared machine, since
each side keeps one core busy), and (c) against (b) by both. Target (issue 4): ≥ 0.9× the
bare user doing the same job, (b).

    python bench/api_user.py [--duration 15] [--users 32] [--rounds 3] [--batch-sizes 1,25,100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from http_bodies import messages_per_request
from ingestload.kafka.broker import free_port
from ingestload.testing import locust_command

ROOT = Path(__file__).resolve().parents[1]
#: Seconds after launch before measuring: imports, users spawning, connections opening.
WARM_UP = 4


@contextlib.contextmanager
def sink() -> Iterator[str]:
    """The HTTP sink on a free port (one Granian worker)."""
    port = free_port()
    command = [sys.executable, "-m", "granian", "--interface", "asgi", "--no-ws", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--loop", "uvloop", "--log-level", "warning"]
    process = subprocess.Popen([*command, "bench.http_sink:app"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("bench: the HTTP sink did not start")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def steady_requests(json_prefix: Path, first: int, last: int) -> int:
    """Acknowledged POST requests in the whole seconds [first, last) (Locust's per-second counts)."""
    rows = [e for e in json.loads(Path(f"{json_prefix}.json").read_text()) if e["method"] == "POST"]
    return sum(n for e in rows for t, n in e["num_reqs_per_sec"].items() if first <= int(t) < last)


def run_side(
    label: str, locustfile: Path, url: str, args: argparse.Namespace, env: dict, extra: list[str]
) -> tuple[int, float, float, float]:
    """(requests, req/s, msg/s, CPU µs per message) over the steady part of the run.

    The steady part starts ``WARM_UP`` s after launch (imports, spawning) and ends 1 s before the
    run does; CPU time is the Locust process's user + system time over exactly those seconds.
    """
    batch = int(env["BENCH_BATCH_SIZE"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stats"
        command = locust_command(
            locustfile,
            *f"--headless --only-summary -t {args.duration + WARM_UP:g}s".split(),
            *f"-u {args.users} -r {args.users}".split(),
            *["--host", url, "--json-file", str(out), *extra],
        )
        launched = time.time()
        child = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        first = math.ceil(launched + WARM_UP)
        last = first + math.floor(args.duration) - 1
        marks = []
        for mark in (first, last):
            time.sleep(max(0.0, mark - time.time()))
            times = psutil.Process(child.pid).cpu_times()
            marks.append(times.user + times.system)
        _, stderr = child.communicate()
        if child.returncode != 0:
            sys.exit(f"{label} failed (exit {child.returncode}):\n{stderr.decode()[-3000:]}")
        requests = steady_requests(out, first, last)
    messages = requests * messages_per_request(batch)
    seconds = last - first
    cpu_us = (marks[1] - marks[0]) / max(messages, 1) * 1e6
    req_s, msg_s = requests / seconds, messages / seconds
    print(f"  {label:<34} {req_s:>9,.0f} req/s {msg_s:>10,.0f} msg/s {cpu_us:>7.1f} µs CPU/msg", flush=True)
    return requests, req_s, msg_s, cpu_us


SIDES = (
    ("pre", "bare FastHttpUser, pre-rendered"),
    ("render", "bare FastHttpUser, renders"),
    ("ours", "ingestload IngestApiUser"),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per side and round")
    parser.add_argument("--users", type=int, default=32, help="users (HTTP concurrency) per side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, sides rotating (default 3)")
    parser.add_argument("--batch-sizes", default="1,25,100", help="messages per take, comma-separated")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]

    bare_file = ROOT / "bench" / "locustfiles" / "bare_http_user.py"
    ours_file = ROOT / "locustfiles" / "api.py"
    results: dict[tuple[int, str], list[tuple[int, float, float]]] = {}
    print(f"HTTP client benchmark: {args.users} users, {args.duration:g} s per side, {args.rounds} rounds")
    with sink() as url:
        for batch in batches:
            ours_args = ["--rate", "0", "--api-batch-size", str(batch), "--verify", "false"]
            ours_args += ["--create-topics", "false", "--status-interval", "0"]
            runs = {
                "pre": (bare_file, {"BENCH_RENDER": "0"}, []),
                "render": (bare_file, {"BENCH_RENDER": "1"}, []),
                "ours": (ours_file, {}, ours_args),
            }
            for round_no in range(args.rounds):
                print(f"batch {batch}, round {round_no + 1}:", flush=True)
                order = SIDES[round_no % 3 :] + SIDES[: round_no % 3]
                for name, label in order:
                    locustfile, env, extra = runs[name]
                    env = {**env, "BENCH_BATCH_SIZE": str(batch)}
                    results.setdefault((batch, name), []).append(
                        run_side(label, locustfile, url, args, env, extra)
                    )

    print()
    print(
        f"{'batch':>5}  {'side':<32} {'requests':>10} {'req/s':>9} {'msg/s':>10} {'µs CPU/msg':>11}"
        f" {'msg/s vs (b)':>13} {'CPU vs (b)':>11}"
    )
    ratios = []
    for batch in batches:
        med = {
            name: [statistics.median(r[i] for r in results[(batch, name)]) for i in (1, 2, 3)]
            for name, _ in SIDES
        }
        for name, label in SIDES:
            req_s, msg_s, cpu_us = med[name]
            requests = sum(r[0] for r in results[(batch, name)])
            by_rate, by_cpu = msg_s / med["render"][1], med["render"][2] / cpu_us
            if name == "ours":
                ratios.append((by_rate, by_cpu))
            print(
                f"{batch:>5}  {label:<32} {requests:>10,} {req_s:>9,.0f} {msg_s:>10,.0f} {cpu_us:>11.1f}"
                f" {by_rate:>12.2f}× {by_cpu:>10.2f}×"
            )
    print(f"\n(medians over {args.rounds} rounds; requests summed; CPU ratio = (b)'s µs/msg ÷ this side's)")
    for label, i in (("msg/s", 0), ("CPU", 1)):
        met = "met" if min(r[i] for r in ratios) >= 0.9 else "NOT met"
        print(
            f"target: IngestApiUser ≥ 0.9× a bare FastHttpUser rendering the same messages, by {label}: {met}"
        )


if __name__ == "__main__":
    main()
