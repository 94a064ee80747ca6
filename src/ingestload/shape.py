"""The public names of the load shapes, for locustfiles: the rate profile's (see
:mod:`ingestload.locust.rate_shape`) and the subscribers' (see :mod:`ingestload.locust.subscriber_shape`).

Example::

    from ingestload.shape import RampingRateShape

    class Knee(RampingRateShape):
        profile = "mocks/profiles/knee.yaml"
"""

from ingestload.locust.rate_shape import RampingRateShape, user_capacity
from ingestload.locust.subscriber_shape import SubscriberShape

__all__ = ["RampingRateShape", "SubscriberShape", "user_capacity"]
