"""RampingRateShape: a Locust load shape that follows a rate profile with a fixed user pool.

Locust shapes control *user counts*, and every change re-enters the runner's blocking
``start()``. Rates here are paced by the pacers, not by users, so the shape keeps one
fixed pool — sized from the profile's peak and the users' capacity, the same number on
every worker — and changes it only when workers join or leave. The target itself goes
to every process as a plan (``scale × profile``, see :mod:`ingestload.rate.plans`), sent by
the master every second; each worker's pacer integrates the profile itself, so ramps
are exact. The run ends when the profile ends.

You rarely name it: ``--rate-profile PATH`` installs it on the master (or the local
process). To ship a profile with a locustfile, subclass it::

    from ingestload.shape import RampingRateShape
    from ingestload.users import KafkaProducerUser

    class Controllers(KafkaProducerUser):
        pass

    class Knee(RampingRateShape):
        profile = "mocks/profiles/knee.yaml"     # --rate-profile still wins when given

Pool size: a user class says how many msg/s one of its users sustains
(``ingestload_capacity(settings)`` or ``ingestload_user_capacity``; ``KafkaProducerUser``:
100,000, as all users of a process share one producer and one schedule; ``IngestApiUser``:
50 requests/s × ``--api-batch-size``, one request in flight per user). Each worker gets
``max(number of user classes, ceil(peak ÷ capacity ÷ workers))`` users.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from locust import LoadTestShape


class PoolControl(Protocol):
    """What the shape needs from the process's rate machinery."""

    def profile_finished(self) -> bool:
        """True once the profile has ended."""
        ...

    def pool_size(self) -> int:
        """Users for the fixed pool, given the workers connected now."""
        ...


class RampingRateShape(LoadTestShape):
    """Fixed user pool for the whole profile; ends the run when the profile ends."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Locust's __init__ is not annotated

    abstract = True
    profile: str | None = None
    """Profile file used when ``--rate-profile`` is not given."""
    control: PoolControl | None = None
    """Set by ingestload at ``init`` (the process's rate machinery)."""

    def tick(self) -> tuple[int, float] | None:
        control = self.control
        if control is None:
            raise RuntimeError(
                "RampingRateShape is not attached to ingestload; import ingestload.users in the locustfile"
            )
        if control.profile_finished():
            return None
        users = control.pool_size()
        return users, float(users)


def user_capacity(user_classes: Any, settings: Any = None) -> float:
    """The smallest capacity of the classes (``inf`` when none says): a class's
    ``ingestload_capacity(settings)``, else its ``ingestload_user_capacity``."""

    def capacity(cls: Any) -> float:
        method = getattr(cls, "ingestload_capacity", None)
        if method is not None and settings is not None:
            return float(method(settings))
        return float(getattr(cls, "ingestload_user_capacity", math.inf))

    return min((capacity(c) for c in user_classes), default=math.inf)
