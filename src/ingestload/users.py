"""Locust users that generate ingest load. Import this module first in a locustfile.

Example locustfile::

    from ingestload.users import KafkaProducerUser

    class Devices(KafkaProducerUser):
        pass

Run it with ``locust -f that_file.py --headless --rate 2775 -t 1m``.
"""

from __future__ import annotations

# Locust must be imported before anything that could import ssl/sockets, so that gevent
# patches everything.
from locust import User, constant, task  # isort: skip

import gevent

from ingestload.plugin import install, state_of

install()

#: Shortest sleep when nothing is due: bounds wake-ups at ~1,000/s per user.
MIN_SLEEP = 0.001
#: Longest sleep, so that rate changes and stops are noticed promptly.
MAX_SLEEP = 0.05


class KafkaProducerUser(User):
    """Produces the catalogue's mock controller messages to Kafka at the process's paced rate.

    All users of a process share one producer and one schedule: each wake-up sends every
    message that is due (at most ``--batch-max``), so the rate does not depend on the
    number of users, and a user never blocks the others. Acknowledgements appear in
    Locust's statistics as request type ``KAFKA``, one row per topic.
    """

    abstract = True
    ingestload_path = "kafka"
    """The path this user's messages take; its pacer is ``state.pacer_for(ingestload_path)``."""
    ingestload_user_capacity = 100_000.0
    """Msg/s one user sustains (sizes a profile's fixed user pool; all users of a process
    share one producer and one schedule, so one user per process is usually enough)."""
    wait_time = constant(0)

    def __init__(self, environment: object) -> None:
        super().__init__(environment)
        state = state_of(environment)
        if state.client is None:
            raise RuntimeError(
                "the Kafka producer was not created; see the ingestload error logged at test start"
            )
        self.client = state.client
        self.pacer = state.pacer_for(self.ingestload_path)
        self.batch_max = state.settings.batch_max

    @task
    def produce_due(self) -> None:
        """Send what is due now, or sleep until something is."""
        count = self.pacer.take(self.batch_max)
        if not count:
            gevent.sleep(min(max(self.pacer.delay(), MIN_SLEEP), MAX_SLEEP))
            return
        sent = self.client.send(count)
        if sent < count:
            # Backpressure (or stopping): the rest stays due; let librdkafka catch up.
            self.pacer.give_back(count - sent)
            gevent.sleep(MIN_SLEEP)
        self.client.poll()
