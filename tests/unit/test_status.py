"""Status line arithmetic."""

from ingestload.status import StatusLine, add_counters, format_summary


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
