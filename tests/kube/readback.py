"""What the broker holds of one run, counted without ingestload's verifier.

    kubectl exec -i deploy/ingestload-broker -- python - BOOTSTRAP RUN_ID TOPIC_PREFIX < readback.py

Runs inside a pod of the cluster (the image has confluent-kafka; nothing of ingestload is
imported), so the tests know the truth independently of the verdict they check. It reads every
partition of the topics starting with TOPIC_PREFIX from the beginning to the end-of-partition
marker, keeps the messages whose envelope — the ``ingestload`` header on the Kafka path, the
``_ingestload`` JSON member (82 hex digits) on the HTTP path — carries RUN_ID, and prints JSON:
distinct messages, extra copies, per topic, per path, per producer, and per second of broker timestamp.

Envelope layout (41 bytes, big-endian): version u8, run id 8 bytes, producer id u64, seq u64,
sent-at i64 µs, CRC-32 u32, CRC-32 of the topic meant for u32.
"""

import json
import struct
import sys
from collections import Counter, defaultdict

from confluent_kafka import Consumer, KafkaError, TopicPartition

LAYOUT = struct.Struct(">B8sQQqII")
JSON_MEMBER = b'"_ingestload":"'


def envelope_of(message):
    """(path, envelope bytes): the Kafka path's header, or the HTTP path's JSON member."""
    for key, value in message.headers() or ():
        if key == "ingestload":
            return "kafka", value
    value = message.value() or b""
    at = value.find(JSON_MEMBER)
    if at >= 0:
        start = at + len(JSON_MEMBER)
        return "api", bytes.fromhex(value[start : start + 2 * LAYOUT.size].decode())
    return None, None


def main(bootstrap, run_id, prefix):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "ingestload-kube-readback",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    metadata = consumer.list_topics(timeout=20)
    partitions = [
        TopicPartition(topic, p, 0)
        for topic, info in metadata.topics.items()
        if topic.startswith(prefix)
        for p in info.partitions
    ]
    consumer.assign(partitions)
    open_partitions = {(tp.topic, tp.partition) for tp in partitions}
    wanted = bytes.fromhex(run_id)
    seen = set()
    copies = 0
    per_topic = Counter()
    per_path = Counter()
    per_producer = Counter()
    per_second = Counter()
    per_second_by_producer = defaultdict(Counter)
    while open_partitions:
        for message in consumer.consume(10000, timeout=1.0):
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    open_partitions.discard((message.topic(), message.partition()))
                    continue
                raise SystemExit(f"readback: {message.error()}")
            path, raw = envelope_of(message)
            if raw is None or len(raw) != LAYOUT.size or raw[1:9] != wanted:
                continue
            _, _, producer, seq, _, _, _ = LAYOUT.unpack(raw)
            key = (producer, seq)
            if key in seen:
                copies += 1
                continue
            seen.add(key)
            producer_hex = f"{producer:016x}"
            second = message.timestamp()[1] // 1000
            per_topic[message.topic()] += 1
            per_path[path] += 1
            per_producer[producer_hex] += 1
            per_second[second] += 1
            per_second_by_producer[producer_hex][second] += 1
    consumer.close()
    json.dump(
        {
            "distinct": len(seen),
            "duplicates": copies,
            "per_topic": per_topic,
            "per_path": per_path,
            "per_producer": per_producer,
            "per_second": per_second,
            "per_second_by_producer": per_second_by_producer,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
