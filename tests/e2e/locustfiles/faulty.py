"""The Kafka locustfile with faults from $INGESTLOAD_TEST_FAULTS (JSON: lose/duplicate/corrupt/fail seqs)."""

import json
import os

from ingestload.users import KafkaProducerUser  # isort: skip
from ingestload.testing import inject_faults

inject_faults(
    **{kind: set(seqs) for kind, seqs in json.loads(os.environ.get("INGESTLOAD_TEST_FAULTS", "{}")).items()}
)


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, with injected faults."""
