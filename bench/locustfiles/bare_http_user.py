"""The baselines for bench/api_user.py: bare FastHttpUsers posting mock messages.

No pacing, no envelope of their own, no ledger — bodies cut as IngestApiUser cuts its own
(bench/http_bodies.py), to the same paths. BENCH_BATCH_SIZE sets the messages per take;
BENCH_RENDER=1 renders fresh messages (timestamps stamped now) for every take, as a
hand-written locustfile would, otherwise the user cycles through bodies rendered at start.
"""

import itertools
import os
import sys
import time
from pathlib import Path

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from http_bodies import bodies, cut, factory

BATCH = int(os.environ.get("BENCH_BATCH_SIZE", "1"))
RENDER = os.environ.get("BENCH_RENDER") == "1"
HEADERS = {"Content-Type": "application/json"}
SOURCE = factory()
BODIES = itertools.cycle(bodies(BATCH))


class BareHttpUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def post(self) -> None:
        if RENDER:
            for path, body, _ in cut(SOURCE, BATCH, time.time_ns()):
                self.client.post(path, data=body, headers=HEADERS)
        else:
            path, body, _ = next(BODIES)
            self.client.post(path, data=body, headers=HEADERS)
