"""The pacer's open-model schedule, with an injected clock (no sleeping)."""

import pytest

from ingestload.pacer import Pacer


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


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
