"""Mock controllers producing straight to Kafka (seed 000), paced at --rate msg/s.

    locust -f locustfiles/kafka.py --headless --rate 2775 -t 1m --kafka-bootstrap 127.0.0.1:9092

Options: `ingestload run --help`, docs/options.md (also as LOCUST_<NAME> variables).
"""

from ingestload.users import KafkaProducerUser


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, mixed as its percentage table says."""
