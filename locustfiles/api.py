"""Mock controllers posting to an ingest API (seed 001), paced at --rate msg/s, verified on Kafka.

    locust -f locustfiles/api.py --headless --host http://127.0.0.1:8080 --rate 2000 -u 20 -t 1m

HTTP concurrency is the number of users (-u), as `ab -c`. Batches: --api-batch-size 100.
"""

from ingestload.users import IngestApiUser


class Gateways(IngestApiUser):
    """Every controller type of the catalogue, through the ingest API."""
