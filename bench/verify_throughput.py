"""Verifier throughput and memory, side by side in one run on the same data:

  (a) a bare confluent-kafka consume loop that only counts messages (same fetch settings);
  (b) ingestload's Readback — what the live verifier process runs — reading the same
      topics: envelope, seen sets, duplicates, CRC-32 of every value, ordering, latency.

Then the memory of a 10-million-message run: the verifier's state and the ack ledger,
fed with 10 M synthetic envelopes (4 producers over 12 partitions; Kafka is not needed
to measure data structures), as RSS growth and serialized size.

Targets (issue #3): (b) ≥ 250,000 msg/s and ≥ 0.5 × (a); memory in tens of MB.

    python bench/verify_throughput.py [--messages 2000000] [--memory-messages 10000000]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.kafka.config import CONSUMER_DEFAULTS
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.envelope import HEADER, Envelope, EnvelopeWriter, checksum, encode, topic_tag
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.testing import unique_prefix
from ingestload.verify.readback import Readback

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


class _Synthetic:
    """Just enough of a consumed message for the verifier's hot loop."""

    __slots__ = ("_headers", "_offset", "_partition", "_topic", "_value")

    def __init__(self, topic: str, partition: int, offset: int, value: bytes, headers: list[Any]) -> None:
        self._topic, self._partition, self._offset, self._value, self._headers = (
            topic,
            partition,
            offset,
            value,
            headers,
        )

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[Any]:
        return self._headers


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

    def bare(self, bootstrap: str, topics: list[str]) -> tuple[int, float]:
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
        start = time.perf_counter()
        while pending:
            for message in consumer.consume(10_000, 1.0):
                error = message.error()
                if error is None:
                    count += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending -= 1
        elapsed = time.perf_counter() - start
        consumer.close()
        return count, elapsed

    def verify(self, bootstrap: str, topics: list[str], n: int) -> tuple[int, float, str]:
        run = Readback(
            {"bootstrap.servers": bootstrap}, topics, RUN, start={(t, p): 0 for t in topics for p in range(3)}
        )
        ledger = AckLedger([ProducerLedger(1, sent=n, acked_count=n)])
        start = time.perf_counter()
        verdict = run.finish(ledger, drain_timeout=600, late_grace=0)  # judged after the fact
        elapsed = time.perf_counter() - start
        return verdict.seen, elapsed, verdict.status

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
        start = time.perf_counter()
        batch: list[_Synthetic] = []
        offsets = [0] * 12
        for i in range(n):
            producer = i % producers
            seq = i // producers
            part = (i * 7919) % 12
            topic = f"gov-{part // 3}"
            env = Envelope(RUN, producer + 1, seq, 0, crc, tags[topic])
            batch.append(_Synthetic(topic, part % 3, offsets[part], value, [(HEADER, encode(env))]))
            offsets[part] += 1
            if len(batch) == 10_000:
                verifier.process(batch, record_latency=False)
                batch = []
        verifier.process(batch, record_latency=False)
        elapsed = time.perf_counter() - start
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

    def main(self) -> None:
        a = self.args
        # Memory first, while the process is fresh: later phases leave freed memory behind.
        print(f"feeding the verifier {a.memory_messages:,} synthetic envelopes…", flush=True)
        state_mb, grown, ledger_bytes, mem_elapsed = self.memory()
        with kafka(a.kafka_bootstrap) as bootstrap:
            prefix = unique_prefix("vbench")
            topics = Catalogue.load().topics(prefix)
            ensure_topics({"bootstrap.servers": bootstrap}, topics, partitions=3)
            print(f"producing {a.messages:,} messages with envelopes…", flush=True)
            n = self.produce(bootstrap, topics, prefix)
            rows = []
            for _ in range(a.repeat):
                count, elapsed = self.bare(bootstrap, topics)
                rows.append(("bare consume loop (count only)", count, elapsed, ""))
                print(f"  bare: {count / elapsed:,.0f} msg/s", flush=True)
                seen, elapsed, status = self.verify(bootstrap, topics, n)
                rows.append(("ingestload Readback (full checks)", seen, elapsed, status))
                print(f"  verify: {seen / elapsed:,.0f} msg/s ({status})", flush=True)
        print()
        print(f"{'side':<42} {'messages':>11} {'seconds':>8} {'msg/s':>10} {'vs bare':>8}")
        for i in range(0, len(rows), 2):
            bare_rate = rows[i][1] / rows[i][2]
            for label, count, elapsed, status in rows[i : i + 2]:
                rate = count / elapsed
                line = f"{label:<42} {count:>11,} {elapsed:>8.2f} {rate:>10,.0f} {rate / bare_rate:>7.2f}×"
                print(f"{line} {status}")
        print(f"\nmemory for {a.memory_messages:,} messages (4 producers × 12 partitions), measured first:")
        print(
            f"  verifier seen-sets (roaring bitmaps): {state_mb:,.1f} MB; process RSS growth {grown:,.1f} MB"
        )
        print(f"  ack ledger, serialized: {ledger_bytes:,} bytes")
        print(f"  verifier core without Kafka: {a.memory_messages / mem_elapsed:,.0f} msg/s")
        best = max(rows[i + 1][1] / rows[i + 1][2] for i in range(0, len(rows), 2))
        ratio = max(
            (rows[i + 1][1] / rows[i + 1][2]) / (rows[i][1] / rows[i][2]) for i in range(0, len(rows), 2)
        )
        print(
            f"\ntargets: verified ≥ 250,000 msg/s [{'met' if best >= 250_000 else 'NOT met'}: {best:,.0f}], "
            f"≥ 0.5× bare [{'met' if ratio >= 0.5 else 'NOT met'}: {ratio:.2f}×], "
            f"memory tens of MB [{'met' if grown < 100 else 'NOT met'}: {grown:,.0f} MB]"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2_000_000, help="messages to produce and verify")
    parser.add_argument(
        "--memory-messages", type=int, default=10_000_000, help="messages for the memory figure"
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds of bare + verify (default 2)")
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    return parser.parse_args()


if __name__ == "__main__":
    VerifyBench(parse_args()).main()
