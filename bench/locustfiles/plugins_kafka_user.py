"""The anchor: locust-plugins' KafkaUser (one producer per user, a blocking poll() after each send)."""

import os

from locust import task
from locust_plugins.users.kafka import KafkaUser

TOPIC = os.environ["BENCH_TOPIC"]
PAYLOAD = bytes.fromhex(os.environ["BENCH_PAYLOAD_HEX"])


class PluginsKafkaUser(KafkaUser):
    bootstrap_servers = os.environ["BENCH_BOOTSTRAP"]

    @task
    def send(self) -> None:
        self.client.send(TOPIC, PAYLOAD)
