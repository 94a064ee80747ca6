"""Status line arithmetic."""

from ingestload.rate.lateness import LatenessHistogram, PaceSnapshot, format_pacing
from ingestload.status import StatusLine, WorkerRates, add_counters, format_summary


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


def test_worker_rates_do_not_alias_with_the_status_interval():
    """Workers report every 3 s, the master prints every 5 s: each line shows the true 10,000/s.

    Deltas of the summed totals over the master's 5 s would alternate (one report in an
    interval, then two): 6,000/s, 12,000/s, 6,000/s… — the bug this replaces.
    """
    rates = WorkerRates()
    line = StatusLine("0123456789abcdef", 10_000.0)
    per_worker = 5_000.0  # two workers, 5,000 msg/s each

    def report(worker: str, at: float) -> None:
        count = per_worker * at
        rates.report(worker, at, {"sent": count, "acked": count - 10, "target": count}, received=at)

    shown = []
    at = {"w1": 0.0, "w2": 1.3}  # out of phase with each other
    for now in range(5, 60, 5):
        for worker in at:
            while at[worker] + 3.0 <= now:
                at[worker] += 3.0
                report(worker, at[worker])
        text = line.line({"sent": 0, "acked": 0}, 0.0, now=float(now), rates=rates.totals(now=float(now)))
        shown.append(text)
    for text in shown[1:]:
        assert "target 10,000/s | sent 10,000/s | acked 10,000/s" in text, text


def test_a_silent_worker_stops_counting_and_a_new_run_forgets_all():
    rates = WorkerRates(stale_after=10.0)
    rates.report("w1", 0.0, {"sent": 0, "acked": 0, "target": 0}, received=0.0)
    rates.report("w1", 3.0, {"sent": 3_000, "acked": 2_700, "target": 3_000}, received=3.0)
    assert rates.totals(now=4.0) == {"sent": 1_000.0, "acked": 900.0, "target": 1_000.0}
    rates.report("w1", 2.0, {"sent": 0, "acked": 0, "target": 0}, received=5.0)  # older: ignored
    assert rates.totals(now=5.0)["sent"] == 1_000.0
    assert rates.totals(now=13.5)["sent"] == 0.0
    rates.clear()
    rates.report("w1", 100.0, {"sent": 5, "acked": 5, "target": 5}, received=100.0)
    assert rates.totals(now=100.0)["sent"] == 0.0  # one report: no rate yet


def test_given_rates_replace_the_totals_arithmetic_but_not_unlimited():
    line = StatusLine("0" * 16, None)
    line.line({"sent": 0}, 0.0, now=0.0)
    text = line.line({"sent": 50}, 0.0, now=5.0, rates={"sent": 7.0, "acked": 6.0, "target": 9.0})
    assert "target unlimited | sent 7/s | acked 6/s" in text
