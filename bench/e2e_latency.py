"""E2E latency: the verifier's figure against a bare consumer tuned for latency, in one run.

One headless ``ingestload run`` (the default locustfile: Kafka path and HTTP path through the
reference ingest API) at ``--rate`` msg/s, while a bare confluent-kafka consumer in a process of
its own reads the same topics: it polls one message at a time with a short fetch wait
(``fetch.wait.max.ms=5``), takes the clock the moment ``poll`` returns, and files
``now − sent_at`` (the envelope's send time) per topic in an HdrHistogram. Its figure is what the
pipeline takes — send, produce or POST, broker, fetch — with as little of the reader's own waiting
as a reader can have. The run's ``E2E`` figure (the verdict's ``latency_ms``) should be within a
few ms of it (issue 20: "E2E p50 within a few ms of it at 2,775 msg/s").

    python bench/e2e_latency.py [--rate 2775] [--duration 30] [--as-make-run] [--kafka-bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EMBEDDED_VERIFIER_CONFIG, EmbeddedBroker
from ingestload.messages.catalogue import Catalogue
from ingestload.testing import unique_prefix

ROOT = Path(__file__).resolve().parents[1]
#: The issue's goal: the verifier's E2E p50 within this many ms of the bare consumer's.
GOAL_MS = 5.0


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[tuple[str, int | None]]:
    """(bootstrap, the embedded broker's pid or None)."""
    if bootstrap:
        yield bootstrap, None
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap, broker.pid


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_consumer(bootstrap: str, topics: list[str], run_id: str) -> None:
    """The bare side (``--bare``): read until stdin closes, then print percentiles as JSON."""
    import threading

    from confluent_kafka import OFFSET_END, Consumer, TopicPartition
    from hdrh.histogram import HdrHistogram

    from ingestload.kafka.admin import topic_partitions
    from ingestload.messages.envelope import RUN_ID, SENT_AT_OFFSET, header_of
    from ingestload.verify.body import BodyReader, BodySpec

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-latency-{run_id}",
            "enable.auto.commit": "false",
            "fetch.wait.max.ms": "5",
            "fetch.min.bytes": "1",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(t, p, OFFSET_END) for t, p in topic_partitions(consumer, topics, 10)])
    run = bytes.fromhex(run_id)
    body = BodyReader(BodySpec(), run_id)
    histograms: dict[str, HdrHistogram] = {}
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    print("ready", flush=True)
    while not stop.is_set():
        message = consumer.poll(0.1)
        if message is None or message.error() is not None:
            continue
        now_us = time.time_ns() // 1000
        header = header_of(message.headers())
        if header is not None:
            if header[RUN_ID] != run:
                continue
            sent = [int.from_bytes(header[SENT_AT_OFFSET : SENT_AT_OFFSET + 8], "big", signed=True)]
        else:
            sent = [found[2] for found in body.read(message.value()) or () if found[2] is not None]
        for sent_at in sent:
            histogram = histograms.get(message.topic())
            if histogram is None:
                histogram = histograms[message.topic()] = HdrHistogram(1, 3_600_000, 3)
            histogram.record_value(min(max((now_us - sent_at) // 1000, 0), 3_600_000))
    consumer.close()
    print(
        json.dumps(
            {
                topic: {
                    "p50": h.get_value_at_percentile(50),
                    "p99": h.get_value_at_percentile(99),
                    "count": h.get_total_count(),
                }
                for topic, h in histograms.items()
            }
        ),
        flush=True,
    )


class LatencyBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def main(self) -> int:
        a = self.args
        run_id = os.urandom(8).hex()
        with kafka(a.kafka_bootstrap) as (bootstrap, broker_pid), tempfile.TemporaryDirectory() as tmp:
            prefix = unique_prefix("lat")
            topics = Catalogue.load().topics(prefix)
            ensure_topics({"bootstrap.servers": bootstrap}, topics, partitions=3)
            bare = subprocess.Popen(
                [sys.executable, __file__, "--bare", bootstrap, run_id, *topics],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert bare.stdin is not None
            assert bare.stdout is not None
            bare.stdout.readline()  # "ready": it holds its offsets before the run sends anything
            verdict_file = Path(tmp) / "verdict.json"
            command = [
                str(Path(sys.executable).with_name("ingestload")),
                "run",
                *("--rate", str(a.rate), "-t", f"{a.duration:g}s", "--kafka-bootstrap", bootstrap),
                *("--topic-prefix", prefix, "--run-id", run_id, "--verdict-file", str(verdict_file)),
                *("--status-interval", "0", *a.extra),
                # As `make run`/`make ui` have it: the embedded broker's fewer, larger fetches.
                *(f"--verifier-config={p}" for p in (EMBEDDED_VERIFIER_CONFIG if a.as_make_run else ())),
            ]
            print(f"ingestload run at {a.rate:,} msg/s for {a.duration:g} s, a bare consumer beside it…")
            cpu, started = cpu_seconds(broker_pid), time.monotonic()
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            broker_cpu = (cpu_seconds(broker_pid) - cpu) / (time.monotonic() - started)
            bare.stdin.close()
            theirs = json.loads(bare.stdout.readline() or "{}")
            bare.wait(10)
            if not verdict_file.exists():
                sys.exit(f"the run wrote no verdict:\n{done.stderr[-3000:]}")
            verdict = orjson.loads(verdict_file.read_bytes())
        ours = verdict.get("latency_ms") or {}
        print(
            f"\nverdict: {verdict['status']}, acked {verdict['acked']:,} "
            f"({verdict['acked'] / a.duration:,.0f} msg/s over {a.duration:g} s); "
            f"embedded broker's CPU {broker_cpu:.0%} of a core"
        )
        print(
            f"{'topic':<24} {'bare p50':>9} {'E2E p50':>8} {'Δ ms':>6} {'bare p99':>9} {'E2E p99':>8} "
            f"{'msgs':>8}"
        )
        worst = 0.0
        for topic in sorted(set(ours) | set(theirs)):
            b, o = theirs.get(topic, {}), ours.get(topic, {})
            delta = o.get("p50", float("nan")) - b.get("p50", float("nan"))
            worst = max(worst, delta) if delta == delta else worst
            print(
                f"{topic.removeprefix(prefix):<24} {b.get('p50', 0):>9.0f} {o.get('p50', 0):>8.0f} "
                f"{delta:>6.0f} {b.get('p99', 0):>9.0f} {o.get('p99', 0):>8.0f} {o.get('count', 0):>8,.0f}"
            )
        met = worst <= GOAL_MS
        print(
            f"\ngoal (issue 20): E2E p50 within {GOAL_MS:g} ms of a bare latency-tuned consumer at "
            f"{a.rate:,} msg/s [{'met' if met else 'NOT met'}: worst topic {worst:+.0f} ms]"
        )
        return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=2775, help="msg/s of the run (default 2775)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    parser.add_argument(
        "--as-make-run",
        action="store_true",
        help="give the verifier the embedded broker's fetch settings, as `make run`/`make ui` do",
    )
    parser.add_argument("extra", nargs="*", help="more `ingestload run` arguments (after --)")
    return parser.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        bare_consumer(sys.argv[2], sys.argv[4:], sys.argv[3])
    else:
        sys.exit(LatencyBench(parse_args()).main())
