"""Per-subscriber ledgers and the fan-out verdict: windows, exact accounting, never PASS on missing data."""

import orjson
import pytest

from ingestload.fanout import protocol
from ingestload.fanout.expected import Expected, MatchIndex, read_plan
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.ledger import (
    BROKEN,
    CLOSED,
    OPEN,
    SubscriberLedger,
    SubscriberLedgers,
    latency_bucket,
    sent_at_of,
)
from ingestload.fanout.verdict import FanoutThresholds, Latency, judge
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS

BIG = 2**40  # offsets past 2^32
LCE = FieldFilter(("Header", "ControllerType"), ("LCE",))
SENT_AT = 1_700_000_000_000_000


def envelope(sent_at=SENT_AT):
    # version, run id, producer id, seq, sent_at, crc, topic tag — only sent_at matters to the ledger
    return (
        bytes([2])
        + bytes(8)
        + (7).to_bytes(8, "big")
        + (0).to_bytes(8, "big")
        + sent_at.to_bytes(8, "big")
        + bytes(4)
        + bytes(4)
    )


class Kafka:
    """The truth: what is in Kafka, per partition (offset → controller type)."""

    def __init__(self, logs):
        self.logs = logs  # {(topic, partition): {offset: controller}}

    def frames(self, tp, offsets, latency_us=1000):
        fragments = [
            protocol.message_fragment(tp[0], tp[1], o, 0, envelope(), orjson.dumps(self.doc(tp, o)), True)
            for o in offsets
        ]
        return orjson.loads(protocol.messages(fragments)), SENT_AT + latency_us

    def doc(self, tp, offset):
        return {"Header": {"ControllerType": self.logs[tp][offset]}}

    def expected(self, ledgers, incomplete=()):
        keys, start = read_plan(ledgers)
        index = MatchIndex(keys)
        end = {}
        for tp, log in self.logs.items():
            if tp not in start:
                continue
            for offset in sorted(log):
                if offset >= start[tp]:
                    index.add(tp[0], tp[1], offset, self.doc(tp, offset))
            end[tp] = max(log) + 1
        return Expected(index.matches, start, end, list(incomplete))


def subscriber(name, kafka, start, received, topics=("a",), flt=None, end=None, progress=None):
    ledger = SubscriberLedger(name, topics, flt)
    ledger.feed(
        orjson.loads(protocol.subscribed(f"g-{name}", protocol.Subscribe(tuple(topics), flt, None), start)), 0
    )
    for tp, offsets in received.items():
        frame, at = kafka.frames(tp, offsets)
        ledger.feed(frame, at)
    if progress is not None:
        ledger.feed(orjson.loads(protocol.progress(progress)), 0)
    if end is not None:
        ledger.feed(orjson.loads(protocol.unsubscribed(f"g-{name}", "requested", end, 0)), 0)
    return ledger


@pytest.fixture
def kafka():
    log = {BIG + i: ("LCE" if i % 2 == 0 else "GCE") for i in range(20)}
    return Kafka({("a", 0): log, ("a", 1): dict.fromkeys(range(5), "LCE")})


def test_clean_windows_all_received_pass_with_exact_counts(kafka):
    """Closed and open windows that got everything of their subscription: PASS, counts from Kafka."""
    closed = subscriber(
        "s1", kafka, {("a", 0): BIG + 4}, {("a", 0): range(BIG + 4, BIG + 10)}, end={("a", 0): BIG + 10}
    )
    opened = subscriber(
        "s2", kafka, {("a", 0): BIG, ("a", 1): 0},
        {("a", 0): [BIG + i for i in range(0, 20, 2)], ("a", 1): range(5)}, flt=LCE,
    )  # fmt: skip
    assert (closed.state, opened.state) == (CLOSED, OPEN)
    verdict = judge([closed, opened], kafka.expected([closed, opened]))
    assert verdict.status == PASS, verdict.report()
    assert verdict.totals["expected"] == 6 + 10 + 5
    assert verdict.totals["received"] == verdict.totals["expected"]
    assert verdict.totals["missed"] == 0
    assert verdict.per_topic["a"]["expected"] == 21
    assert verdict.latency.p99_ms == pytest.approx(1.0, rel=0.04)
    orjson.dumps(verdict.to_dict())


def test_skipped_pushes_are_missed_for_that_subscriber_only(kafka):
    """A subscriber missing every 3rd message is charged exactly those; the others are clean; FAIL."""
    window = range(BIG, BIG + 20)
    victim = subscriber(
        "victim", kafka, {("a", 0): BIG}, {("a", 0): [o for i, o in enumerate(window) if i % 3 != 2]}
    )
    other = subscriber("other", kafka, {("a", 0): BIG}, {("a", 0): window})
    verdict = judge([victim, other], kafka.expected([victim, other]))
    assert verdict.status == FAIL
    by_name = {r.subscriber: r for r in verdict.results}
    assert by_name["victim"].missed == 6
    assert by_name["other"].missed == 0
    assert verdict.totals["missed"] == 6
    assert "missed 6 > max 0" in verdict.reasons[0]
    assert (
        judge([victim, other], kafka.expected([victim, other]), FanoutThresholds(max_missed=6)).status == PASS
    )


def test_announced_drops_are_reported_as_missed_not_pass(kafka):
    """Drops the gateway announced still count as missed; the announced number is shown beside."""
    ledger = subscriber("slow", kafka, {("a", 1): 0}, {("a", 1): [3, 4]})
    ledger.feed({"type": "dropped", "count": 3, "total": 3}, 0)
    verdict = judge([ledger], kafka.expected([ledger]))
    assert (verdict.status, verdict.totals["missed"], verdict.totals["dropped"]) == (FAIL, 3, 3)


def test_broken_window_is_inconclusive_unless_a_vouched_miss_fails_it(kafka):
    """Without a clean end only the vouched part is judged: no miss there → INCONCLUSIVE, a miss → FAIL."""
    clean = subscriber("b1", kafka, {("a", 1): 0}, {("a", 1): [0, 1]}, progress={("a", 1): 2})
    clean.disconnected()
    assert clean.state == BROKEN
    verdict = judge([clean], kafka.expected([clean]))
    assert verdict.status == INCONCLUSIVE
    assert verdict.totals["expected"] == 2  # offsets 2-4 came after the last progress: not judged
    assert "without a clean unsubscribe" in verdict.reasons[0]

    lossy = subscriber("b2", kafka, {("a", 1): 0}, {("a", 1): [0]}, progress={("a", 1): 3})
    lossy.disconnected()
    verdict = judge([lossy], kafka.expected([lossy]))
    assert (verdict.status, verdict.totals["missed"]) == (FAIL, 2)


def test_missing_information_is_never_pass(kafka):
    """Unconfirmed subscriptions, missing reports, an unfinished read, nothing expected: INCONCLUSIVE."""
    good = subscriber("g", kafka, {("a", 1): 0}, {("a", 1): range(5)})
    assert judge([good], kafka.expected([good])).status == PASS
    pending = SubscriberLedger("p", ("a",))
    assert judge([good, pending], kafka.expected([good])).status == INCONCLUSIVE
    assert judge([good], kafka.expected([good]), missing_reports=["worker-2"]).status == INCONCLUSIVE
    partial = kafka.expected([good], incomplete=["a[1]: no end"])
    assert judge([good], partial).status == INCONCLUSIVE
    assert judge([], kafka.expected([])).status == INCONCLUSIVE
    empty = subscriber("e", kafka, {("a", 1): 5}, {})
    assert judge([empty], kafka.expected([empty])).status == INCONCLUSIVE
    unread = subscriber("u", kafka, {("a", 1): 0}, {("a", 1): range(5)})
    expected = kafka.expected([unread])
    expected.end.pop(("a", 1))
    assert judge([unread], expected).status == INCONCLUSIVE


def test_duplicates_out_of_order_and_unexpected_are_counted(kafka):
    """A repeated offset is a duplicate, a late first arrival is out of order, a filter miss is unexpected."""
    ledger = subscriber("x", kafka, {("a", 1): 0}, {("a", 1): [0, 2, 1, 2, 3, 4]}, flt=LCE)
    frame, at = kafka.frames(("a", 0), [BIG + 1])  # a GCE message of a partition outside its window
    ledger.feed(frame, at)
    verdict = judge([ledger], kafka.expected([ledger]))
    assert verdict.status == FAIL
    t = verdict.totals
    assert (t["missed"], t["duplicated"], t["out_of_order"], t["unexpected"]) == (0, 1, 1, 1)


def test_received_after_a_clean_end_is_unexpected(kafka):
    """The gateway said the window ended at 3; a message at 3 afterwards is not of this subscription."""
    ledger = subscriber("late", kafka, {("a", 1): 0}, {("a", 1): [0, 1, 2]}, end={("a", 1): 3})
    frame, at = kafka.frames(("a", 1), [3])
    ledger.feed(frame, at)
    verdict = judge([ledger], kafka.expected([ledger]))
    assert (verdict.status, verdict.totals["unexpected"], verdict.totals["expected"]) == (FAIL, 1, 3)


def test_ledgers_round_trip_and_merge(kafka):
    """A ledger survives JSON (bitmaps, windows, latency) and a split record merges back to one."""
    ledger = subscriber("r", kafka, {("a", 0): BIG}, {("a", 0): [BIG, BIG + 2, BIG + 1]}, flt=LCE)
    ledger.feed({"type": "dropped", "count": 2, "total": 2}, 0)
    restored = SubscriberLedger.from_dict(orjson.loads(orjson.dumps(ledger.to_dict())))
    assert restored.to_dict() == ledger.to_dict()

    first = subscriber("m", kafka, {("a", 1): 0}, {("a", 1): [0, 1]})
    second = SubscriberLedger("m", ("a",))
    second.record("a", 1, 1, None, 0)
    second.record("a", 1, 2, None, 0)
    book = SubscriberLedgers([first])
    book.merge(SubscriberLedgers.from_json(SubscriberLedgers([second]).to_json()))
    merged = next(iter(book))
    assert len(book) == 1
    assert sorted(merged.received[("a", 1)]) == [0, 1, 2]
    assert merged.duplicates[("a", 1)] == 1
    assert merged.state == OPEN


def test_latency_buckets_and_percentiles():
    """Buckets keep 5 significant bits; percentiles come from merged buckets."""
    assert latency_bucket(-5) == 0
    assert latency_bucket(31) == 31
    assert latency_bucket(1000) == 992
    assert all(0 <= (v - latency_bucket(v)) / v < 0.032 for v in (33, 999, 12_345, 10**9))
    latency = Latency.of({1000: 98, 5000: 1, 90_000: 1})
    assert (latency.p50_ms, latency.p99_ms, latency.max_ms) == (1.0, 5.0, 90.0)
    assert sent_at_of(envelope(123).hex()) == 123
    assert sent_at_of("nope") is None


def test_http_path_envelope_inside_the_value_gives_latency():
    """Without a header envelope the ledger reads the _ingestload member of the value."""
    ledger = SubscriberLedger("h", ("a",))
    ledger.feed({"type": "subscribed", "subscription": "g", "from": [["a", 0, 0]]}, 0)
    value = {"x": 1, "_ingestload": envelope(SENT_AT).hex()}
    ledger.feed(
        {"type": "messages", "messages": [{"topic": "a", "partition": 0, "offset": 0, "value": value}]},
        SENT_AT + 2000,
    )
    assert ledger.latency["a"] == {latency_bucket(2000): 1}
    assert ledger.no_envelope == 0


def test_the_web_ui_shows_the_fanout_verdict_beside_the_kafka_one(kafka):
    """The ingestload tab's fan-out section, from a real verdict document: its status, the overall
    status and exit code, and the skipped subscriber's missed count."""
    from ingestload.webui.sections import fanout_section

    window = range(BIG, BIG + 20)
    victim = subscriber(
        "victim", kafka, {("a", 0): BIG}, {("a", 0): [o for i, o in enumerate(window) if i % 3 != 2]}
    )
    verdict = judge([victim], kafka.expected([victim]))
    document = orjson.loads(
        orjson.dumps(
            {
                "status": "PASS",
                "fanout": verdict.to_dict(),
                "overall": {"status": "FAIL", "exit_code": 3, "reasons": []},
            }
        )
    )
    section = fanout_section(document)
    assert section is not None
    assert section.title == "fan-out: FAIL"
    rows = dict(section.rows)
    assert rows["overall"] == "FAIL (exit code 3)"
    assert "expected=20" in rows["deliveries"]
    assert "missed=6" in rows["deliveries"]
    assert "missed 6 > max 0" in rows["reason"]
    assert fanout_section({"status": "PASS"}) is None
