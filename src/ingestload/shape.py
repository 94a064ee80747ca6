"""The public name of the rate-profile load shape, for locustfiles (see :mod:`ingestload.rate.shape`).

Example::

    from ingestload.shape import RampingRateShape

    class Knee(RampingRateShape):
        profile = "mocks/profiles/knee.yaml"
"""

from ingestload.rate.shape import RampingRateShape, user_capacity

__all__ = ["RampingRateShape", "user_capacity"]
