"""Verifier throughput and memory, side by side in one run on the same data:

  (a) a bare confluent-kafka consume loop that only counts messages (same fetch settings, batches
      taken the same way: the first message waited for, then what is already fetched);
  (b) ingestload's Readback — what the live verifier process runs — reading the same
      topics: envelope, seen sets, duplicates, CRC-32 of every value, ordering, latency;
  (c) the same Readback with its native reader switched off (every record through confluent-kafka's
      Message methods): what the native reader (ingestload.verify._scan) brings.

Rounds alternate (a), (b) and (c); each row gives wall-clock msg/s and CPU µs per message (CPU time
of the process, librdkafka's threads included: steadier than wall time on a shared machine).
Then the fixed cost at the end of a verification (end offsets, log checks: Readback.finish on a
run of 1,000 messages), and the verifier core without Kafka: 10 M envelopes in real
confluent-kafka ``Message`` objects (4 producers over 12 partitions, in runs of 1,000 per
partition as a fetch delivers them) — the memory of a 10-million-message run (the verifier's
state and the ack ledger) is measured on the same feed.

Goals (issue 20): (b) ≥ 0.8 × (a) end to end; fixed end cost ≤ 0.3 s; core ≥ 1,000,000 msg/s;
memory in tens of MB. Then `--verifier-processes` 1 and 2: the live verifier processes sharing
the partitions, from ready to verdict (the 1 → 2 scaling).

    python bench/verify_throughput.py [--messages 2000000] [--memory-messages 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from ingestload import gctune
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.kafka.config import CONSUMER_DEFAULTS
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.envelope import HEADER, Envelope, EnvelopeWriter, checksum, encode, topic_tag
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.testing import unique_prefix
from ingestload.verify import scan
from ingestload.verify.process import GC_THRESHOLD, VerifierProcess, VerifierShards
from ingestload.verify.readback import Readback
from ingestload.verify.verdict import Thresholds

RUN = "b30cb30cb30cb30c"


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap


def rss_mb() -> float:
    """Current resident set size (not the peak), from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class VerifyBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def produce(self, bootstrap: str, topics: list[str], prefix: str) -> int:
        factory = MessageFactory(Catalogue.load(), topic_prefix=prefix)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
        writer = EnvelopeWriter(RUN, 1)
        tags = {topic: topic_tag(topic) for topic in factory.topics}
        n = self.args.messages
        for seq in range(n):
            now = time.time_ns()
            topic, value = factory.next(now)
            headers = [(HEADER, writer.pack(seq, now // 1000, checksum(value), tags[topic]))]
            while True:
                try:
                    producer.produce(topic, value, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.01)
            if seq % 10_000 == 0:
                producer.poll(0)
        producer.flush(60)
        return n

    def bare(self, bootstrap: str, topics: list[str]) -> tuple[int, float, float]:
        consumer = Consumer(
            {
                **CONSUMER_DEFAULTS,
                "bootstrap.servers": bootstrap,
                "group.id": "bench-bare",
                "enable.auto.commit": "false",
                "enable.partition.eof": "true",
            }
        )
        assignment = [TopicPartition(t, p, 0) for t in topics for p in range(3)]
        consumer.assign(assignment)
        pending, count = len(assignment), 0
        start, cpu = time.perf_counter(), time.process_time()
        while pending:
            # As the verifier takes them: wait for the first, then what is already fetched (a wait to
            # fill a batch would idle the loop at each partition's end and flatter the verifier).
            messages = consumer.consume(1, 1.0)
            for message in messages + consumer.consume(9_999, 0) if messages else ():
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending -= 1
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        consumer.close()
        return count, elapsed, cpu

    def verify(
        self, bootstrap: str, topics: list[str], n: int, native: bool = True
    ) -> tuple[int, float, float, str]:
        if not native:
            with scan.methods_only():
                return self.verify(bootstrap, topics, n)
        run = Readback(
            {"bootstrap.servers": bootstrap}, topics, RUN, start={(t, p): 0 for t in topics for p in range(3)}
        )
        ledger = AckLedger([ProducerLedger(1, sent=n, acked_count=n)])
        start, cpu = time.perf_counter(), time.process_time()
        verdict = run.finish(ledger, drain_timeout=600, late_grace=0)  # judged after the fact
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        return verdict.seen, elapsed, cpu, verdict.status

    def memory(self) -> tuple[float, float, int, float]:
        """(verifier state MB, RSS growth MB, serialized ledger bytes, seconds) for memory_messages."""
        from ingestload.verify.verifier import Verifier

        n = self.args.memory_messages
        producers = 4
        gc.collect()
        before = rss_mb()
        verifier = Verifier(RUN)
        value = b'{"Header":{"MessageType":"movementData"},"Param":{"Timestamp":"2026-11-22T12:00:00.000Z"}}'
        crc = checksum(value)
        tags = {f"gov-{i}": topic_tag(f"gov-{i}") for i in range(4)}
        batch: list[Message] = []
        offsets = [0] * 12
        elapsed = 0.0
        for i in range(n):
            producer = i % producers
            seq = i // producers
            part = (i // 1000) % 12  # runs of 1,000 records per partition, as a fetch delivers them
            topic = f"gov-{part // 3}"
            env = Envelope(RUN, producer + 1, seq, 0, crc, tags[topic])
            batch.append(
                Message(
                    topic=topic,
                    partition=part % 3,
                    offset=offsets[part],
                    value=value,
                    headers=[(HEADER, encode(env))],
                )
            )
            offsets[part] += 1
            if len(batch) == 10_000:
                start = time.perf_counter()
                verifier.process(batch, record_latency=True, now_us=1_000)
                elapsed += time.perf_counter() - start
                batch = []
        start = time.perf_counter()
        verifier.process(batch, record_latency=True, now_us=1_000)
        elapsed += time.perf_counter() - start
        batch = []
        gc.collect()
        grown = rss_mb() - before
        summary = verifier.summary()
        state_bytes = sum(
            e.seen.get_statistics()["n_bytes_array_containers"]
            + e.seen.get_statistics()["n_bytes_bitset_containers"]
            + e.seen.get_statistics()["n_bytes_run_containers"]
            for s in verifier.partitions.values()
            for e in s.producers.values()
        )
        ledger = AckLedger(
            ProducerLedger(p + 1, sent=n // producers, acked_count=n // producers) for p in range(producers)
        )
        serialized = len(orjson.dumps(ledger.to_json()))
        assert sum(len(b) for b in summary.seen.values()) == n
        return state_bytes / 2**20, grown, serialized, elapsed

    def end_cost(self, bootstrap: str) -> float:
        """Seconds Readback.finish takes on a run of 1,000 messages over 12 partitions: what judging
        costs beyond reading (end offsets, log checks, log starts)."""
        prefix = unique_prefix("vend")
        topics = Catalogue.load().topics(prefix)
        ensure_topics({"bootstrap.servers": bootstrap}, topics, partitions=3)
        saved, self.args.messages = self.args.messages, 1_000
        try:
            n = self.produce(bootstrap, topics, prefix)
        finally:
            self.args.messages = saved
        return self.verify(bootstrap, topics, n)[1]

    def sharded(self, bootstrap: str, topics: list[str], n: int, readers: int) -> tuple[int, float, str]:
        """(seen, seconds, status) for ``readers`` live verifier processes, as ``--verifier-processes``
        runs them (:class:`VerifierProcess` for 1, :class:`VerifierShards` for more): timed from the
        moment every process holds its partitions to the verdict (the others' states handed to the
        first, merged and judged, are in the time)."""
        zeros = {(t, p): 0 for t in topics for p in range(3)}
        common: dict[str, Any] = {
            "envelope_field": "_ingestload",
            "thresholds": Thresholds(),
            "on_progress": lambda _: None,
            "start": zeros,
        }
        config = {"bootstrap.servers": bootstrap}
        process: VerifierProcess | VerifierShards
        if readers == 1:
            process = VerifierProcess(config, topics, RUN, **common)
        else:
            process = VerifierShards(readers, config, topics, RUN, **common)
        try:
            if not process.wait_ready():
                raise SystemExit(f"the verifier processes did not start: {process.error}")
            start = time.perf_counter()
            follower = threading.Thread(target=process.follow)
            follower.start()
            ledger = AckLedger([ProducerLedger(1, sent=n, acked_count=n)])
            process.finish(ledger, drain_timeout=600, missing_workers=(), late_grace=0)
            follower.join()
            elapsed = time.perf_counter() - start
        finally:
            process.stop()
        verdict = process.verdict or {}
        return int(verdict.get("seen", 0)), elapsed, str(verdict.get("status", process.error))

    def main(self) -> None:
        a = self.args
        # As the live verifier process has it (ingestload.verify.process); the bare loop gets it too.
        gctune.tune(GC_THRESHOLD)
        # Memory first, while the process is fresh: later phases leave freed memory behind.
        print(f"feeding the verifier core {a.memory_messages:,} envelopes…", flush=True)
        state_mb, grown, ledger_bytes, core_elapsed = self.memory()
        core = a.memory_messages / core_elapsed
        with kafka(a.kafka_bootstrap) as bootstrap:
            prefix = unique_prefix("vbench")
            topics = Catalogue.load().topics(prefix)
            ensure_topics({"bootstrap.servers": bootstrap}, topics, partitions=3)
            print(f"producing {a.messages:,} messages with envelopes…", flush=True)
            n = self.produce(bootstrap, topics, prefix)
            # One untimed read first: the broker's first read of freshly written data is slower
            # (measured 620k vs 1.03M msg/s for the same bare loop), which flattered whichever side
            # of the first round came second.
            self.bare(bootstrap, topics)
            rows = []
            for _ in range(a.repeat):
                count, elapsed, cpu = self.bare(bootstrap, topics)
                rows.append(("bare consume loop (count only)", count, elapsed, cpu, ""))
                print(f"  bare: {count / elapsed:,.0f} msg/s", flush=True)
                seen, elapsed, cpu, status = self.verify(bootstrap, topics, n)
                rows.append(("ingestload Readback (full checks)", seen, elapsed, cpu, status))
                print(f"  verify: {seen / elapsed:,.0f} msg/s ({status})", flush=True)
                seen, elapsed, cpu, status = self.verify(bootstrap, topics, n, native=False)
                rows.append(("  same, Message methods only", seen, elapsed, cpu, status))
                print(f"  verify, methods only: {seen / elapsed:,.0f} msg/s ({status})", flush=True)
            end = min(self.end_cost(bootstrap) for _ in range(2))
            scaling = []
            for _ in range(a.repeat):
                for readers in (1, 2):
                    seen, elapsed, status = self.sharded(bootstrap, topics, n, readers)
                    scaling.append((readers, seen, elapsed, status))
                    print(
                        f"  {readers} verifier process(es): {seen / elapsed:,.0f} msg/s ({status})",
                        flush=True,
                    )
        print()
        print(
            f"{'side':<36} {'messages':>11} {'seconds':>8} {'msg/s':>10} {'vs bare':>8} "
            f"{'CPU µs/msg':>11} {'CPU vs bare':>12}"
        )
        ratios, cpu_ratios = [], []
        for i in range(0, len(rows), 3):
            bare_rate, bare_cpu = rows[i][1] / rows[i][2], rows[i][3] / rows[i][1]
            for label, count, elapsed, cpu, status in rows[i : i + 3]:
                rate, per = count / elapsed, cpu / count
                print(
                    f"{label:<36} {count:>11,} {elapsed:>8.2f} {rate:>10,.0f} {rate / bare_rate:>7.2f}× "
                    f"{per * 1e6:>11.2f} {bare_cpu / per:>11.2f}× {status}"
                )
            ratios.append((rows[i + 1][1] / rows[i + 1][2]) / bare_rate)
            cpu_ratios.append(bare_cpu / (rows[i + 1][3] / rows[i + 1][1]))
        print(f"\nfixed cost at the end (Readback.finish, 1,000 messages, best of 2): {end:.2f} s")
        print(f"verifier core without Kafka: {core:,.0f} msg/s")
        print(f"memory for {a.memory_messages:,} messages (4 producers × 12 partitions):")
        print(
            f"  verifier seen-sets (roaring bitmaps): {state_mb:,.1f} MB; process RSS growth {grown:,.1f} MB"
        )
        print(f"  ack ledger, serialized: {ledger_bytes:,} bytes")
        print("\n--verifier-processes 1 and 2 (the live verifier processes, from ready to verdict):")
        print(f"{'processes':>10} {'messages':>11} {'seconds':>8} {'msg/s':>10} {'vs 1':>6}")
        for i in range(0, len(scaling), 2):
            one = scaling[i][1] / scaling[i][2]
            for readers, seen, elapsed, status in scaling[i : i + 2]:
                rate = seen / elapsed
                print(
                    f"{readers:>10} {seen:>11,} {elapsed:>8.2f} {rate:>10,.0f} {rate / one:>5.2f}× {status}"
                )
        ratio = statistics.median(ratios)
        print("\ngoals (issue 20):")
        print(goal_line("verified ≥ 0.8× the bare loop (median of rounds)", ratio >= 0.8, f"{ratio:.2f}×"))
        print(f"    (CPU per message vs bare, median: {statistics.median(cpu_ratios):.2f}×)")
        print(f"    (native reader: {scan.unavailable() or 'used'})")
        print(goal_line("fixed end cost ≤ 0.3 s", end <= 0.3, f"{end:.2f} s"))
        print(goal_line("verifier core ≥ 1,000,000 msg/s", core >= 1_000_000, f"{core:,.0f} msg/s"))
        print(goal_line("memory in tens of MB", grown < 100, f"{grown:,.0f} MB"))


def goal_line(goal: str, met: bool, measured: str) -> str:
    """``  [met]     goal: measured`` — one line of a bench's goals."""
    return f"  [{'met' if met else 'NOT met':<7}] {goal}: {measured}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2_000_000, help="messages to produce and verify")
    parser.add_argument(
        "--memory-messages", type=int, default=10_000_000, help="messages for the memory figure"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of bare + verify (default 3)")
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    return parser.parse_args()


if __name__ == "__main__":
    VerifyBench(parse_args()).main()
