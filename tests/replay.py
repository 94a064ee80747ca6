"""Writes records again, later, from a process of its own: a pipeline's delayed retry, for the tests.

late = replay_later(bootstrap, copies, tmp_path, delay=1.5, corrupt={7})   # a Popen
…
late.wait(30)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition


def replay_later(bootstrap: str, copies, folder: Path, *, delay: float, corrupt=()):
    """Copy the records of ``copies`` (oracle Copies: topic, partition, offset) to their topic again,
    ``delay`` seconds from now; the values of the seqs in ``corrupt`` are changed."""
    spec = folder / f"replay-{time.monotonic_ns()}.json"
    records = [[c.topic, c.partition, c.offset, c.seq in set(corrupt)] for c in copies]
    spec.write_text(json.dumps({"bootstrap": bootstrap, "delay": delay, "records": records}))
    return subprocess.Popen([sys.executable, __file__, str(spec)])


def main(path: str) -> int:
    spec = json.loads(Path(path).read_text())
    consumer = Consumer(
        {"bootstrap.servers": spec["bootstrap"], "group.id": "replay", "enable.auto.commit": False}
    )
    originals = []
    for topic, partition, offset, corrupt in spec["records"]:
        consumer.assign([TopicPartition(topic, partition, offset)])
        message = consumer.consume(1, 10)[0]
        originals.append((topic, message.value(), message.headers(), corrupt))
    consumer.close()
    time.sleep(spec["delay"])
    producer = Producer({"bootstrap.servers": spec["bootstrap"]})
    for topic, value, headers, corrupt in originals:
        producer.produce(topic, value + b" " if corrupt else value, headers=headers)
    return 0 if producer.flush(30) == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
