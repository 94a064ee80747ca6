"""The last hop, end to end: controllers produce to Kafka, live views watch them through a fan-out gateway.

    ingestload run --fanout                        # broker + gateway + this file, both verdicts
    locust -f locustfiles/fanout.py --headless -u 51 -t 1m --rate 2775 \
        --ws-url ws://127.0.0.1:8765/v1/stream     # your gateway: 1 producer + 50 subscribers

Every user beyond the producers (one per process) is one subscriber (a browser tab): it
subscribes to the run's topics (--ws-topics, --ws-filter), files every message it receives, and
shows the fan-out latency as WS rows. At the stop both verdicts are printed; the exit code covers both.
"""

from ingestload.users import KafkaProducerUser, WebSocketSubscriberUser


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, straight to Kafka."""

    one_per_process = True  # one producer per process (its users share one anyway); the rest are views


class LiveViews(WebSocketSubscriberUser):
    """A live view of every message of the run's topics (or --ws-topics / --ws-filter)."""
