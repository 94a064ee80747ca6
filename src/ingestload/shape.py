"""The public names of the load shapes, for locustfiles: the rate profile's (see
:mod:`ingestload.rate.shape`) and the subscribers' (see :mod:`ingestload.fanout.shape`).

Example::

    from ingestload.shape import RampingRateShape

    class Knee(RampingRateShape):
        profile = "mocks/profiles/knee.yaml"
"""

from ingestload.fanout.shape import SubscriberShape
from ingestload.rate.shape import RampingRateShape, user_capacity

__all__ = ["RampingRateShape", "SubscriberShape", "user_capacity"]
