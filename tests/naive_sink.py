"""A naive sink, written as seed 001's handler was — a test fixture whose losses and duplicates the
fault tests count. Never write a sink like this.

Seed 001's handler joined a consumer group per topic, let the client commit offsets on its own
timer, checked each message's fields ("数据字段不符合要求" for the others) and wrote each message on
its own. This one does the same into PostgreSQL:

* a consumer group (confluent-kafka) with auto-commit on a short timer: librdkafka stores a
  record's offset when it hands the record over and commits the stored offsets from a background
  thread, so offsets are committed *before* the records are written (a crash then loses the
  records polled, committed and not yet written), and records written since the last commit are
  read again after a restart (a crash writes them twice);
* one ``INSERT`` per message, each its own transaction, with no key: a record read twice is two
  rows;
* the raw record value into the ``body`` column of its own table, as the seed wrote the raw
  message to its file. The table also keeps where each record was read (topic, partition,
  offset): the tests' own account of what it wrote, which the verdict never looks at;
* writing is slow on purpose (``--write-delay`` per row), so that a batch takes a while and a kill
  finds records polled but not written.

What differs from the seed, and why: ``auto.offset.reset=earliest`` (the seed's own commented-out
line; ``latest`` would add losses that depend on when it joined, not on its commit discipline) and
PostgreSQL instead of ``d:/<api>.txt``. The database's address comes from ``NAIVE_SINK_DSN`` (the
environment, never argv); the connection's ``application_name`` is ``naive-sink-<table>``, so a
test can tell when its server backend is gone after a kill.

    NAIVE_SINK_DSN=postgresql://… python tests/naive_sink.py BOOTSTRAP GROUP TABLE TOPIC[,TOPIC…]

It prints ``ready`` once its table exists and it has subscribed, ``assigned N`` when the group gave
it N partitions, and runs until killed.
"""

import argparse
import json
import os
import sys
import time

import psycopg
from confluent_kafka import Consumer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("group")
    parser.add_argument("table")
    parser.add_argument("topics")
    parser.add_argument("--batch", type=int, default=300, help="records per poll")
    parser.add_argument("--write-delay", type=float, default=0.001, help="seconds spent per row")
    parser.add_argument("--commit-interval-ms", type=int, default=150)
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=1000,
        help="a restarted one gets its partitions back this soon",
    )
    args = parser.parse_args()

    db = psycopg.connect(
        os.environ["NAIVE_SINK_DSN"], autocommit=True, application_name=f"naive-sink-{args.table}"
    )
    db.execute(
        f"CREATE TABLE IF NOT EXISTS {args.table} (row_id bigserial PRIMARY KEY, topic text, "
        "kafka_partition integer, kafka_offset bigint, body text, "
        "written_at timestamptz DEFAULT clock_timestamp())"
    )
    insert = f"INSERT INTO {args.table} (topic, kafka_partition, kafka_offset, body) VALUES (%s, %s, %s, %s)"
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": args.commit_interval_ms,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": args.session_timeout_ms,
            "heartbeat.interval.ms": max(100, args.session_timeout_ms // 5),
        }
    )

    def on_assign(consumer, partitions):
        print(f"assigned {len(partitions)}", flush=True)

    consumer.subscribe(args.topics.split(","), on_assign=on_assign)
    print("ready", flush=True)
    while True:
        for message in consumer.consume(args.batch, 0.5):
            if message.error() is not None:
                continue
            value = message.value()
            try:
                data = json.loads(value)
            except ValueError:
                data = None
            if not isinstance(data, dict) or not data:
                print(f"{data}--数据字段不符合要求!!!", flush=True)
                continue
            db.execute(insert, (message.topic(), message.partition(), message.offset(), value.decode()))
            time.sleep(args.write_delay)


if __name__ == "__main__":
    sys.exit(main())
