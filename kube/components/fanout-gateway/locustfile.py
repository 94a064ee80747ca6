"""The whole pipeline and its last hop, from many pods: controllers that produce to Kafka,
controllers behind the ingest API, and live views that watch the topics through the fan-out
gateway (INGESTLOAD_WS_URL), spread over every worker.

Class weights 1:5:5 put one Kafka user, five API users and five subscribers on each worker
(with the ci overlay's 33 users over 3 workers: Locust hands out 11 per worker in weight
order); the rate splits between the paths by --rate-split, not by these weights. Subscribers
subscribe to every topic of the run (or INGESTLOAD_WS_TOPICS, INGESTLOAD_WS_FILTER).
"""

from ingestload.users import IngestApiUser, KafkaProducerUser, WebSocketSubscriberUser


class Controllers(KafkaProducerUser):
    """Controllers that produce to Kafka themselves (seed 000)."""

    weight = 1


class Gateways(IngestApiUser):
    """Controllers behind the HTTP ingest API (seed 001)."""

    weight = 5


class LiveViews(WebSocketSubscriberUser):
    """Browsers watching the topics through the fan-out gateway (seed 003)."""

    weight = 5
