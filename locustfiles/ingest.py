"""The whole pipeline: some controllers produce straight to Kafka, others go through the ingest API.

    locust -f locustfiles/ingest.py --headless --host http://127.0.0.1:8080 --rate 2775 -u 11 -t 1m

The target is split evenly between the paths (equal weights; change it with
--rate-split kafka=7,api=3). One Kafka user per process is plenty (it shares the process's
producer), and each worker needs one to send its share of the Kafka path; the other users post
to the API and set its HTTP concurrency. One verdict covers both paths.
`ingestload run` (the default locustfile) starts the broker and the reference API for you.
"""

from ingestload.users import IngestApiUser, KafkaProducerUser


class Controllers(KafkaProducerUser):
    """Controllers that produce to Kafka themselves (seed 000)."""

    weight = 1
    one_per_process = True  # a Kafka user on every worker: each sends its share of the Kafka path


class Gateways(IngestApiUser):
    """Controllers behind the HTTP ingest API (seed 001); its users set the HTTP concurrency."""

    weight = 1
