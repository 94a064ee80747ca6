"""locustfiles/kafka.py plus one more ``request`` listener, for bench/kafka_produce.py.

With a listener besides Locust's own, KafkaProducerUser calls it once for every
acknowledged message (Locust's own stats are still filled in bulk): this measures that
path. The listener only counts, as a cheap exporter would.
"""

from locust import events

from ingestload.users import KafkaProducerUser

seen = 0


@events.request.add_listener
def count(**_: object) -> None:
    global seen
    seen += 1


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, mixed as its percentage table says."""
