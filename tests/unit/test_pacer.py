"""The pacer's open-model schedule, with an injected clock (no sleeping)."""

import math

import pytest

from ingestload.rate.lateness import LATE_AFTER
from ingestload.rate.pacer import IDLE_DELAY, Pacer
from ingestload.rate.profile import ConstantRate, RateProfile, Stage
from ingestload.testing import ManualClock as Clock

RAMP = RateProfile([Stage("ramp", 60, 500, 20_000)])


def drain(pacer: Pacer, limit: int = 10**9) -> int:
    return pacer.take(limit)


def test_constant_rate_releases_exactly_rate_times_elapsed():
    """At 2,775 msg/s, exactly floor(2775 * t) messages are due after t seconds."""
    clock = Clock()
    pacer = Pacer(2775, clock=clock)
    assert pacer.take(10**9) == 0  # anchors t0
    total = 0
    for step in range(1, 1001):
        clock.t = 1000.0 + step * 0.0137
        total += drain(pacer)
        assert total == int(2775 * step * 0.0137 + 1e-9)


def test_no_drift_over_a_long_run():
    """After a simulated week in uneven steps the count is still exact."""
    clock = Clock()
    pacer = Pacer(1234.5, clock=clock)
    pacer.take(1)
    total = 0
    seconds = 7 * 24 * 3600
    for i in range(1, 10_001):
        clock.t = 1000.0 + seconds * i / 10_000
        total += drain(pacer)
    assert total == int(1234.5 * seconds)


def test_batches_are_capped_and_the_rest_stays_due():
    """take(limit) never exceeds limit; what was not taken is taken next time."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.t += 5.0
    assert pacer.take(1200) == 1200
    assert pacer.backlog() == 3800
    assert pacer.take(10_000) == 3800


def test_give_back_keeps_messages_due():
    """Messages refused by backpressure are offered again."""
    clock = Clock()
    pacer = Pacer(100, clock=clock)
    pacer.take(1)
    clock.t += 1.0
    assert pacer.take(1000) == 100
    pacer.give_back(40)
    assert pacer.take(1000) == 40


def test_rate_change_keeps_the_integral():
    """Changing the rate re-anchors the schedule without gaining or losing messages."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.t += 2.5
    pacer.set_rate(4000)
    clock.t += 1.5
    assert drain(pacer) == 2500 + 6000


def test_lag_shows_how_late_the_oldest_due_message_is():
    """When the sender falls behind, lag grows with the backlog; it is zero on schedule."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.t += 2.0
    pacer.take(1000)  # 1000 of 2000 due
    assert pacer.lag() == pytest.approx(0.999)
    pacer.take(10_000)
    assert pacer.lag() == 0.0
    assert pacer.max_lag == pytest.approx(1.999)


def test_delay_until_next_message():
    """delay() says how long until the next message is due."""
    clock = Clock()
    pacer = Pacer(10, clock=clock)
    pacer.take(1)
    assert pacer.delay() == pytest.approx(0.1)
    clock.t += 0.25
    assert pacer.take(100) == 2
    assert pacer.delay() == pytest.approx(0.05)


def test_unlimited_pause_and_stop():
    """rate None hands out the limit; rate 0 hands out nothing; stop() ends everything."""
    clock = Clock()
    pacer = Pacer(None, clock=clock)
    assert pacer.take(500) == 500
    pacer.set_rate(0)
    clock.t += 10
    assert pacer.take(500) == 0
    pacer.set_rate(100)
    clock.t += 1
    assert pacer.take(500) == 100  # nothing accumulated during the pause
    pacer.stop()
    clock.t += 1
    assert pacer.take(500) == 0


def test_reset_starts_a_new_schedule():
    """reset() forgets the previous run but keeps the rate."""
    clock = Clock()
    pacer = Pacer(100, clock=clock)
    pacer.take(1)
    clock.t += 1
    pacer.take(1000)
    pacer.stop()
    pacer.reset()
    assert pacer.take(1000) == 0
    assert pacer.rate == 100
    clock.t += 0.5
    assert pacer.take(1000) == 50


def test_follows_a_linear_ramp_exactly():
    """Following a 500 → 20,000 msg/s ramp, the count at every moment is floor(∫ rate), not 1-s steps."""
    clock = Clock()
    pacer = Pacer(0, clock=clock)
    pacer.follow(RAMP, 1.0, curve_time=0.0)
    total, tau = 0, 0.0
    while tau < 61:
        step = 0.0007 + (tau * 7919 % 13) / 1000  # uneven wake-ups, 0.7–13.7 ms
        clock.advance(step)
        tau += step
        total += pacer.take(10**9)
        assert total == math.floor(RAMP.count_until(tau) + 1e-9)
    assert total == RAMP.total == 615_000


def test_a_share_change_keeps_what_was_due():
    """Going from half to a quarter of the profile re-anchors without gaining or losing messages."""
    clock = Clock()
    pacer = Pacer(0, clock=clock)
    pacer.follow(RAMP, 0.5, curve_time=0.0)
    clock.advance(10)
    pacer.follow(RAMP, 0.25)
    clock.advance(20)
    expected = 0.5 * RAMP.count_until(10) + 0.25 * (RAMP.count_until(30) - RAMP.count_until(10))
    assert pacer.take(10**9) == math.floor(expected)


def test_since_makes_a_late_plan_count_from_the_profile_start():
    """A plan that arrives 2 s into the profile with since=0 makes the first 2 s due at once."""
    clock = Clock()
    pacer = Pacer(0, clock=clock)
    pacer.follow(RAMP, 0.5, curve_time=2.0, since=0.0)
    assert pacer.take(10**9) == math.floor(0.5 * RAMP.count_until(2.0))
    joined = Pacer(0, clock=clock)
    joined.follow(RAMP, 0.5, curve_time=2.0)  # a process that joins now owes nothing from before
    assert joined.take(10**9) == 0
    clock.advance(1)
    assert joined.take(10**9) == math.floor(0.5 * (RAMP.count_until(3.0) - RAMP.count_until(2.0)))


def test_remapping_curve_time_keeps_the_integral():
    """Re-anchoring onto a corrected curve time keeps what was due; the schedule then follows the new time."""
    clock = Clock()
    pacer = Pacer(0, clock=clock)
    pacer.follow(RAMP, 1.0, curve_time=0.0)
    clock.advance(10)
    before = pacer.intended(clock())
    pacer.follow(RAMP, 1.0, curve_time=10.5)  # the master says we are 0.5 s further along
    assert pacer.intended(clock()) == pytest.approx(before)
    clock.advance(1)
    assert pacer.intended(clock()) == pytest.approx(before + RAMP.count_until(11.5) - RAMP.count_until(10.5))


def test_nothing_is_due_after_the_profile_ends():
    """At the end of a profile the count stops at its total and delay() says nothing more will come."""
    clock = Clock()
    pacer = Pacer(0, clock=clock)
    pacer.follow(RateProfile([Stage("hold", 2, 100, 100)]), 1.0, curve_time=0.0)
    clock.advance(5)
    assert pacer.take(10**9) == 200
    clock.advance(5)
    assert pacer.take(10**9) == 0
    assert pacer.delay() == IDLE_DELAY


def test_delay_follows_the_ramp():
    """delay() is the time until the next message on the curve, from the inverse of the integral."""
    clock = Clock()
    pacer = Pacer(0, clock=clock)
    pacer.follow(RAMP, 1.0, curve_time=30.0, since=30.0)
    rate = RAMP.rate_at(30.0)
    assert pacer.delay() == pytest.approx(1 / rate, rel=1e-3)


def test_each_batch_records_its_lateness():
    """A batch taken 10 ms after it started falling due is recorded with lateness 0–9 ms, none late."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.advance(0.010)
    assert pacer.take(1000) == 10
    snap = pacer.snapshot()
    assert snap.lateness.total == snap.offered == 10
    assert snap.max_lateness == pytest.approx(0.009)
    assert 0.002 <= snap.lateness.percentile(0.5) <= 0.005
    assert snap.late == 0


def test_late_counts_exactly_the_messages_more_than_100ms_late():
    """After a 0.5 s stall at 1,000 msg/s, the 400 messages due before now − 100 ms count as late."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.advance(0.5)
    assert pacer.take(10**9) == 500
    snap = pacer.snapshot()
    assert snap.late == round((0.5 - LATE_AFTER) * 1000)
    assert snap.max_lateness == pytest.approx(0.499)
    assert snap.lateness.percentile(0.99) > 0.2


def test_given_back_messages_are_not_counted_as_sent():
    """Lateness covers only what was sent; given-back messages are counted when they go out."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.advance(0.1)
    assert pacer.take(1000) == 100
    pacer.give_back(40)
    assert pacer.snapshot().lateness.total == 60
    clock.advance(0.001)
    assert pacer.take(1000) == 41
    snap = pacer.snapshot()
    assert snap.lateness.total == snap.offered == 101


def test_max_lateness_drops_what_is_too_far_behind():
    """With max_lateness 1 s, a 5 s stall drops the 4,000 oldest messages and sends the last second's."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock, max_lateness=1.0)
    pacer.take(1)
    clock.advance(5.0)
    assert pacer.take(10**9) == 1000
    snap = pacer.snapshot()
    assert (snap.intended, snap.offered, snap.dropped) == (5000, 1000, 4000)
    assert snap.max_lateness <= 1.0


def test_without_max_lateness_everything_is_sent_late():
    """By default a stall is caught up: every due message goes out, counted as late."""
    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.advance(5.0)
    assert pacer.take(10**9) == 5000
    assert pacer.snapshot().dropped == 0
    assert pacer.snapshot().late == 4900


def test_stop_freezes_the_target():
    """After stop() the intended count no longer grows, so offered ÷ target stays meaningful."""
    clock = Clock()
    pacer = Pacer(ConstantRate(100).rate, clock=clock)
    pacer.take(1)
    clock.advance(1)
    pacer.take(1000)
    pacer.stop()
    clock.advance(10)
    snap = pacer.snapshot()
    assert (snap.intended, snap.offered, snap.ratio) == (100, 100, 1.0)


def test_a_second_stop_does_not_move_the_end_of_the_schedule():
    """A worker told to stop twice (the drain message, then Locust's stop at quit, seconds later)
    keeps the first stop's target: the run's target must not grow with the time to quit (issue 22)."""
    clock = Clock()
    pacer = Pacer(ConstantRate(100).rate, clock=clock)
    pacer.take(1)
    clock.advance(1)
    pacer.take(1000)
    pacer.stop()
    clock.advance(7)
    pacer.stop()
    clock.advance(1)
    assert pacer.snapshot().intended == 100


def test_giving_back_after_a_yield_returns_this_users_messages():
    """A user that yields between take and give_back (an HTTP request) returns its own batch,
    not the batch another user took meanwhile: lateness covers exactly what was sent."""
    import gevent

    clock = Clock()
    pacer = Pacer(1000, clock=clock)
    pacer.take(1)
    clock.advance(0.5)  # 500 due, the oldest 0.5 s late
    taken = {}

    def api_user():
        taken["a"] = pacer.take(300)  # positions 1–300
        gevent.sleep(0)  # the request is in flight; the other user runs
        pacer.give_back(100)  # 503 for 100 of them: 200 sent, all > 100 ms late

    def other_user():
        taken["b"] = pacer.take(1000)  # positions 301–500: 100 of them > 100 ms late

    gevent.joinall([gevent.spawn(api_user), gevent.spawn(other_user)])
    snap = pacer.snapshot()
    assert (taken["a"], taken["b"]) == (300, 200)
    assert snap.offered == snap.lateness.total == 400
    assert snap.late == 200 + 100
    clock.advance(0.001)
    assert pacer.take(1000) == 101
    assert pacer.snapshot().lateness.total == pacer.snapshot().offered == 501
