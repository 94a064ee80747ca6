"""Verified msg/s on the HTTP path, per kind of ingest API, side by side in one run on the same machine:
what the live verifier (``Readback``) reads from Kafka when an API forwards our bytes, re-serialises
them, enriches, wraps, batches, takes forms, or has a strict schema (issue 17).

For each kind, ``--messages`` messages are rendered by ``IngestApiClient`` as the user would send them,
changed as such an API changes them (here, in Python), produced to topics of their own, then verified
after the fact; a bare consume loop over the byte-forwarded topics is the reference. Each row shows the
verdict's status: PASS means every message was found intact (enrichment counted, not corrupted).

Run against an older checkout (``PYTHONPATH=old/src``) it measures what that version can: the kinds it
has no options for are verified with its defaults, which shows what it made of them (the issue's
"before").

    python bench/verify_bodies.py [--messages 200000] [--kafka-bootstrap HOST:PORT]
    python bench/verify_bodies.py --core      # the verifier core alone, no Kafka: steadier on a busy machine
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from ingestload.http.client import IngestApiClient
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.kafka.config import CONSUMER_DEFAULTS
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.testing import unique_prefix
from ingestload.verify.readback import Readback

try:  # the issue-17 version: the options of the new kinds
    from ingestload.verify.body import BodySpec

    NEW = True
except ImportError:  # an older checkout: its defaults only
    NEW = False

RUN = "b0d1e5b0d1e5b0d1"


def reserialised(value: bytes) -> bytes:
    """json.loads then json.dumps with the members in reverse order and spaces: another stack's bytes."""

    def flip(obj: Any) -> Any:
        return {k: flip(obj[k]) for k in reversed(list(obj))} if isinstance(obj, dict) else obj

    return json.dumps(flip(json.loads(value))).encode()


def enriched(value: bytes) -> bytes:
    doc = json.loads(value)
    doc["receivedAt"], doc["source"] = "2026-12-04T12:00:00.000Z", "bench-api"
    return json.dumps(doc).encode()


def wrapped(value: bytes) -> bytes:
    return json.dumps(
        {"meta": {"receivedAt": "2026-12-04T12:00:00.000Z"}, "data": json.loads(value)}
    ).encode()


def form_written(value: bytes) -> bytes:
    """What seed 001's endpoint writes for a form post: json.dumps(request.form)."""
    return json.dumps(dict(parse_qsl(value.decode(), keep_blank_values=True))).encode()


#: name → (client options, what the API does to one body, records per batch, verifier options)
KINDS: dict[str, tuple[dict[str, Any], Callable[[bytes], bytes], int, dict[str, Any]]] = {
    "forwards the bytes": ({}, lambda v: v, 1, {}),
    "re-serialises (other order, spaces)": ({}, reserialised, 1, {}),
    "adds receivedAt, source": ({}, enriched, 1, {}),
    "wraps {meta, data} (discovered)": ({}, wrapped, 1, {}),
    "wraps {meta, data} (--message-path data)": ({}, wrapped, 1, {"message_path": "data"}),
    "10 messages per record {count, records}": ({}, lambda v: v, 10, {}),
    "form, json.dumps(request.form)": ({"body": "form"}, form_written, 1, {}),
    "strict JSON (--envelope-in Header.MessageId)": (
        {"envelope_in": "Header.MessageId"},
        lambda v: v,
        1,
        {"envelope_in": "Header.MessageId"},
    ),
    "strict form, seed 001 (--envelope-in Header.MessageId)": (
        {"body": "form", "envelope_in": "Header.MessageId"},
        form_written,
        1,
        {"envelope_in": "Header.MessageId"},
    ),
}


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
    else:
        with EmbeddedBroker() as broker:
            yield broker.bootstrap


class _Record:
    """Just enough of a consumed message for the verifier (``--core``)."""

    __slots__ = ("_offset", "_topic", "_value")

    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self._topic, self._offset, self._value = topic, offset, value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)


class BodyBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.catalogue = Catalogue.load()

    def produce(self, bootstrap: str, prefix: str, kind: str) -> tuple[list[str], ProducerLedger]:
        options, change, per_record, _ = KINDS[kind]
        client = IngestApiClient(MessageFactory(self.catalogue, topic_prefix=prefix), **options)
        client.begin_run(RUN)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
        topics: set[str] = set()
        n = self.args.messages
        pending: dict[str, list[bytes]] = {}
        for start in range(0, n, 1000):
            for topic, _, body in client._render(min(1000, n - start)):
                topics.add(topic)
                value = change(body)
                if per_record == 1:
                    self._send(producer, topic, value)
                    continue
                group = pending.setdefault(topic, [])
                group.append(value)
                if len(group) == per_record:
                    records = [json.loads(v) for v in group]
                    self._send(
                        producer, topic, json.dumps({"count": len(records), "records": records}).encode()
                    )
                    group.clear()
        for topic, group in pending.items():
            if group:
                records = [json.loads(v) for v in group]
                self._send(producer, topic, json.dumps({"count": len(records), "records": records}).encode())
        producer.flush(60)
        client.resolve(range(n), "acked")
        return sorted(topics), client.ledger()

    @staticmethod
    def _send(producer: Producer, topic: str, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value)
                producer.poll(0)
                return
            except BufferError:
                producer.poll(0.01)

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

    def verify(
        self, bootstrap: str, topics: list[str], ledger: ProducerLedger, kind: str
    ) -> tuple[Any, float]:
        extra: dict[str, Any] = {}
        if NEW:
            extra["body"] = BodySpec(members=self.catalogue.member_paths(), **KINDS[kind][3])
        run = Readback(
            {"bootstrap.servers": bootstrap},
            topics,
            RUN,
            start={(t, p): 0 for t in topics for p in range(3)},
            **extra,
        )
        start = time.perf_counter()
        verdict = run.finish(AckLedger([ledger]), drain_timeout=600, late_grace=0)
        return verdict, time.perf_counter() - start

    def core(self, kind: str, rounds: int = 5) -> tuple[int, float, int]:
        """(messages, best seconds of ``rounds``, corrupted) for the verifier core on in-memory records."""
        from ingestload.verify.verifier import Verifier

        options, change, per_record, spec = KINDS[kind]
        client = IngestApiClient(MessageFactory(self.catalogue), **options)
        client.begin_run(RUN)
        n = self.args.messages
        bodies = [(t, change(v)) for t, _, v in client._render(n)]
        if per_record > 1:
            grouped: dict[str, list[bytes]] = {}
            for t, v in bodies:
                grouped.setdefault(t, []).append(v)
            bodies = [
                (
                    t,
                    json.dumps(
                        {
                            "count": len(vs[i : i + per_record]),
                            "records": [json.loads(v) for v in vs[i : i + per_record]],
                        }
                    ).encode(),
                )
                for t, vs in grouped.items()
                for i in range(0, len(vs), per_record)
            ]
        records = sorted((_Record(t, i, v) for i, (t, v) in enumerate(bodies)), key=lambda r: r.topic())
        best, corrupted = float("inf"), -1
        for _ in range(rounds):
            extra: dict[str, Any] = {}
            if NEW:
                extra["body"] = BodySpec(members=self.catalogue.member_paths(), **spec)
            verifier = Verifier(RUN, **extra)
            start = time.perf_counter()
            for i in range(0, len(records), 10_000):
                verifier.process(records[i : i + 10_000])
            best = min(best, time.perf_counter() - start)
            summary = verifier.summary()
            corrupted = summary.corrupted
            seen = sum(len(b) for b in summary.seen.values())
        return seen, best, corrupted

    def main_core(self) -> None:
        kinds = list(KINDS) if NEW else [k for k in KINDS if not KINDS[k][0]]
        print(
            f"{'ingest API (verifier core, no Kafka, best of 5)':<56} {'verified':>9} {'msg/s':>9} corrupted"
        )
        for kind in kinds:
            seen, best, corrupted = self.core(kind)
            print(f"{kind:<56} {seen:>9,} {seen / best:>9,.0f} {corrupted:>9,}", flush=True)

    def main(self) -> None:
        a = self.args
        if a.core:
            self.main_core()
            return
        kinds = list(KINDS) if NEW else [k for k in KINDS if not KINDS[k][0]]
        rows = []
        with kafka(a.kafka_bootstrap) as bootstrap:
            for kind in kinds:
                prefix = unique_prefix("bbench")
                ensure_topics({"bootstrap.servers": bootstrap}, self.catalogue.topics(prefix), partitions=3)
                print(f"{kind}: producing {a.messages:,} messages…", flush=True)
                topics, ledger = self.produce(bootstrap, prefix, kind)
                if not rows:
                    count, elapsed = self.bare(bootstrap, topics)
                    rows.append(("bare consume loop (records, count only)", count, elapsed, "", 0, 0))
                verdict, elapsed = self.verify(bootstrap, topics, ledger, kind)
                rows.append(
                    (
                        kind,
                        verdict.seen,
                        elapsed,
                        verdict.status,
                        verdict.corrupted,
                        getattr(verdict, "enriched", 0),
                    )
                )
                print(f"  {verdict.line()}", flush=True)
        head = f"{'ingest API':<56} {'verified':>9} {'seconds':>8} {'msg/s':>9}"
        print(f"\n{head}  status       corrupted enriched")
        for label, count, elapsed, status, corrupted, enrich in rows:
            print(
                f"{label:<56} {count:>9,} {elapsed:>8.2f} {count / elapsed:>9,.0f}  {status:<12} "
                f"{corrupted:>9,} {enrich:>8,}"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=200_000, help="messages per kind of API")
    parser.add_argument("--core", action="store_true", help="the verifier core alone, on in-memory records")
    parser.add_argument(
        "--kafka-bootstrap", default=None, help="use this Kafka instead of the embedded broker"
    )
    return parser.parse_args()


if __name__ == "__main__":
    BodyBench(parse_args()).main()
