"""What the web UI shows, without a browser: live rates from cumulative samples, the chart's
history, the tab's rows, the verdict block, the report block and per-test file names."""

import math

import pytest

from ingestload.rate.lateness import LatenessHistogram
from ingestload.settings import Settings, namespace
from ingestload.webui.live import LiveRates, PathSample, RateHistory
from ingestload.webui.report import MARK_BEGIN, add_to_report, report_block
from ingestload.webui.sections import Section, tab_rows, verdict_section, verification_section


def sample(intended, offered, acked, in_flight=0, late=0, dropped=0, lateness=0.001):
    histogram = LatenessHistogram()
    histogram.add(lateness, offered)
    return PathSample(intended, offered, acked, in_flight, late, dropped, lateness, histogram)


def test_rates_are_exact_over_each_sources_own_span_and_add_up():
    """Two workers reporting on their own clocks: each rate is its change over its span; they add."""
    rates = LiveRates()
    rates.observe("w1", 100.0, {"kafka": sample(0, 0, 0)}, received=0.0)
    rates.observe("w1", 103.0, {"kafka": sample(3000, 2997, 2994, in_flight=3)}, received=3.0)
    rates.observe("w2", 500.0, {"kafka": sample(0, 0, 0)}, received=1.0)
    rates.observe("w2", 502.0, {"kafka": sample(1000, 1000, 1000, in_flight=2)}, received=4.0)
    kafka = rates.current(now=4.0)["kafka"]
    assert (kafka.target, kafka.offered, kafka.acked, kafka.in_flight) == (1500.0, 1499.0, 1498.0, 5)
    assert rates.total(now=4.0) == kafka


def test_a_source_not_heard_from_lately_no_longer_counts():
    """A worker that stopped reporting drops out of the rates after the stale time."""
    rates = LiveRates(stale_after=10.0)
    rates.observe("w1", 0.0, {"kafka": sample(0, 0, 0)}, received=0.0)
    rates.observe("w1", 1.0, {"kafka": sample(100, 100, 100)}, received=1.0)
    assert rates.current(now=5.0)["kafka"].offered == 100.0
    assert rates.current(now=12.0) == {}


def test_the_same_report_twice_changes_nothing():
    """A repeated (or older) report is ignored, so a rate never divides by a zero span."""
    rates = LiveRates()
    rates.observe("w1", 0.0, {"kafka": sample(0, 0, 0)}, received=0.0)
    rates.observe("w1", 1.0, {"kafka": sample(100, 100, 100)}, received=1.0)
    rates.observe("w1", 1.0, {"kafka": sample(900, 900, 900)}, received=1.5)
    assert rates.current(now=2.0)["kafka"].offered == 100.0


def test_lateness_percentiles_are_bounded_by_the_worst_lateness():
    """The buckets are coarse: a percentile never exceeds the exact worst lateness."""
    rates = LiveRates()
    rates.observe("local", 0.0, {"kafka": sample(0, 0, 0)}, received=0.0)
    rates.observe("local", 1.0, {"kafka": sample(10, 10, 10, lateness=0.0013)}, received=1.0)
    assert rates.total(now=1.0).lateness_p99 <= 0.0013


def test_the_history_keeps_its_bound_by_merging_neighbours():
    """Past its limit the chart's history merges pairs of points (means), keeping the newest."""
    history = RateHistory(limit=4)
    rates = LiveRates()
    for i in range(5):
        history.add(float(i), rates.total())
    series = history.series()
    assert series["time"] == [0.5, 2.5, 4.0]
    assert set(series) == {"time", "target", "offered", "acked", "lateness_p99_ms"}
    assert all(math.isfinite(v) for values in series.values() for v in values)


def test_tab_rows_keep_their_order_and_fold_extra_values_into_the_last_cell():
    """Locust sorts the table by name: the rows carry a sequence; too many values share a cell."""
    sections = [Section("a", "first", ("x", "y", "z"), (("row", "1", "2", "3"),))]
    rows = tab_rows(sections, columns=2)
    assert [r["name"] for r in rows] == ["0000", "0001"]
    assert rows[0] == {"name": "0000", "what": "▸ first", "c1": "x", "c2": "y · z"}
    assert rows[1] == {"name": "0001", "what": "row", "c1": "1", "c2": "2 · 3"}


VERDICT = {
    "status": "FAIL",
    "exit_code": 3,
    "run_id": "00112233445566ff",
    "acked": 2053,
    "seen": 2050,
    "unseen": 0,
    "lost": 3,
    "duplicated": 0,
    "corrupted": 0,
    "misrouted": 0,
    "recovered": 0,
    "reasons": ["lost 3 > --max-lost 0"],
    "lost_samples": [
        {"producer_id": "p1", "seq": s, "topic": "t-alarm", "partition": None, "offset": None}
        for s in range(7)
    ],
    "lost_by_topic": {"t-alarm": 3},
    "seen_by_topic": {"t-alarm": 2050},
    "anomalies_by_topic": {},
    "latency_ms": {"t-alarm": {"p50": 30.2, "p95": 48, "p99": 7.25}},
}


def test_the_verdict_block_names_status_reasons_first_ids_and_files():
    """After the stop: status, exit code, counts, reasons, the first lost ids and the files."""
    section = verdict_section(VERDICT, {"verdict": "reports/x/verdict.json"})
    rows = dict(section.rows)
    assert section.title == "verdict: FAIL"
    assert (rows["status"], rows["exit code"], rows["reason"]) == ("FAIL", "3", "lost 3 > --max-lost 0")
    assert rows["counts"] == (
        "acked=2,053 seen=2,050 lost=3 duplicated=0 corrupted=0 misrouted=0 recovered=0"
    )
    assert rows["first lost"] == (
        "p1#0 t-alarm, p1#1 t-alarm, p1#2 t-alarm, p1#3 t-alarm, p1#4 t-alarm (+2 more in the verdict file)"
    )
    assert rows["verdict file"] == "reports/x/verdict.json"


def test_the_final_verification_shows_the_verdicts_counts_per_topic_and_in_all():
    """After the verdict the verification table holds its counts, not the live progress."""
    section = verification_section(["t-alarm"], 2053, None, {}, VERDICT)
    rows = {row[0]: row[1:] for row in section.rows}
    assert rows["t-alarm"][1:4] == ("2,050", "–", "3")
    assert rows["t-alarm"][-3:] == ("30 ms", "48 ms", "7.25 ms")
    assert rows["all topics"][:8] == ("2,053", "2,050", "0", "3", "0", "0", "0", "0")


def test_a_report_block_goes_above_locusts_content_once():
    """The block goes before Locust's root element; writing it again replaces the first one."""
    report = '<html><body><div id="root"></div><script>locust</script></body></html>'
    snapshot = {"run_id": "r1", "status": "PASS", "sections": [], "chart": RateHistory().series()}
    once = add_to_report(report, report_block(snapshot))
    twice = add_to_report(once, report_block({**snapshot, "status": "FAIL"}))
    assert once.index(MARK_BEGIN) < once.index('<div id="root">')
    assert twice.count(MARK_BEGIN) == 1
    assert '"status":"FAIL"' in twice
    assert '"status":"PASS"' not in twice


def test_a_snapshot_cannot_close_the_reports_script_element():
    """Text from the run (a topic, a reason) is inlined safely: no ``</script>`` escapes."""
    block = report_block({"run_id": "r1", "sections": [{"title": "</script><b>x"}], "chart": {}})
    assert "</script><b>" not in block


@pytest.mark.parametrize("path", ["reports/{run_id}/verdict.json", "v-{run_id}.json"])
def test_every_test_of_a_session_writes_files_of_its_own(path):
    """``{run_id}`` in a file option becomes each test's run id; a plain path stays as given."""
    settings = Settings.from_options(namespace(verdict_file=path, ledger_file="ledger.json"), environ={})
    one = settings.for_run("00112233445566ff").verify
    assert one.verdict_file == path.replace("{run_id}", "00112233445566ff")
    assert one.ledger_file == "ledger.json"


def test_the_verdict_block_shows_the_runs_status_when_the_load_failed():
    """Kafka PASS but the load verdict FAIL: the block (tab, page, reports) says FAIL with the load's
    reason, as the console does; it said "verdict: PASS" with exit code 3 (issue 22)."""
    document = {
        **VERDICT,
        "status": "PASS",
        "exit_code": 0,
        "reasons": [],
        "lost": 0,
        "lost_samples": [],
        "overall": {
            "status": "FAIL",
            "exit_code": 3,
            "reasons": ["load: api: sent 31,611 of a target of 192,223 (16.44%) < --min-offered-ratio 0.9"],
        },
    }
    section = verdict_section(document, {})
    rows = dict(section.rows)
    assert section.title == "verdict: FAIL"
    assert (rows["status"], rows["exit code"], rows["kafka verdict"]) == ("FAIL", "3", "PASS")
    assert rows["reason"].startswith("load: api: sent 31,611")
