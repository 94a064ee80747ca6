"""A faithful replica of seed 001's consumer (``handler``): kafka-python's ``KafkaConsumer`` per
endpoint, a field count per endpoint (``check_data``, the seed's own numbers), and every message
written to a file per endpoint — marked "数据字段数不符合要求" (wrong number of fields) when its count
differs.

What differs from the seed, and why: the broker comes from ``SEED001_KAFKA`` and the topics get the
test's prefix (``SEED001_TOPIC_PREFIX``); files go to
``SEED001_OUT`` instead of ``d:/``; ``auto_offset_reset="earliest"`` (the seed's own commented-out
line) so that the test need not start it before the load; one thread per endpoint instead of a
process pool; it stops after ``SEED001_IDLE`` seconds without a message and prints a summary line
``accepted=N rejected=M`` per endpoint.
"""

import json
import os
import threading
import time

from kafka import KafkaConsumer

handler_API = ["identity_pro", "financial_pro", "internet_pro", "social_pro", "trip_pro", "communication_pro"]
check_data = {
    "identity_pro": 7,
    "financial_pro": 4,
    "internet_pro": 5,
    "social_pro": 3,
    "trip_pro": 3,
    "communication_pro": 4,
}
kafka_servers = [os.environ["SEED001_KAFKA"]]
OUT = os.environ["SEED001_OUT"]
IDLE = float(os.environ.get("SEED001_IDLE", "5"))
counts = {}


def conumers(api_name, kfksers):
    con = KafkaConsumer(
        os.environ.get("SEED001_TOPIC_PREFIX", "") + api_name,
        bootstrap_servers=[kfksers],
        auto_offset_reset="earliest",
        value_deserializer=json.loads,
        consumer_timeout_ms=int(IDLE * 1000),
    )
    accepted = rejected = 0
    for message in con:
        Tm = time.strftime("%Y-%m-%d %H:%M:%S")
        data = message.value
        with open(os.path.join(OUT, "%s.txt" % api_name), "a") as F:
            if int(check_data[api_name]) == len(data.keys()):
                accepted += 1
                F.write("[%s]--%s\n" % (Tm, data))
            else:
                rejected += 1
                F.write("[%s]--%s--%s" % (Tm, data, "数据字段数不符合要求!!!\n"))
    counts[api_name] = (accepted, rejected)


if __name__ == "__main__":
    names = os.environ.get("SEED001_ENDPOINTS", ",".join(handler_API)).split(",")
    threads = [threading.Thread(target=conumers, args=(n, ",".join(kafka_servers))) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in names:
        accepted, rejected = counts.get(name, (0, 0))
        print(f"{name} accepted={accepted} rejected={rejected}", flush=True)
