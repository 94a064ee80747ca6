"""Mock controllers straight to Kafka; a worker started with $INGESTLOAD_TEST_DIE_AT_START set is
SIGKILLed the moment its test starts — connected to the master, before its first stats report and
before any message."""

import os
import signal

from ingestload.users import KafkaProducerUser  # isort: skip
from locust import events
from locust.runners import WorkerRunner


@events.test_start.add_listener
def _die(environment, **_):
    if os.environ.get("INGESTLOAD_TEST_DIE_AT_START") and isinstance(environment.runner, WorkerRunner):
        os.kill(os.getpid(), signal.SIGKILL)


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue."""
