"""Rate plans: splits, worker shares, pool sizes, and master/worker plans with clocks that differ."""

import math

import pytest

from ingestload.messages.catalogue import Catalogue
from ingestload.rate.plans import (
    API_USER_REQUESTS_PER_S,
    END_GRACE,
    RESYNC_AFTER,
    PacerSet,
    RateCoordinator,
    RateFollower,
    RatePlan,
    api_users_for,
    messages_per_request,
    path_split,
    pool_size,
    worker_fractions,
)
from ingestload.rate.profile import ConstantRate, RateProfile, Stage
from ingestload.testing import ManualClock

RAMP = RateProfile([Stage("ramp", 60, 500, 20_000)])
PATHS = {"Controllers": "kafka"}


def test_path_split_by_option_or_by_user_class_weights():
    """--rate-split weights are normalised; without them each path gets its classes' summed weights."""
    assert path_split({"kafka": 7, "api": 3}, PATHS, {}) == {"kafka": 0.7, "api": 0.3}
    assert path_split(None, {"K": "kafka", "A": "api", "B": "api"}, {"K": 2, "A": 1, "B": 1}) == {
        "kafka": 0.5,
        "api": 0.5,
    }
    assert path_split(None, PATHS, {}) == {"kafka": 1.0}


def test_worker_fractions_follow_users_of_each_path():
    """A worker's fraction of a path is its users of that path over everyone's; none yet → equal."""
    paths = {"K": "kafka", "A": "api"}
    fractions = worker_fractions({"w1": {"K": 3, "A": 1}, "w2": {"K": 1, "A": 0}}, paths)
    assert fractions == {"w1": {"api": 1.0, "kafka": 0.75}, "w2": {"api": 0.0, "kafka": 0.25}}
    assert worker_fractions({"w1": {}, "w2": {}}, paths)["w2"] == {"api": 0.5, "kafka": 0.5}


def test_pool_size_is_fixed_even_and_large_enough():
    """The pool covers the peak at the users' capacity, with ≥ 1 user per class on each worker."""
    assert pool_size(20_000, 100_000, workers=1, classes=1) == 1
    assert pool_size(20_000, 100_000, workers=2, classes=2) == 4
    assert pool_size(450_000, 100_000, workers=2, classes=1) == 6
    assert pool_size(1_000, math.inf, workers=3, classes=1) == 3


def test_api_users_cover_the_rate_at_one_request_in_flight_each():
    """HTTP concurrency for a rate: rate ÷ (requests/s per user × batch), at least the minimum."""
    assert API_USER_REQUESTS_PER_S == 50.0
    assert api_users_for(2775, batch_size=1, minimum=10) == 56
    assert api_users_for(2750, batch_size=1) == 55  # exact multiples need no extra user
    assert api_users_for(10_000, batch_size=20, minimum=10) == 10
    assert api_users_for(100, batch_size=1, minimum=10) == 10
    assert api_users_for(0, batch_size=1, minimum=3) == 3  # unlimited: the minimum


def test_takes_split_by_message_type_need_more_users():
    """One request per type present in a take: the built-in mix makes a take of 20 into ~3.4
    requests (~5.9 messages each), so 10,000 msg/s need ~34 users, not 10."""
    shares = Catalogue.load().type_shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    expected_types = sum(1 - (1 - p) ** 20 for p in shares.values())
    assert messages_per_request(20, shares) == pytest.approx(20 / expected_types)
    assert 3 < expected_types < 4
    assert messages_per_request(1, shares) == pytest.approx(1.0)
    assert messages_per_request(20) == 20.0  # one request per take (no {msgType} in the path)
    assert api_users_for(10_000, batch_size=20, minimum=10, type_shares=shares) == math.ceil(
        10_000 / (50 * messages_per_request(20, shares))
    )
    assert api_users_for(10_000, batch_size=20, minimum=10, type_shares={"only": 1.0}) == 10


def test_plans_travel_as_plain_data():
    """A plan survives to_wire/from_wire with its curve, scales, curve time and since."""
    plan = RatePlan("00ff", RAMP, {"kafka": 0.5}, 12.5, 0.0)
    back = RatePlan.from_wire(plan.to_wire())
    assert back.same_target(plan)
    assert (back.run_id, back.curve_time, back.since) == ("00ff", 12.5, 0.0)
    assert RatePlan.from_wire(RatePlan("x", None, {}).to_wire()).curve is None


def test_constant_rate_plans_are_sent_only_when_shares_change():
    """With --rate the master sends a worker its plan once, and again only when its share changes."""
    coordinator = RateCoordinator(ConstantRate(4000), {"kafka": 1.0})
    coordinator.begin("run")
    first = coordinator.plans({"a": {"Controllers": 1}, "b": {"Controllers": 1}}, PATHS)
    assert {w: p.scales for w, p in first.items()} == {"a": {"kafka": 0.5}, "b": {"kafka": 0.5}}
    assert first["a"].curve_time is None
    assert coordinator.plans({"a": {"Controllers": 1}, "b": {"Controllers": 1}}, PATHS) == {}
    changed = coordinator.plans({"a": {"Controllers": 3}, "b": {"Controllers": 1}}, PATHS)
    assert {w: p.scales["kafka"] for w, p in changed.items()} == {"a": 0.75, "b": 0.25}


def test_profile_plans_wait_for_the_clock_then_carry_curve_time():
    """A profile's plans start when the clock starts; workers there from the start count from 0."""
    clock = ManualClock()
    coordinator = RateCoordinator(RAMP, {"kafka": 1.0}, clock=clock)
    coordinator.begin("run")
    assert coordinator.plans({"a": {}}, PATHS) == {}
    assert not coordinator.finished()
    assert coordinator.start_clock()
    assert not coordinator.start_clock()
    clock.advance(0.002)
    first = coordinator.plans({"a": {"Controllers": 1}}, PATHS)
    assert (first["a"].curve_time, first["a"].since) == (pytest.approx(0.002), 0.0)
    clock.advance(10)
    again = coordinator.plans({"a": {"Controllers": 1}, "b": {"Controllers": 1}}, PATHS)
    assert set(again) == {"a", "b"}  # every worker, every time: keeps curve time current
    assert again["a"].since == 0.0
    assert again["b"].since == pytest.approx(10.002)  # b joined now
    clock.advance(50 + END_GRACE)
    assert coordinator.finished()


def test_follower_keeps_its_first_mapping_unless_it_drifts_too_far():
    """Small transit jitter never re-anchors the curve time; a jump beyond RESYNC_AFTER does."""
    clock = ManualClock(50.0)
    pacers = PacerSet(["kafka"], rate=0, clock=clock)
    follower = RateFollower()
    follower.apply(RatePlan("run", RAMP, {"kafka": 1.0}, 0.0, 0.0), pacers, clock())
    pacer = pacers.for_path("kafka")
    clock.advance(10)
    follower.apply(RatePlan("run", RAMP, {"kafka": 1.0}, 10.02, 0.0), pacers, clock())  # 20 ms jitter
    assert pacer.intended(clock()) == pytest.approx(RAMP.count_until(10.0))
    follower.apply(RatePlan("run", RAMP, {"kafka": 1.0}, 10.0 + 2 * RESYNC_AFTER, 0.0), pacers, clock())
    assert follower.resyncs == 1
    clock.advance(1)
    assert pacer.intended(clock()) == pytest.approx(
        RAMP.count_until(10.0) + RAMP.count_until(11.5) - RAMP.count_until(10.5)
    )


def test_a_new_run_resets_the_pacers_and_they_wait_paused():
    """A plan of another run resets counters; after reset a worker's pacers send nothing until told."""
    clock = ManualClock()
    pacers = PacerSet(["kafka"], rate=0, clock=clock)
    follower = RateFollower()
    follower.apply(RatePlan("one", ConstantRate(100), {"kafka": 1.0}), pacers, clock())
    pacer = pacers.for_path("kafka")
    pacer.take(1)
    clock.advance(1)
    assert pacer.take(1000) == 100
    pacers.reset()
    clock.advance(1)
    assert pacer.take(1000) == 0
    follower.apply(RatePlan("two", ConstantRate(50), {"kafka": 1.0}), pacers, clock())
    assert pacer.offered() == 0
    pacer.take(1)
    clock.advance(1)
    assert pacer.take(1000) == 50


def test_a_path_created_later_follows_the_current_plan():
    """A pacer asked for after the plan arrived (a user spawned later) follows the same plan."""
    clock = ManualClock()
    pacers = PacerSet(rate=0, clock=clock)
    pacers.follow(RAMP, {"kafka": 0.25, "api": 0.75}, curve_time=0.0, since=0.0)
    clock.advance(1)
    api = pacers.for_path("api")
    clock.advance(1)
    assert api.take(10**9) == math.floor(0.75 * (RAMP.count_until(2) - RAMP.count_until(1)))


def test_workers_with_different_clocks_together_follow_the_profile():
    """Three simulated workers (clocks off by hours, plans 1–3 ms in transit, one joining and one
    leaving mid-ramp) together send the profile's integral within 100 of 615,000 messages, and
    every 5-second window within 0.1%."""
    real = 0.0
    offsets = {"w1": 3600.0, "w2": -7.25, "w3": 12_345.0}
    clocks = {w: ManualClock(real + o) for w, o in offsets.items()}
    master = ManualClock(100.0)
    coordinator = RateCoordinator(RAMP, {"kafka": 1.0}, clock=master)
    coordinator.begin("run")
    coordinator.start_clock()
    pacers = {w: PacerSet(["kafka"], rate=0, clock=c) for w, c in clocks.items()}
    followers = {w: RateFollower() for w in clocks}
    in_flight: list[tuple[float, str, RatePlan]] = []
    sent_per_window = [0] * 12
    members = {"w1", "w2"}
    step, next_tick = 0.001, 0.0
    for i in range(int(61.5 / step)):
        real = i * step
        master.t = 100.0 + real
        for w, c in clocks.items():
            c.t = real + offsets[w]
        if real >= next_tick:
            if 20.0 <= real < 20.0 + step:
                members.add("w3")
            if 40.0 <= real < 40.0 + step:
                members.discard("w2")
                pacers["w2"].stop()
            users = {w: {"Controllers": 1} for w in sorted(members)}
            for w, plan in coordinator.plans(users, PATHS).items():
                in_flight.append((real + 0.001 + 0.002 * (i % 2), w, plan))
            next_tick += 1.0
        for arrival, w, plan in [m for m in in_flight if m[0] <= real]:
            followers[w].apply(plan, pacers[w], clocks[w]())
            in_flight.remove((arrival, w, plan))
        for w in clocks:
            n = pacers[w].for_path("kafka").take(10**9)
            if n and real < 60:
                sent_per_window[int(real // 5)] += n
    total = sum(p.for_path("kafka").offered() for p in pacers.values())
    assert abs(total - RAMP.total) <= 100, total
    for k, sent in enumerate(sent_per_window):
        expected = RAMP.count_until(5 * k + 5) - RAMP.count_until(5 * k)
        assert abs(sent - expected) <= 0.001 * expected, (k, sent, expected)
