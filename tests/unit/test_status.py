"""Status line arithmetic."""

from ingestload.lateness import LatenessHistogram, PaceSnapshot
from ingestload.status import StatusLine, add_counters, format_pacing, format_summary


def test_rates_come_from_the_change_in_totals():
    """sent/acked rates are the difference of cumulative totals over the elapsed time."""
    line = StatusLine("0123456789abcdef", 2775.0)
    line.line({"sent": 0, "acked": 0}, 0.0, now=100.0)
    text = line.line({"sent": 13_875, "acked": 13_870, "in_flight": 5}, 0.003, now=105.0)
    assert "target 2,775/s" in text
    assert "sent 2,775/s" in text
    assert "acked 2,774/s" in text
    assert "total 13,870" in text
    assert "lag max 3 ms" in text


def test_unlimited_target_and_sums():
    """An unlimited run says so; counters of several workers add up."""
    assert "target unlimited" in StatusLine("0" * 16, None).line({}, 0.0, now=1.0)
    total = add_counters([{"sent": 1, "acked": 1}, {"sent": 2, "failed": 3}])
    assert (total["sent"], total["failed"], total["acked"]) == (3, 3, 1)
    assert format_summary(total) == "sent=3 acked=1 failed=3 undelivered=0 backpressure=0"


def pace(intended, offered, late=0, dropped=0, spread=(0.0, 0.001)):
    h = LatenessHistogram()
    h.add_range(spread[0], spread[1], offered)
    return PaceSnapshot(intended, offered, late, dropped, spread[1], h)


def test_with_pacing_the_target_follows_the_schedule_and_lateness_is_shown():
    """With pacing numbers, target is the schedule's count over the interval (a ramp moves it),
    and lateness percentiles, late and dropped replace the bare lag."""
    line = StatusLine("0123456789abcdef", 1000.0)
    line.line({"sent": 0, "acked": 0}, 0.0, now=100.0, pace=pace(0, 0))
    text = line.line(
        {"sent": 9_990, "acked": 9_990}, 0.004, now=105.0, pace=pace(10_000, 9_990, late=7, dropped=3)
    )
    assert "target 2,000/s" in text
    assert "sent 1,998/s" in text
    assert "lateness p50 0.5 ms p99 " in text
    assert "max 4 ms" in text
    assert "| late 7 | dropped 3" in text
    assert "lag max" not in text


def test_final_pacing_account():
    """The stop line gives target, offered and their ratio, lateness, late and dropped — per path too."""
    kafka, api = pace(7_000, 7_000), pace(3_000, 2_700, late=250, dropped=50, spread=(0.0, 0.3))
    total = PaceSnapshot(10_000, 9_700, 250, 50, 0.3, kafka.lateness + api.lateness)
    text = format_pacing(total, {"kafka": kafka, "api": api})
    assert text.startswith("target 10,000 offered 9,700 (97.00%) | lateness p50 ")
    assert "late (>100 ms) 250 | dropped 50 | still due at stop 250" in text
    assert "|| kafka: target 7,000 offered 7,000 (100.00%)" in text
    assert "|| api: target 3,000 offered 2,700 (90.00%)" in text
    assert "||" not in format_pacing(kafka, {"kafka": kafka})
