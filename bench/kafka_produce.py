"""Kafka path throughput, side by side in one run, on the same broker:

  (a) a bare confluent-kafka produce loop (no Locust, no envelope)  — the ceiling;
  (b) ingestload's KafkaProducerUser in ONE Locust process, unlimited rate, with every
      acknowledged message in Locust's stats (its ack latency, its topic), an envelope header
      on every message and the producer ledger on — as a worker of a distributed run, whose
      verifier runs beside the master; then the same with a request listener of its own
      attached (called once per acknowledged message, as an exporter plugin would be); then
      with its own verifier process beside it, as a local run has it (on 2 cores the
      verifier takes CPU from the broker);
  (c) locust-plugins' KafkaUser with 10 users — the anchor to beat.

Also the MessageFactory's cost per message, and each side's CPU time per acknowledged message
(the process and its librdkafka threads, from the kernel's accounting of the child: steadier
than msg/s on a shared machine). Each side gets a fresh embedded broker.

Goals (issue 20): (b) ≥ 0.7 × (a); with the listener attached ≥ 0.6 × (a).

    python bench/kafka_produce.py [--duration 20] [--gc-compare] [--before DIR] [--kafka-bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.testing import locust_command, unique_prefix

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap


def locust_rate(json_prefix: Path, request_type: str) -> tuple[int, float]:
    """(acked, msg/s) from a Locust JSON stats file, over the first to the last request."""
    entries = [e for e in json.loads(Path(f"{json_prefix}.json").read_text()) if e["method"] == request_type]
    acked = sum(e["num_requests"] - e["num_failures"] for e in entries)
    start = min(e["start_time"] for e in entries)
    end = max(e["last_request_timestamp"] for e in entries)
    return acked, acked / max(end - start, 1e-9)


def children_cpu() -> float:
    """CPU seconds (user + system) of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ProduceBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[tuple[str, int, float, float]] = []
        """(label, acked, msg/s, CPU seconds)"""

    def run_locust(self, label: str, locustfile: Path, request_type: str, args: list[str], env: dict) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "stats"
            command = locust_command(
                locustfile,
                "--headless",
                "--only-summary",
                "-t",
                f"{self.args.duration:g}s",
                "--json-file",
                str(out),
                *args,
            )
            cpu = children_cpu()
            done = subprocess.run(
                command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}
            )
            cpu = children_cpu() - cpu
            if done.returncode != 0:
                sys.exit(f"{label} failed:\n{done.stderr[-3000:]}")
            acked, rate = locust_rate(out, request_type)
        self.rows.append((label, acked, rate, cpu))
        print(f"  {label}: {rate:,.0f} msg/s", flush=True)

    @contextlib.contextmanager
    def broker(self) -> Iterator[tuple[str, str]]:
        """(bootstrap, topic prefix) with the catalogue's topics and the anchor's created."""
        with kafka(self.args.kafka_bootstrap) as bootstrap:
            prefix = unique_prefix("bench")
            topics = Catalogue.load().topics(prefix)
            ensure_topics({"bootstrap.servers": bootstrap}, [*topics, prefix + "anchor"], partitions=3)
            yield bootstrap, prefix

    def main(self) -> None:
        duration = self.args.duration
        print(f"Kafka produce benchmark, {duration:g} s per side", flush=True)
        factory = MessageFactory(Catalogue.load())
        n = 500_000
        t = time.perf_counter()
        for _ in range(n):
            factory.next(time.time_ns())
        factory_us = (time.perf_counter() - t) / n * 1e6
        payload = factory.next(time.time_ns())[1]

        # A fresh embedded broker per side: Tansu keeps every message in memory, and a broker
        # holding the previous side's millions of messages is slower for the next one.
        with self.broker() as (bootstrap, prefix):
            cpu = children_cpu()
            bare = subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "bare_produce.py"),
                    "--bootstrap",
                    bootstrap,
                    "--topic-prefix",
                    prefix,
                    "--duration",
                    str(duration),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            cpu = children_cpu() - cpu  # before the broker ends: its CPU is not the loop's
        result = json.loads(bare.stdout)
        self.rows.append(
            (
                "bare confluent-kafka loop (no Locust)",
                result["acked"],
                result["acked"] / result["seconds"],
                cpu,
            )
        )
        print(f"  bare loop: {self.rows[-1][2]:,.0f} msg/s", flush=True)

        kafka_user = ROOT / "locustfiles" / "kafka.py"
        sides = [("ingestload, 1 worker process, ledger on", kafka_user, ["--verify", "false"])]
        if self.args.gc_compare:
            sides.append(
                ("  same, Python's default GC", kafka_user, ["--verify", "false", "--gc-threshold", "0"])
            )
        listener = ROOT / "bench" / "locustfiles" / "kafka_with_listener.py"
        sides.append(("  same + a listener called per message", listener, ["--verify", "false"]))
        sides.append(("  same + its verifier process (local run)", kafka_user, ["--verify", "true"]))
        before: dict[str, str] = {}
        if self.args.before:
            # Another checkout's library (e.g. `git archive <rev> src | tar -x -C DIR`), same locustfiles.
            before = {"PYTHONPATH": str(Path(self.args.before) / "src")}
            sides.append(("  1 worker, the code in --before", kafka_user, ["--verify", "false"]))
            sides.append(("  + a listener, the code in --before", listener, ["--verify", "false"]))
        for label, locustfile, extra in sides:
            with self.broker() as (bootstrap, prefix):
                self.run_locust(
                    label,
                    locustfile,
                    "KAFKA",
                    [
                        *("-u", "1", "-r", "1", "--rate", "0", "--status-interval", "0"),
                        *("--kafka-bootstrap", bootstrap, "--topic-prefix", prefix, *extra),
                    ],
                    before if "--before" in label else {},
                )
        with self.broker() as (bootstrap, prefix):
            self.run_locust(
                f"locust-plugins KafkaUser, {self.args.anchor_users} users",
                ROOT / "bench" / "locustfiles" / "plugins_kafka_user.py",
                "ENQUEUE",
                ["-u", str(self.args.anchor_users), "-r", str(self.args.anchor_users)],
                {
                    "BENCH_BOOTSTRAP": bootstrap,
                    "BENCH_TOPIC": prefix + "anchor",
                    "BENCH_PAYLOAD_HEX": payload.hex(),
                },
            )

        bare_rate, bare_cpu = self.rows[0][2], self.rows[0][3] / max(self.rows[0][1], 1)
        ours = self.rows[1][2]
        listener = next(rate for label, _, rate, _ in self.rows if label.startswith("  same + a listener"))
        print()
        print(
            f"{'side':<44} {'acked':>12} {'msg/s':>12} {'vs bare':>9} {'ingestload ×':>13} "
            f"{'CPU µs/msg':>11} {'CPU vs bare':>12}"
        )
        for label, acked, rate, cpu in self.rows:
            per = cpu / max(acked, 1)
            print(
                f"{label:<44} {acked:>12,} {rate:>12,.0f} {rate / bare_rate:>8.2f}× {ours / rate:>12.1f}× "
                f"{per * 1e6:>11.2f} {bare_cpu / per:>11.2f}×"
            )
        print(f"\nMessageFactory.next: {factory_us:.2f} µs per message ({len(payload)}-byte JSON)")
        print("goals (issue 20):")
        print(
            goal_line(
                "1 worker process ≥ 0.7× the bare loop", ours >= 0.7 * bare_rate, f"{ours / bare_rate:.2f}×"
            )
        )
        print(
            goal_line(
                "same + a listener per message ≥ 0.6× the bare loop",
                listener >= 0.6 * bare_rate,
                f"{listener / bare_rate:.2f}×",
            )
        )


def goal_line(goal: str, met: bool, measured: str) -> str:
    """``  [met]     goal: measured`` — one line of a bench's goals."""
    return f"  [{'met' if met else 'NOT met':<7}] {goal}: {measured}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per side (default 20)")
    parser.add_argument(
        "--anchor-users", type=int, default=10, help="users for locust-plugins' KafkaUser (default 10)"
    )
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    parser.add_argument(
        "--gc-compare", action="store_true", help="also run ingestload with Python's default GC"
    )
    parser.add_argument(
        "--before", default=None, help="also run the library of another checkout in DIR (DIR/src)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    ProduceBench(parse_args()).main()
