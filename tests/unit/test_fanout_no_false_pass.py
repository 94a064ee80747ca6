"""The fan-out verdict against gateways that lie (issue 18 items 1, 2, 3, 12).

What Kafka holds, and what each subscription should have received, is worked out here by the test
itself — its own filter, its own rendering of values and the oracle's own CRC-32 — not by the
gateway's filter code or the verdict's Kafka read; only the wire frames come from the protocol
module, as a gateway would send them.
"""

import json
from array import array

import orjson
from pyroaring import BitMap64

from ingestload.fanout import protocol
from ingestload.fanout.expected import Expected
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.ledger import SubscriberLedger
from ingestload.fanout.verdict import FanoutThresholds, judge
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS
from tests.oracle import crc32

SENT_AT = 1_700_000_000_000_000
TOPIC = "gov-alarm"


def envelope(sent_at_us):
    """41 bytes: version 2, run id, producer, seq, sent-at µs, value CRC, topic CRC (only sent-at is read)."""
    return (
        bytes([2]) + bytes(8) + (7).to_bytes(8, "big") + bytes(8) + sent_at_us.to_bytes(8, "big") + bytes(8)
    )


class Log:
    """The truth: Kafka's records, per partition, offset → document."""

    def __init__(self, partitions):
        self.partitions = partitions  # {partition: {offset: document}}

    def expected(self, topics=(TOPIC,), flt=None, start=None):
        """What a subscription (topics, filter) should get, computed here: every partition read
        from ``start`` (default 0) to its end; the content digest of each record by the oracle."""
        matches, read_from, end, digests = {}, {}, {}, {}
        for partition, records in self.partitions.items():
            tp = (TOPIC, partition)
            first = (start or {}).get(tp, 0)
            read_from[tp] = first
            end[tp] = max(records) + 1 if records else first
            wanted = BitMap64()
            values = array("L")
            for offset in range(first, end[tp]):
                document = records.get(offset)
                rendered = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
                values.append(crc32(rendered, offset & 0xFFFFFFFF) if document is not None else 0)
                if document is None:
                    continue
                if flt is None or document["Header"]["ControllerType"] in flt.values:
                    wanted.add(offset)
            matches[tp] = wanted
            digests[tp] = (first, values)
        key = (tuple(sorted(topics)), flt)
        return Expected({key: matches}, read_from, end, [], digests, {TOPIC: set(self.partitions)})

    def frame(self, partition, offsets, latency_us=1000, replace=None):
        """A ``messages`` frame with the records at ``offsets`` (``replace``: offset → another document)."""
        fragments = []
        for offset in offsets:
            document = (replace or {}).get(offset, self.partitions[partition][offset])
            value = orjson.dumps(document)
            fragments.append(
                protocol.message_fragment(TOPIC, partition, offset, 0, envelope(SENT_AT), value, True)
            )
        return orjson.loads(protocol.messages(fragments)), SENT_AT + latency_us


def doc(i, controller="LCE"):
    return {"Header": {"ControllerType": controller, "Seq": i}, "Body": {"value": i * 1.5}}


def subscribe(name, start, topics=(TOPIC,), flt=None):
    ledger = SubscriberLedger(name, topics, flt)
    frame = protocol.subscribed(f"g-{name}", protocol.Subscribe(tuple(topics), flt, None), start)
    ledger.feed(orjson.loads(frame), 0)
    return ledger


def unsubscribe(ledger, to):
    ledger.feed(orjson.loads(protocol.unsubscribed("g", "requested", to, 0)), 0)


def test_a_gateway_cannot_shrink_a_window_it_vouched_for():
    """Issue 18 item 1: progress 10, then messages 0…4, then unsubscribed with to=5. The gateway had
    vouched that 0…9 were pushed: the window stays [0, 10), 5 are missed (FAIL), the contradiction is
    named. Before: the window was [0, 5) and the verdict PASS, missed 0."""
    log = Log({0: {i: doc(i) for i in range(10)}})
    ledger = subscribe("shrunk", {(TOPIC, 0): 0})
    ledger.feed(orjson.loads(protocol.progress({(TOPIC, 0): 10})), 0)
    ledger.feed(*log.frame(0, range(5)))
    unsubscribe(ledger, {(TOPIC, 0): 5})
    verdict = judge([ledger], log.expected())
    assert (verdict.status, verdict.totals["expected"], verdict.totals["missed"]) == (FAIL, 10, 5)
    assert any("unsubscribed.to 5 below progress 10" in r for r in verdict.reasons)


def test_an_honest_end_above_the_progress_is_the_window():
    """No contradiction: progress 3, then everything up to an unsubscribed.to of 10: PASS."""
    log = Log({0: {i: doc(i) for i in range(10)}})
    ledger = subscribe("honest", {(TOPIC, 0): 0})
    ledger.feed(orjson.loads(protocol.progress({(TOPIC, 0): 3})), 0)
    ledger.feed(*log.frame(0, range(10)))
    unsubscribe(ledger, {(TOPIC, 0): 10})
    verdict = judge([ledger], log.expected())
    assert (verdict.status, verdict.totals["received"]) == (PASS, 10), verdict.report()


def test_garbage_values_at_the_right_offsets_fail_as_altered():
    """Issue 18 item 2: every offset delivered, two of them with values that are not Kafka's: FAIL,
    altered 1 (one subscriber partition). Before: only offsets were recorded, PASS."""
    log = Log({0: {i: doc(i) for i in range(8)}})
    ledger = subscribe("fooled", {(TOPIC, 0): 0})
    ledger.feed(*log.frame(0, range(8), replace={2: doc(99), 5: {"garbage": True}}))
    unsubscribe(ledger, {(TOPIC, 0): 8})
    verdict = judge([ledger], log.expected())
    assert (verdict.status, verdict.totals["missed"], verdict.totals["altered"]) == (FAIL, 0, 1)
    assert "altered 1 > max 0" in verdict.reasons[0]


def test_values_swapped_between_offsets_are_altered_too():
    """The right values at the wrong offsets: the digest is bound to the offset."""
    log = Log({0: {i: doc(i) for i in range(4)}})
    ledger = subscribe("swapped", {(TOPIC, 0): 0})
    ledger.feed(*log.frame(0, range(4), replace={1: doc(2), 2: doc(1)}))
    unsubscribe(ledger, {(TOPIC, 0): 4})
    assert judge([ledger], log.expected()).totals["altered"] == 1


def test_re_serialised_but_equal_values_are_not_altered():
    """A gateway that re-renders the JSON (spaces) delivers the same content: PASS."""
    log = Log({0: {i: doc(i) for i in range(3)}})
    ledger = subscribe("pretty", {(TOPIC, 0): 0})
    fragments = [
        protocol.message_fragment(
            TOPIC, 0, i, 0, envelope(SENT_AT), json.dumps(doc(i), indent=2).encode(), True
        )
        for i in range(3)
    ]
    ledger.feed(orjson.loads(protocol.messages(fragments)), SENT_AT + 1000)
    unsubscribe(ledger, {(TOPIC, 0): 3})
    assert judge([ledger], log.expected()).status == PASS


def test_a_partition_left_out_of_the_window_is_not_judged_pass():
    """Issue 18 item 3: the topic has partitions 0 and 1; the gateway's subscribed.from names only 0
    and its window ends before the stop. Partition 1 holds 6 matching messages never delivered: the
    window is not known whole, INCONCLUSIVE naming gov-alarm[1]. Before: PASS."""
    log = Log({0: {i: doc(i) for i in range(4)}, 1: {i: doc(i) for i in range(6)}})
    ledger = subscribe("half", {(TOPIC, 0): 0})
    ledger.feed(*log.frame(0, range(4)))
    unsubscribe(ledger, {(TOPIC, 0): 4})
    verdict = judge([ledger], log.expected())
    assert verdict.status == INCONCLUSIVE
    assert "gov-alarm[1]: left out of its window" in verdict.reasons[0]


def test_a_left_out_partition_with_nothing_for_the_filter_is_fine():
    """Partition 1 holds only GCE messages and the subscription wants LCE: nothing was due there."""
    lce = FieldFilter(("Header", "ControllerType"), ("LCE",))
    log = Log({0: {i: doc(i) for i in range(4)}, 1: {i: doc(i, "GCE") for i in range(6)}})
    ledger = subscribe("lce", {(TOPIC, 0): 0}, flt=lce)
    ledger.feed(*log.frame(0, range(4)))
    unsubscribe(ledger, {(TOPIC, 0): 4})
    assert judge([ledger], log.expected(flt=lce)).status == PASS


def _timed(name, latencies_ms, host):
    log = Log({0: {i: doc(i) for i in range(len(latencies_ms))}})
    ledger = subscribe(name, {(TOPIC, 0): 0})
    ledger.host = host
    for i, ms in enumerate(latencies_ms):
        ledger.feed(*log.frame(0, [i], latency_us=int(ms * 1000)))
    unsubscribe(ledger, {(TOPIC, 0): len(latencies_ms)})
    return ledger, log.expected()


def test_p99_over_a_skewed_clock_ahead_does_not_fail_on_skew_alone():
    """Issue 18 item 12: the subscriber's clock is ~200 ms ahead of the sender's on another host;
    measured 201…210 ms, true 1…10 ms, --max-fanout-p99 50 ms. Before: FAIL on skew alone; now
    INCONCLUSIVE, the skew bound reported."""
    ledger, expected = _timed("ahead", [201 + i for i in range(10)], host="viewer-host")
    verdict = judge([ledger], expected, FanoutThresholds(max_p99_ms=50), sender_hosts=["producer-host"])
    assert verdict.status == INCONCLUSIVE, verdict.report()
    assert "≤ 201.0 ms" in verdict.clock_skew
    assert any("would pass or fail on clock skew" in r for r in verdict.reasons)


def test_p99_over_a_clock_behind_does_not_pass_on_clamped_negatives():
    """The subscriber's clock is 300 ms behind: true latencies 240…260 ms measure −60…−40 ms and were
    clamped to 0, a p99 of 0 under a 50 ms maximum. Before: PASS; now INCONCLUSIVE, never PASS."""
    ledger, expected = _timed("behind", [-60 + 2 * i for i in range(11)], host="viewer-host")
    verdict = judge([ledger], expected, FanoutThresholds(max_p99_ms=50), sender_hosts=["producer-host"])
    assert verdict.status == INCONCLUSIVE, verdict.report()
    assert verdict.latency.min_ms == -60.0


def test_p99_too_high_even_without_the_skew_bound_fails():
    """Measured 10…500 ms, lowest 10 ms: the true p99 is at least 490 ms > 50 ms whatever the skew: FAIL."""
    ledger, expected = _timed("slow", [10] + [500] * 99, host="viewer-host")
    verdict = judge([ledger], expected, FanoutThresholds(max_p99_ms=50), sender_hosts=["producer-host"])
    assert verdict.status == FAIL, verdict.report()


def test_p99_on_one_host_is_judged_as_measured():
    """Senders and subscriber on one host share a clock: the p99 is exact, judged both ways."""
    ledger, expected = _timed("local", [201 + i for i in range(10)], host="box")
    assert judge([ledger], expected, FanoutThresholds(max_p99_ms=50), sender_hosts=["box"]).status == FAIL
    assert judge([ledger], expected, FanoutThresholds(max_p99_ms=250), sender_hosts=["box"]).status == PASS
    assert judge([ledger], expected, FanoutThresholds(max_p99_ms=250), sender_hosts=["box"]).clock_skew == (
        "one host"
    )


def test_content_digests_survive_the_trip_to_the_master():
    """A ledger's digests, contradictions, lowest latency and host survive JSON (worker → master)."""
    log = Log({0: {i: doc(i) for i in range(3)}})
    ledger = subscribe("trip", {(TOPIC, 0): 0})
    ledger.host = "w1"
    ledger.feed(orjson.loads(protocol.progress({(TOPIC, 0): 3})), 0)
    ledger.feed(*log.frame(0, range(3), replace={1: doc(7)}))
    unsubscribe(ledger, {(TOPIC, 0): 2})
    restored = SubscriberLedger.from_dict(orjson.loads(orjson.dumps(ledger.to_dict())))
    assert restored.to_dict() == ledger.to_dict()
    verdict = judge([restored], log.expected())
    assert (verdict.totals["altered"], verdict.status) == (1, FAIL)
    assert restored.contradictions


def test_a_merge_with_offsets_received_twice_leaves_that_partition_unchecked_not_altered():
    """Two records of one subscription that both hold offset 1 (a duplicate across reports): the
    duplicate counts, but the doubled digest cannot be undone — that partition's content is left
    unchecked rather than called altered; the untouched partition is still checked."""
    log = Log({0: {i: doc(i) for i in range(3)}, 1: {i: doc(i) for i in range(2)}})
    first = subscribe("split", {(TOPIC, 0): 0, (TOPIC, 1): 0})
    first.feed(*log.frame(0, [0, 1]))
    second = SubscriberLedger("split", (TOPIC,))
    second.feed(*log.frame(0, [1, 2]))
    second.feed(*log.frame(1, [0, 1], replace={1: doc(9)}))
    first.merge(second)
    unsubscribe(first, {(TOPIC, 0): 3, (TOPIC, 1): 2})
    verdict = judge([first], log.expected())
    assert (verdict.totals["duplicated"], verdict.totals["altered"]) == (1, 1)  # partition 1 only
    assert first.unchecked == {(TOPIC, 0)}
