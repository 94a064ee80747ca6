"""A bare confluent-kafka produce loop — the ceiling a Python producer reaches on this machine.

Same producer settings as ingestload's defaults (acks=all, idempotence, linger 5 ms), the
same payloads (pre-rendered, cycled), no envelope, no Locust, one counter callback.
Prints one JSON line: {"acked": N, "seconds": S}.
"""

from __future__ import annotations

import argparse
import json
import time

from confluent_kafka import Producer

from ingestload.kafka.config import PRODUCER_DEFAULTS
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()

    factory = MessageFactory(Catalogue.load(), topic_prefix=args.topic_prefix)
    messages = [factory.next(time.time_ns()) for _ in range(20_000)]
    acked = 0

    def on_delivery(err: object, msg: object) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    producer = Producer(
        {**PRODUCER_DEFAULTS, "bootstrap.servers": args.bootstrap, "on_delivery": on_delivery}
    )
    for topic in {t for t, _ in messages}:
        producer.list_topics(topic, timeout=5)
    start = time.perf_counter()
    deadline = start + args.duration
    i = 0
    while time.perf_counter() < deadline:
        for _ in range(1000):
            topic, value = messages[i % len(messages)]
            i += 1
            try:
                producer.produce(topic, value)
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    producer.flush(30)
    print(json.dumps({"acked": acked, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
