"""Controllers that produce straight to Kafka, on every worker (no ingest API in front)."""

from ingestload.users import KafkaProducerUser


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, mixed as its percentage table says."""
