"""One producer and live views for the fan-out e2e tests; $INGESTLOAD_TEST_VIEWS (JSON) adds views
that a test singles out: {"victim": 1} a subscriber labelled "victim" (a gateway of the test's own
skips pushes to it), {"slow": 1} one that reads slowly through a small socket buffer. Every other
user is a plain view labelled "view"."""

import json
import os

from ingestload.users import KafkaProducerUser, WebSocketSubscriberUser  # isort: skip

VIEWS = json.loads(os.environ.get("INGESTLOAD_TEST_VIEWS", "{}"))


class Controllers(KafkaProducerUser):
    """Every controller type of the catalogue, straight to Kafka."""

    fixed_count = 1


class Views(WebSocketSubscriberUser):
    """A plain live view."""

    label = "view"


if VIEWS.get("victim"):

    class Victim(WebSocketSubscriberUser):
        """The view a faulty gateway skips pushes to."""

        fixed_count = int(VIEWS["victim"])
        label = "victim"


if VIEWS.get("slow"):

    class SlowView(WebSocketSubscriberUser):
        """A view that reads a few KB every 0.3 s: the gateway's slow-subscriber policy acts on it."""

        fixed_count = int(VIEWS["slow"])
        label = "slow"
        read_pause = 0.3
        receive_buffer = 4096
