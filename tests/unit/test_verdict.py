"""Classification: exact anomaly counts, the PASS/FAIL/INCONCLUSIVE rules, the report."""

import pytest
from pyroaring import BitMap

from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.verify.verdict import Thresholds, classify
from ingestload.verify.verifier import Verifier
from tests.unit.fakes import RUN, kafka_msg


def seen(*producers_seqs, extra=()):
    v = Verifier(RUN)
    v.process([kafka_msg(p, s, offset=i) for i, (p, s) in enumerate(producers_seqs)] + list(extra))
    return v.summary()


def ledger(producer=1, sent=10, failed=(), unknown=(), acked_count=None):
    failed, unknown = BitMap(failed), BitMap(unknown)
    acked = sent - len(failed) - len(unknown) if acked_count is None else acked_count
    return ProducerLedger(producer, sent=sent, acked_count=acked, failed=failed, unknown=unknown)


def judge(led, summary, **kw):
    kw.setdefault("reached_end", True)
    return classify(RUN, AckLedger(led if isinstance(led, list) else [led]), summary, **kw)


def test_clean_run_passes():
    """Everything acknowledged was seen once: PASS, exit code 0."""
    verdict = judge(ledger(), seen(*[(1, s) for s in range(10)]))
    assert (verdict.status, verdict.exit_code, verdict.lost, verdict.seen, verdict.acked) == (
        "PASS",
        0,
        0,
        10,
        10,
    )
    assert verdict.reasons == ()


def test_lost_messages_fail_with_exact_count_ids_and_topics():
    """Acknowledged but absent at the end: lost, counted exactly, named with their topic."""
    verdict = judge(
        ledger(),
        seen(*[(1, s) for s in range(10) if s not in (3, 7)]),
        topic_of=lambda p, s: f"topic-{s % 2}",
    )
    assert (verdict.status, verdict.exit_code, verdict.lost) == ("FAIL", 3, 2)
    assert [(i.producer_id, i.seq, i.topic) for i in verdict.lost_samples] == [
        (1, 3, "topic-1"),
        (1, 7, "topic-1"),
    ]
    assert verdict.lost_by_topic == {"topic-1": 2}
    assert verdict.reasons[0] == "lost 2 > --max-lost 0"


def test_unseen_before_the_end_is_inconclusive_not_lost():
    """Before the end of the topics is reached, missing messages are unseen and the verdict INCONCLUSIVE."""
    verdict = judge(ledger(), seen(*[(1, s) for s in range(8)]), reached_end=False)
    assert (verdict.status, verdict.exit_code, verdict.lost, verdict.unseen) == ("INCONCLUSIVE", 4, 0, 2)
    assert "drain window ran out with 2 acknowledged messages unseen" in verdict.reasons[0]


def test_unseen_after_a_read_error_names_the_error_not_the_drain_window():
    """When the verifier could not read to the end (an error it gives), the unseen messages are put
    down to that error, not to a drain window that did not run out."""
    verdict = judge(
        ledger(), seen(*[(1, s) for s in range(8)]), reached_end=False, errors=["process 2 of 2 gone"]
    )
    assert (verdict.status, verdict.lost, verdict.unseen) == ("INCONCLUSIVE", 0, 2)
    assert verdict.reasons[0] == "verifier: process 2 of 2 gone"
    assert verdict.reasons[1].startswith("2 acknowledged messages unseen: the verifier did not read")
    assert not any("drain window" in r for r in verdict.reasons)


def test_duplicates_and_corruption_fail():
    """Extra copies and checksum mismatches are counted exactly and fail the run."""
    summary = seen(*[(1, s) for s in range(10)], (1, 4), (1, 4), extra=[kafka_msg(1, 9, crc=1, partition=2)])
    verdict = judge(ledger(), summary)
    assert (verdict.status, verdict.duplicated, verdict.corrupted) == ("FAIL", 3, 1)


def test_thresholds_allow_some_anomalies():
    """--max-lost / --max-duplicated tolerate up to that many."""
    summary = seen(*[(1, s) for s in range(9)], (1, 0))
    assert judge(ledger(), summary, thresholds=Thresholds(max_lost=1, max_duplicated=1)).status == "PASS"
    assert judge(ledger(), summary, thresholds=Thresholds(max_lost=0, max_duplicated=1)).status == "FAIL"


def test_failed_or_unknown_but_seen_is_recovered_not_an_error():
    """A send reported failed/unknown that did land is 'recovered'; it is neither lost nor a failure."""
    verdict = judge(ledger(failed=[2], unknown=[5]), seen(*[(1, s) for s in range(10) if s != 2]))
    assert (verdict.status, verdict.recovered, verdict.acked, verdict.failed, verdict.unknown) == (
        "PASS",
        1,
        8,
        1,
        1,
    )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"missing_workers": ["w2"]}, "worker(s) never reported their final ledger: w2"),
        ({"errors": ["cannot connect"]}, "verifier: cannot connect"),
    ],
)
def test_missing_information_is_inconclusive(kwargs, reason):
    """A missing worker ledger or a verifier error never yields PASS."""
    verdict = judge(ledger(), seen(*[(1, s) for s in range(10)]), **kwargs)
    assert verdict.status == "INCONCLUSIVE"
    assert reason in verdict.reasons


def test_producer_without_ledger_and_incomplete_ledger_are_inconclusive():
    """Messages from an unknown producer, or sends without reports, make the verdict INCONCLUSIVE."""
    verdict = judge(ledger(), seen(*[(1, s) for s in range(10)], (9, 0), (9, 1)))
    assert verdict.status == "INCONCLUSIVE"
    assert "2 messages from 1 producer(s) that never reported a ledger" in verdict.reasons[0]
    incomplete = judge(ledger(acked_count=8), seen(*[(1, s) for s in range(8)]))
    assert incomplete.status == "INCONCLUSIVE"
    assert "2 sends without a delivery report" in incomplete.reasons[0]


def test_definite_failure_wins_over_missing_information():
    """A run with proven loss is FAIL even when a worker is also missing."""
    verdict = judge(ledger(), seen(*[(1, s) for s in range(9)]), missing_workers=["w2"])
    assert verdict.status == "FAIL"
    assert any("w2" in r for r in verdict.reasons)


def test_nothing_acknowledged_is_inconclusive():
    """A run in which nothing was acknowledged proves nothing."""
    assert judge([], seen()).status == "INCONCLUSIVE"
    assert judge(ledger(sent=3, failed=[0, 1, 2]), seen()).status == "INCONCLUSIVE"


def test_report_and_dict():
    """The report starts with the VERDICT line; to_dict carries the exit code and hex producer ids."""
    verdict = judge(ledger(), seen(*[(1, s) for s in range(9)]), topic_of=lambda p, s: "gov-alarm")
    report = verdict.report()
    assert report.splitlines()[0] == (
        "VERDICT: FAIL  acked=10 seen=9 lost=1 duplicated=0 corrupted=0 misrouted=0 recovered=0 "
        "(failed/unknown but seen)"
    )
    assert "first lost (producer#seq topic[partition]@offset): 0000000000000001#9 gov-alarm" in report
    data = verdict.to_dict()
    assert data["exit_code"] == 3
    assert data["lost_samples"][0]["producer_id"] == "0000000000000001"


def test_misrouted_over_its_threshold_fails():
    """Copies on a wrong topic fail the run unless --max-misrouted allows them."""
    summary = seen(*[(1, s) for s in range(9)], extra=[kafka_msg(1, 9, topic="x", meant_for="t", offset=99)])
    strict = judge(ledger(), summary)
    assert (strict.status, strict.misrouted, strict.lost) == ("FAIL", 1, 0)
    assert strict.reasons[0] == "misrouted 1 > --max-misrouted 0"
    assert [(m.seq, m.topic) for m in strict.misrouted_samples] == [(9, "x")]
    assert judge(ledger(), summary, thresholds=Thresholds(max_misrouted=1)).status == "PASS"


def test_two_ledgers_for_one_producer_id_are_inconclusive_never_replaced():
    """A second ledger for a producer id is not silently replacing the first: INCONCLUSIVE, with why."""
    clashing = AckLedger([ledger(producer=1, sent=10), ledger(producer=1, sent=20)])
    assert (len(clashing), len(clashing.clashes)) == (1, 1)
    verdict = classify(RUN, clashing, seen(*[(1, s) for s in range(10)]), reached_end=True)
    assert verdict.status == "INCONCLUSIVE"
    assert any("2 ledgers claim producer id 0000000000000001" in r for r in verdict.reasons)
    assert len(AckLedger.from_json(clashing.to_json()).clashes) == 1


def test_ledgers_past_2_32():
    """A producer whose seqs cross 2**32 is judged exactly: the lost seq past the edge is named."""
    edge = 2**32
    led = ProducerLedger(1, first=edge - 3, sent=6, acked_count=6)
    verdict = judge(led, seen(*[(1, s) for s in range(edge - 3, edge + 3) if s != edge]))
    assert (verdict.status, verdict.acked, verdict.lost) == ("FAIL", 6, 1)
    assert [i.seq for i in verdict.lost_samples] == [edge]


def test_records_of_a_known_producer_with_seqs_it_never_sent_are_phantom_and_fail():
    """Issue 18 item 4: 500 records of producer 1 with seqs it never sent, beside its 10 real ones, are
    counted as phantom (FAIL), not silently accepted; seen counts only the 10 it sent."""
    real = [(1, s) for s in range(10)]
    invented = [(1, s) for s in range(10, 510)]
    verdict = judge(ledger(producer=1, sent=10), seen(*real, *invented))
    assert (verdict.status, verdict.phantom, verdict.seen, verdict.acked) == ("FAIL", 500, 10, 10)
    assert any(r.startswith("phantom 500 > 0") for r in verdict.reasons)
    assert [(i.producer_id, i.seq) for i in verdict.phantom_samples[:2]] == [(1, 10), (1, 11)]
    assert "phantom=500" in verdict.line()


def test_seqs_below_a_producers_first_seq_are_phantom_too():
    """A producer that started at seq 100 never sent seq 5: a record with it is phantom."""
    led = ProducerLedger(1, first=100, sent=3, acked_count=3)
    verdict = judge(led, seen((1, 100), (1, 101), (1, 102), (1, 5)))
    assert (verdict.status, verdict.phantom, verdict.lost) == ("FAIL", 1, 0)


def test_a_producer_id_clash_is_inconclusive_naming_both_senders_not_duplicated():
    """Issue 18 item 11: two senders that drew one producer id both send seqs 0…9; the second copies
    are not duplicates of anything: INCONCLUSIVE, naming both senders (host, pid, worker), and no
    duplicate counted against the run."""
    first = ProducerLedger(7, sent=10, acked_count=10, meta={"host": "node-a", "pid": 11, "worker": 0})
    second = ProducerLedger(7, sent=10, acked_count=10, meta={"host": "node-b", "pid": 22, "worker": 1})
    both = [(7, s) for s in range(10)] * 2
    verdict = classify(RUN, AckLedger([first, second]), seen(*both), reached_end=True)
    assert (verdict.status, verdict.duplicated, verdict.lost) == ("INCONCLUSIVE", 0, 0)
    reason = next(r for r in verdict.reasons if "claim producer id" in r)
    assert "host node-a, pid 11, worker 0" in reason
    assert "host node-b, pid 22, worker 1" in reason
    assert "10 copies" in reason


def test_a_clash_does_not_hide_real_duplicates_of_other_producers():
    """Producer 1 duplicates seq 3 while producer 7's id clashes: FAIL duplicated 1 (producer 1's)."""
    clash = [ProducerLedger(7, sent=2, acked_count=2), ProducerLedger(7, sent=2, acked_count=2)]
    messages = [(1, s) for s in range(10)] + [(1, 3)] + [(7, 0), (7, 1), (7, 0), (7, 1)]
    verdict = classify(RUN, AckLedger([ledger(producer=1), *clash]), seen(*messages), reached_end=True)
    assert (verdict.status, verdict.duplicated) == ("FAIL", 1)


def test_messages_missing_where_records_were_deleted_are_unseen_not_lost():
    """Issue 18 item 8: 40 offsets of t[0] were deleted (retention) before the verifier read them;
    the 3 acknowledged messages not found, all meant for t, are unseen: INCONCLUSIVE naming the
    partition and how many offsets were gone — not FAIL lost 3."""
    verdict = judge(
        ledger(),
        seen(*[(1, s) for s in range(7)]),
        topic_of=lambda p, s: "t",
        deleted={("t", 0): 40},
    )
    assert (verdict.status, verdict.lost, verdict.unseen) == ("INCONCLUSIVE", 0, 3)
    assert verdict.deleted == {"t[0]": 40}
    assert "t[0] 40" in next(r for r in verdict.reasons if "deleted" in r)


def test_losses_on_other_topics_than_the_deleted_ones_still_fail():
    """Deletion on topic u says nothing of topic t: messages missing on t are lost (FAIL)."""
    verdict = judge(
        ledger(),
        seen(*[(1, s) for s in range(7)]),
        topic_of=lambda p, s: "t",
        deleted={("u", 0): 5},
    )
    assert (verdict.status, verdict.lost) == ("FAIL", 3)


def test_a_deleted_run_offset_is_known_from_the_log_start_and_the_first_record_read(monkeypatch):
    """Readback: the run started at offset 100 of t[0]; the log now starts at 140 and the first record
    the verifier read there was 140 → 40 offsets deleted before they were read. Where the verifier read
    from 99 on (deleted later) or the log still starts at the run's start, nothing is claimed."""
    from ingestload.verify import readback

    class Probe:
        def __init__(self, lows):
            self.lows = lows

        def get_watermark_offsets(self, tp, timeout, cached):
            return self.lows[(tp.topic, tp.partition)], 10_000

        def close(self):
            pass

    lows = {("t", 0): 140, ("t", 1): 140, ("t", 2): 0}
    monkeypatch.setattr(readback, "reader", lambda config, purpose, **kw: Probe(lows))
    run = readback.Readback.__new__(readback.Readback)
    run.config, run.assigned = {}, set(lows)
    run.start = {("t", 0): 100, ("t", 1): 100, ("t", 2): 0}
    run.verifier = Verifier(RUN)
    run.verifier.process(
        [
            kafka_msg(1, 0, topic="t", partition=0, offset=140),
            kafka_msg(1, 1, topic="t", partition=1, offset=99),
            kafka_msg(1, 2, topic="t", partition=2, offset=3),
        ]
    )
    assert run._deleted() == {("t", 0): 40}
