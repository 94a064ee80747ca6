"""The rate guard: when a shortfall lasts longer than the window, and when it does not."""

from ingestload.rate.guard import RateGuard
from ingestload.verdicts import ExitCode


def feed(guard: RateGuard, points):
    """Feed (t, intended, offered) points; return the shortfalls reported."""
    return [s for s in (guard.update(t, i, o) for t, i, o in points) if s is not None]


def test_a_sustained_shortfall_trips_once_after_the_window():
    """Sending half the target for 20 s trips the guard once, after more than 10 s."""
    guard = RateGuard(0.95, 10)
    shortfalls = feed(guard, [(t, 1000 * t, 500 * t) for t in range(21)])
    assert len(shortfalls) == 1
    s = shortfalls[0]
    assert (s.start, s.end) == (0, 11)
    assert s.offered / s.target == 0.5
    assert guard.tripped == s
    assert "for 11s" in s.describe()
    assert ExitCode.RATE_SHORTFALL == 5


def test_a_short_stall_that_is_caught_up_does_not_trip():
    """A 5 s stall followed by catch-up stays within a 10 s window: no failure."""
    guard = RateGuard(0.95, 10)
    points, offered = [], 0
    for t in range(30):
        if not 10 <= t < 15:
            offered = 1000 * t
        points.append((t, 1000 * t, offered))
    assert feed(guard, points) == []
    assert guard.tripped is None


def test_slightly_below_target_but_above_the_ratio_is_fine():
    """Sending 96% of the target with a 95% ratio never trips."""
    guard = RateGuard(0.95, 5)
    assert feed(guard, [(t, 1000 * t, 960 * t) for t in range(60)]) == []


def test_intervals_without_news_neither_trip_nor_reset():
    """Updates that bring nothing due (no new worker report, target 0) are skipped, not judged."""
    guard = RateGuard(0.95, 10)
    points = []
    for t in range(30):
        reported = t - t % 3  # a worker report every 3 s
        points.append((t, 1000 * reported, 100 * reported))
    shortfalls = feed(guard, points)
    assert len(shortfalls) == 1
    assert shortfalls[0].end - shortfalls[0].start > 10
