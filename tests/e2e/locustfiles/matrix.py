"""The Kafka path with the anomaly plan of $INGESTLOAD_TEST_PLAN (JSON, seqs relative to "first"):
producers start at seq "first" and lose / duplicate / corrupt / misroute those messages, or send late
copies of them after the drain. What was injected goes to $INGESTLOAD_TEST_TRUTH_DIR."""

import json
import os

from ingestload.users import KafkaProducerUser  # isort: skip
from ingestload.testing import inject_faults, start_seqs_at

PLAN = json.loads(os.environ["INGESTLOAD_TEST_PLAN"])
FIRST = int(PLAN["first"])
KINDS = ("lose", "duplicate", "corrupt", "misroute", "late_duplicate", "late_corrupt", "phantom")

start_seqs_at(FIRST)
inject_faults(
    **{kind: {FIRST + i for i in PLAN.get(kind, [])} for kind in KINDS}, misroute_to=PLAN.get("misroute_to")
)


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, with the plan's faults."""
