"""The HTTP path against the test's own ingest API, senders starting at $INGESTLOAD_TEST_FIRST_SEQ."""

import os

from ingestload.users import IngestApiUser  # isort: skip
from ingestload.testing import start_seqs_at

start_seqs_at(int(os.environ["INGESTLOAD_TEST_FIRST_SEQ"]))


class Gateways(IngestApiUser):
    """Controllers behind a third-party ingest API."""

    @classmethod
    def ingestload_capacity(cls, settings):
        """This API is a small threaded server that answers after Kafka did: ~10 msg/s per user
        (one request in flight each), so that a profile sizes enough users."""
        return 10.0
