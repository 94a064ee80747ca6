"""The anchors of bench/rate_accuracy.py: Locust's own ways of holding a rate, one message per task.

Each task sends one message through ingestload's shared producer (same envelope, same
client, same broker as the ingestload side), so only the *pacing* differs:

* ``BENCH_PACING=constant_throughput`` — Locust's ``constant_throughput``: each user runs
  its task ``PER_USER`` times a second; the load shape sets the user count to
  ``ceil(rate(t) / PER_USER)`` every second (the Locust idiom for a rate ramp).
* ``BENCH_PACING=constant_total_ips`` — locust-plugins' ``constant_total_ips``: a fixed pool
  of ``BENCH_USERS`` users shares a process-wide iterations-per-second target, re-read from
  the profile at every wait so that it ramps.

``BENCH_PROFILE`` is the profile file (both end when it ends).
"""

import math
import os

from ingestload.users import KafkaProducerUser  # isort: skip  (imports locust first, installs ingestload)

import gevent
from locust import LoadTestShape, User, constant_throughput, task
from locust_plugins.wait_time import constant_total_ips

from ingestload.locust.process import state_of
from ingestload.rate.profile import RateProfile

PROFILE = RateProfile.load(os.environ["BENCH_PROFILE"])
PACING = os.environ["BENCH_PACING"]
PER_USER = float(os.environ.get("BENCH_PER_USER", "100"))
USERS = int(os.environ.get("BENCH_USERS", "50"))


class ProfileClock:
    """Seconds since the shape started (shared by the shape and the wait-time function)."""

    shape: LoadTestShape | None = None

    @classmethod
    def now(cls) -> float:
        return cls.shape.get_run_time() if cls.shape is not None else 0.0


def total_ips_following_the_profile(user):
    # constant_total_ips keeps its state in module globals, so asking it afresh with the
    # current target each time is how it follows a changing rate.
    return constant_total_ips(max(PROFILE.rate_at(ProfileClock.now()), 1.0))(user)


class OneMessagePerTask(User):
    """Sends one message per task; Locust's wait time decides when (no pacer involved)."""

    ingestload_path = KafkaProducerUser.ingestload_path  # so that ingestload creates the producer
    wait_time = (
        total_ips_following_the_profile if PACING == "constant_total_ips" else constant_throughput(PER_USER)
    )

    def __init__(self, environment):
        super().__init__(environment)
        self.client = state_of(environment).client

    @task
    def produce_due(self):
        while not self.client.send(1):  # backpressure: poll and retry, as the pacer's users do
            self.client.poll()
            gevent.sleep(0.001)


class FollowProfile(LoadTestShape):
    def __init__(self):
        super().__init__()
        ProfileClock.shape = self

    def tick(self):
        t = self.get_run_time()
        if t >= PROFILE.duration:
            return None
        if PACING == "constant_total_ips":
            return USERS, USERS
        users = max(1, math.ceil(PROFILE.rate_at(t) / PER_USER))
        return users, 1000
