"""The Kafka locustfile, with a master that takes a moment to exit after Locust closed its CSV files.

Locust's ``--processes`` master yields to other greenlets while it exits (``kill_workers`` sleeps
and waits for its children): its CSV writer, still running, then writes to closed files. Here
the wait is 1.5 s (more than the writer's 1 s interval), so the race happens every time instead
of now and then.
"""

import atexit
import time

from locust import events

from ingestload.users import KafkaProducerUser


@events.init.add_listener
def _exit_slowly(environment, runner=None, **_):
    from locust.runners import MasterRunner

    if isinstance(runner, MasterRunner):
        atexit.register(time.sleep, 1.5)  # registered after kill_workers: runs before it


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue."""
