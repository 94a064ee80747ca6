"""A replica of seed 001's ingest endpoint: Flask, a new Kafka producer per request, "OK" regardless.

What is kept from the seed (``myflask.py``, ``python3 myflask.py`` under ``ab -c 100``):
Flask's own threaded server (``app.run(threaded=True)``), kafka-python's ``KafkaProducer``
built inside the request with a JSON ``value_serializer``, ``send()`` + ``flush()``, and
``return "OK"`` without looking at the send's result. kafka-python's defaults of the seed's
time (2019, kafka-python 1.4) are set explicitly, because today's kafka-python defaults are
safer: ``acks=1`` and ``retries=0``.

Two changes so that a benchmark can run it: the route is ``POST /v1/messages/<msgType>``
with a JSON body (the seed read a form on ``/financial_pro``), and each producer is closed
after the request (the seed leaked one producer — a thread and a socket — per request).

    python bench/naive_flask_app.py --port 5000 --bootstrap 127.0.0.1:9092 --topic-prefix gov-
"""

from __future__ import annotations

import argparse
import json
import logging

from flask import Flask, request

from kafka import KafkaProducer


def create_app(bootstrap: str, topic_prefix: str) -> Flask:
    app = Flask(__name__)

    @app.route("/v1/messages/<msg_type>", methods=["POST"])
    def ingest(msg_type: str) -> str:
        data = request.get_json(force=True)
        producer = KafkaProducer(
            bootstrap_servers=[bootstrap],
            value_serializer=lambda v: json.dumps(v).encode("utf-8"),
            acks=1,
            retries=0,
            enable_idempotence=False,
        )
        try:
            producer.send(topic_prefix + msg_type, data)  # the result is never checked, as in the seed
            producer.flush()
        finally:
            producer.close(timeout=1)
        return "OK"

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic-prefix", default="gov-")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per request
    create_app(args.bootstrap, args.topic_prefix).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
