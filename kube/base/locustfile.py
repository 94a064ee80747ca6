"""The whole pipeline from many pods: controllers that produce to Kafka and controllers behind the
ingest API, spread over every worker.

Class weights 1:10 put one Kafka user (which shares its process's producer) and ten API users
(the HTTP concurrency) on each worker; the rate splits between the paths by --rate-split
(INGESTLOAD_RATE_SPLIT), not by these weights. Replace this file with your own through the
``ingestload-locustfile`` ConfigMap generator.
"""

from ingestload.users import IngestApiUser, KafkaProducerUser


class Controllers(KafkaProducerUser):
    """Controllers that produce to Kafka themselves (seed 000)."""

    weight = 1


class Gateways(IngestApiUser):
    """Controllers behind the HTTP ingest API (seed 001)."""

    weight = 10
