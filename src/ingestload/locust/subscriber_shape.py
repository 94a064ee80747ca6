"""SubscriberShape: a Locust load shape that ramps subscribers while the message rate stays paced.

In ingestload the message rate never depends on user counts (pacers send it; producers are a
small fixed pool), so the user count is free to mean what a fan-out test varies: **how many
live views are open**. This shape follows a profile whose values are subscribers — the rate
profile's YAML (``mocks/profiles/``: ramp, hold, step, spike), read as "subscribers" instead of
"msg/s" — and asks Locust for ``producers + subscribers(t)`` users. The producer classes say how
many they are with Locust's ``fixed_count`` (Locust starts those first and gives every other
user to the classes without one: the subscriber classes). The run ends when the profile ends.

Why a profile of its own and not the rate shape: the rate is the product's open-model target
(messages per second) and is divided among workers by plans; subscribers are closed-model
connections that Locust itself spreads over workers. Both move independently, so a test can hold
2,775 msg/s while subscribers ramp 0 → 1,000 to find the gateway's knee, as ``bench/fanout.py``
does — with a verdict per subscriber.

Use it with ``--ws-subscriber-profile PATH`` (installed for you), or ship it in a locustfile::

    from ingestload.shape import SubscriberShape
    from ingestload.users import KafkaProducerUser, WebSocketSubscriberUser

    class Controllers(KafkaProducerUser):
        fixed_count = 1

    class Views(WebSocketSubscriberUser):
        pass

    class Ramp(SubscriberShape):
        profile = "mocks/profiles/subscribers-ramp.yaml"
        spawn_rate = 50

A message rate profile (``--rate-profile``) and a subscriber profile cannot both drive one run.
"""

from __future__ import annotations

import math
from typing import Any

from locust import LoadTestShape

from ingestload.errors import ConfigError
from ingestload.rate.profile import RateProfile


def _is_subscriber(user_class: Any) -> bool:
    return getattr(user_class, "ingestload_role", None) == "subscriber"


class SubscriberShape(LoadTestShape):
    """``producers + subscribers(t)`` users; ends when the subscriber profile ends."""

    abstract = True
    profile: str | None = None
    """Subscriber profile file (``--ws-subscriber-profile`` wins when given)."""
    spawn_rate: float = 50.0
    """Subscribers started (or stopped) per second while the count changes."""
    curve: RateProfile | None = None
    """The loaded profile (set by :func:`install_subscriber_shape` or on first use)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Locust's __init__ is not annotated

    def producers(self) -> int:
        """Users of the producer classes: the sum of their ``fixed_count``."""
        classes = self.runner.user_classes if self.runner is not None else []
        return sum(int(getattr(c, "fixed_count", 0) or 0) for c in classes if not _is_subscriber(c))

    def tick(self) -> tuple[int, float] | None:
        if self.curve is None:
            if not self.profile:
                raise ConfigError(
                    f"{type(self).__name__} needs a subscriber profile: pass --ws-subscriber-profile PATH "
                    "or set profile = 'PATH' on the class"
                )
            self.curve = RateProfile.load(self.profile)
        t = self.get_run_time()  # type: ignore[no-untyped-call]
        if t >= self.curve.duration:
            return None
        return self.producers() + subscribers_at(self.curve, t), float(self.spawn_rate)


def subscribers_at(curve: RateProfile, t: float) -> int:
    """Subscribers the profile asks for at ``t`` (rounded to the nearest whole one).

    Example::

        >>> from ingestload.rate.profile import RateProfile
        >>> ramp = RateProfile.from_data({"stages": [{"kind": "ramp", "from": 0, "to": 100, "duration": 10}]})
        >>> subscribers_at(ramp, 2.5), subscribers_at(ramp, 9.99)
        (25, 100)
    """
    return math.floor(curve.rate_at(t) + 0.5)


def check_classes(user_classes: Any) -> None:
    """The shape's rules for the locustfile's classes; a :class:`ConfigError` says how to fix."""
    subscribers = [c for c in user_classes if _is_subscriber(c)]
    if not subscribers:
        raise ConfigError(
            "--ws-subscriber-profile: the locustfile has no WebSocketSubscriberUser class to ramp"
        )
    for c in subscribers:
        if getattr(c, "fixed_count", 0):
            raise ConfigError(
                f"--ws-subscriber-profile: {c.__name__} has fixed_count = {c.fixed_count}; subscriber "
                "classes take the users the profile asks for, so remove it"
            )
    for c in user_classes:
        if not _is_subscriber(c) and not getattr(c, "fixed_count", 0):
            raise ConfigError(
                f"--ws-subscriber-profile: give {c.__name__} a fixed_count (e.g. one_per_process = True "
                "or fixed_count = 1): with subscribers ramping, producers are a fixed pool"
            )


def install_subscriber_shape(environment: Any, runner: Any, path: str) -> SubscriberShape:
    """Master/local ``init``: load the profile, check the classes and install the shape (or fill in
    the locustfile's own :class:`SubscriberShape`). Raises :class:`ConfigError` on bad input."""
    curve = RateProfile.load(path)
    check_classes(environment.user_classes)
    shape = environment.shape_class
    if shape is not None and not isinstance(shape, SubscriberShape):
        raise ConfigError(
            f"--ws-subscriber-profile: the locustfile already has a load shape ({type(shape).__name__}); "
            "remove it or drop --ws-subscriber-profile"
        )
    if shape is None:
        shape = SubscriberShape()
        shape.runner = runner
        environment.shape_class = shape
    shape.curve = curve
    return shape
