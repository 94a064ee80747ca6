"""The load verdict: a run that did not deliver the load asked for never passes."""

import pytest
from pyroaring import BitMap64

from ingestload.messages.ledger import ProducerLedger
from ingestload.rate.delivered import LoadThresholds, PathLoad, judge_load, path_loads
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS, exit_code

THRESHOLDS = LoadThresholds()


def test_a_run_that_sent_its_target_with_no_failures_passes():
    """Both paths at target, nothing refused: PASS, exit code 0."""
    verdict = judge_load(
        [PathLoad("kafka", 83_250.0, 83_250, 0), PathLoad("api", 83_250.0, 83_249, 0)],
        THRESHOLDS,
        elapsed=60.2,
        asked=60,
    )
    assert verdict.status == PASS
    assert verdict.reasons == ()
    assert exit_code(verdict.status) == 0


def test_every_post_refused_fails_the_run():
    """An API that answers 404 to every POST refused all it was sent: FAIL naming the path."""
    verdict = judge_load([PathLoad("api", 5_000.0, 5_000, 5_000)], THRESHOLDS, elapsed=5, asked=5)
    assert verdict.status == FAIL
    assert verdict.reasons[0].startswith("api: 5,000 of 5,000 sends failed (100.00%)")


def test_a_path_with_a_target_and_nothing_sent_fails():
    """API users that never started (no --host): their path had a target and sent nothing."""
    verdict = judge_load(
        [PathLoad("kafka", 4_000.0, 4_000, 0), PathLoad("api", 4_000.0, 0, 0)], THRESHOLDS, elapsed=8, asked=8
    )
    assert verdict.status == FAIL
    assert verdict.reasons == ("api: nothing sent of a target of 4,000",)


def test_half_the_load_fails_and_a_tenth_short_is_the_limit():
    """Sent below --min-offered-ratio of the target fails; at the ratio it passes."""
    assert judge_load([PathLoad("kafka", 1_000.0, 899, 0)], THRESHOLDS).status == FAIL
    assert judge_load([PathLoad("kafka", 1_000.0, 900, 0)], THRESHOLDS).status == PASS
    strict = LoadThresholds(min_offered_ratio=0.99)
    assert judge_load([PathLoad("kafka", 1_000.0, 950, 0)], strict).status == FAIL


def test_failures_up_to_the_threshold_pass():
    """One failed send in a hundred is allowed by default; two are not."""
    assert judge_load([PathLoad("api", 100.0, 100, 1)], THRESHOLDS).status == PASS
    assert judge_load([PathLoad("api", 100.0, 100, 2)], THRESHOLDS).status == FAIL


def test_a_shortfall_with_missing_workers_is_inconclusive():
    """What a worker without a ledger sent is unknown: the shortfall is not a definite FAIL."""
    verdict = judge_load(
        [PathLoad("kafka", 10_000.0, 5_000, 0)],
        THRESHOLDS,
        missing_workers=["worker-b"],
        elapsed=10,
        asked=10,
    )
    assert verdict.status == INCONCLUSIVE
    assert "worker-b" in verdict.reasons[0]


def test_a_run_that_stopped_early_says_so():
    """A run asked for 8 s that stopped after 1 s on its own (StopTest) is not a PASS."""
    verdict = judge_load([PathLoad("kafka", 500.0, 500, 0)], THRESHOLDS, elapsed=1.0, asked=8)
    assert verdict.status == INCONCLUSIVE
    assert verdict.reasons == ("the run stopped after 1.0s of the 8s asked",)
    assert "ran 1.0s of the 8s asked" in verdict.report()


def test_a_run_stopped_by_a_signal_is_judged_on_what_was_sent():
    """Ctrl-C: the user asked for the stop; what was sent until then is judged, and the report says why."""
    verdict = judge_load(
        [PathLoad("kafka", 500.0, 500, 0)], THRESHOLDS, elapsed=1.0, asked=8, stopped_by="a signal"
    )
    assert verdict.status == PASS
    assert "stopped by a signal" in verdict.report()


def test_as_fast_as_possible_with_nothing_sent_fails():
    """--rate 0 has no target, but sending nothing at all is never a delivered load."""
    assert judge_load([PathLoad("kafka", None, 0, 0)], THRESHOLDS).status == FAIL
    assert judge_load([PathLoad("kafka", None, 10, 0)], THRESHOLDS).status == PASS


@pytest.mark.parametrize("target", [0.0, 0.4])
def test_a_path_asked_for_less_than_one_message_may_send_none(target):
    """A target below one message (a stop right at the start) is no shortfall."""
    assert judge_load([PathLoad("api", target, 0, 0)], THRESHOLDS).status == PASS


def test_path_loads_sums_each_paths_ledgers():
    """Sent and failed per path come from the producers' ledgers, by the path in their meta."""
    ledgers = [
        ProducerLedger(1, sent=100, acked_count=99, failed=BitMap64([5]), meta={"path": "kafka"}),
        ProducerLedger(2, sent=50, acked_count=50, meta={"path": "kafka"}),
        ProducerLedger(3, sent=40, acked_count=37, failed=BitMap64([1, 2, 3]), meta={"path": "api"}),
    ]
    loads = {p.path: p for p in path_loads({"kafka": 150.0, "api": None}, ledgers)}
    assert (loads["kafka"].sent, loads["kafka"].failed, loads["kafka"].target) == (150, 1, 150.0)
    assert (loads["api"].sent, loads["api"].failed, loads["api"].target) == (40, 3, None)


def test_a_path_with_no_ledger_counts_as_nothing_sent():
    """A planned path whose processes never sent a ledger shows sent 0 (and fails when it had a target)."""
    loads = path_loads({"kafka": 10.0, "api": 10.0}, [ProducerLedger(1, sent=10, acked_count=10)])
    assert [(p.path, p.sent) for p in loads] == [("api", 0), ("kafka", 10)]
    assert judge_load(loads, THRESHOLDS).status == FAIL


def test_a_second_of_slack_for_the_start_and_the_stop():
    """A 4 s run may be a second's worth short on top of the ratio; a minute-long run barely more."""
    short = LoadThresholds()
    assert judge_load([PathLoad("api", 4_000.0, 2_700, 0)], short, elapsed=4.0).status == PASS
    assert judge_load([PathLoad("api", 4_000.0, 2_500, 0)], short, elapsed=4.0).status == FAIL
    assert judge_load([PathLoad("kafka", 60_000.0, 53_100, 0)], short, elapsed=60.0).status == PASS
    assert judge_load([PathLoad("kafka", 60_000.0, 52_900, 0)], short, elapsed=60.0).status == FAIL
