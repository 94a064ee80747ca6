"""RampingRateShape: a fixed pool while the profile runs, None when it has ended."""

import pytest

from ingestload.shape import RampingRateShape, user_capacity


class Control:
    def __init__(self) -> None:
        self.finished = False
        self.pool = 4

    def profile_finished(self) -> bool:
        return self.finished

    def pool_size(self) -> int:
        return self.pool


def test_tick_keeps_the_pool_and_ends_with_the_profile():
    """tick() returns the same (users, spawn rate) every second, then None once the profile ended."""
    shape = RampingRateShape()
    shape.control = control = Control()
    assert shape.tick() == shape.tick() == (4, 4.0)
    control.pool = 6  # a worker joined
    assert shape.tick() == (6, 6.0)
    control.finished = True
    assert shape.tick() is None


def test_a_shape_without_ingestload_says_how_to_fix_it():
    """A shape that was never attached explains what is missing."""
    with pytest.raises(RuntimeError, match=r"import ingestload\.users"):
        RampingRateShape().tick()


def test_user_capacity_is_the_smallest_declared():
    """The pool is sized for the weakest user class; classes that declare nothing do not limit it."""

    class A:
        ingestload_user_capacity = 500.0

    class B:
        pass

    assert user_capacity([A, B]) == 500.0
    assert user_capacity([B]) == float("inf")


def test_user_capacity_asks_the_class_given_the_settings():
    """A class whose capacity depends on settings (IngestApiUser: per-request batch) is asked for it."""

    class PerRequest:
        ingestload_user_capacity = 1e9  # ignored when settings are given

        @classmethod
        def ingestload_capacity(cls, settings):
            return 50.0 * settings.api_batch_size

    class Kafka:
        ingestload_user_capacity = 100_000.0

    class S:
        api_batch_size = 20

    assert user_capacity([PerRequest, Kafka], S()) == 1_000.0
    assert user_capacity([PerRequest, Kafka]) == 100_000.0


def test_locust_does_not_pick_the_base_class_up_by_itself():
    """The base class is abstract, so importing it into a locustfile does not make every run shaped."""
    assert RampingRateShape.abstract is True

    class Knee(RampingRateShape):
        profile = "mocks/profiles/knee.yaml"

    assert Knee.abstract is False


def test_api_user_capacity_counts_the_split_by_message_type():
    """IngestApiUser's per-user msg/s: 50 requests/s × messages per request, where a batch path
    with {msgType} splits each take by type (the built-in mix: ~5.9 of 20), and one without does not."""
    from ingestload.messages.catalogue import Catalogue
    from ingestload.rate.plans import messages_per_request
    from ingestload.settings import Settings, namespace
    from ingestload.users import IngestApiUser

    per_type = Settings.from_options(namespace(api_batch_size=20), environ={})
    mixed = Settings.from_options(namespace(api_batch_size=20, api_batch_path="/v1/batch"), environ={})
    assert (per_type.http.batch_per_type, mixed.http.batch_per_type) == (True, False)
    split = messages_per_request(20, Catalogue.load().type_shares())
    assert IngestApiUser.ingestload_capacity(per_type) == pytest.approx(50.0 * split)
    assert IngestApiUser.ingestload_capacity(mixed) == 1_000.0
    assert split < 7
