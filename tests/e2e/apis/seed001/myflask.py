"""A faithful replica of seed 001's ingest endpoint (``myflask.py``): Flask, ``request.form``,
``json.dumps(form)`` with kafka-python's ``KafkaProducer`` made per request, a fixed topic per
endpoint, ``producer.flush()``, then ``"OK"``. Run as the seed ran it: ``python3 myflask.py``
(Flask's threaded development server).

What differs from the seed, and why:

* the broker address and the port come from the environment (``SEED001_KAFKA``, ``SEED001_PORT``)
  instead of ``192.168.32.56:9092`` and 4000, and the topic names get the test's prefix
  (``SEED001_TOPIC_PREFIX``: a topic per test);
* the seed's one endpoint (``/financial_pro``) is made for each name of its handler's
  ``handler_API`` list that the test sends (``SEED001_ENDPOINTS``), each with its own fixed topic;
* faults for the tests (``SEED001_DROP_EVERY``, ``SEED001_DUPLICATE_EVERY``,
  ``SEED001_CORRUPT_EVERY``: every Nth request answered "OK" and not written / written twice /
  written with ``test02`` changed), and the API's own account of them, written to ``SEED001_TRUTH``
  on SIGTERM as {"lost": [id, …], …} with each message's own ``test01`` value.
"""

import json
import os
import signal
import sys
import threading

from flask import Flask, request

from kafka import KafkaProducer

app = Flask(__name__)
BOOTSTRAP = os.environ["SEED001_KAFKA"]
TOPIC_PREFIX = os.environ.get("SEED001_TOPIC_PREFIX", "")
FAULTS = {k: int(os.environ.get(f"SEED001_{k.upper()}_EVERY", "0")) for k in ("drop", "duplicate", "corrupt")}
truth = {"lost": [], "duplicated": [], "corrupted": []}
lock = threading.Lock()
counter = [0]


def fate():
    with lock:
        counter[0] += 1
        n = counter[0]
    return {k for k, every in FAULTS.items() if every and n % every == 0}


def make_endpoint(api_name):
    def endpoint():
        if request.method == "POST":
            data = request.form
            kinds = fate()
            if "drop" in kinds:
                with lock:
                    truth["lost"].append(data["test01"])
                return "OK"
            if "corrupt" in kinds:
                data = dict(data)
                data["test02"] = data["test02"] + "1"
            producer = KafkaProducer(
                bootstrap_servers=[BOOTSTRAP], value_serializer=lambda v: json.dumps(v).encode("utf-8")
            )
            response = producer.send(TOPIC_PREFIX + api_name, data)
            if "duplicate" in kinds:
                producer.send(TOPIC_PREFIX + api_name, data)
            producer.flush()
            response.get(30)  # flush() waited for it; this raises if Kafka refused it (the seed printed it)
            producer.close()
            with lock:
                if "duplicate" in kinds:
                    truth["duplicated"].append(data["test01"])
                if "corrupt" in kinds:
                    truth["corrupted"].append(data["test01"])
            return "OK"
        return "Methods Error"

    endpoint.__name__ = api_name
    app.add_url_rule("/" + api_name, view_func=endpoint, methods=["GET", "POST"])


for name in os.environ.get("SEED001_ENDPOINTS", "financial_pro").split(","):
    make_endpoint(name)


def stop(*_):
    with open(os.environ["SEED001_TRUTH"], "w") as out:
        json.dump(truth, out)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    app.run(host="127.0.0.1", port=int(os.environ["SEED001_PORT"]), threaded=True)
