"""The ack ledger: derived acked sets, completeness, error classification, serialisation."""

from pyroaring import BitMap

from ingestload.kafka.producer import is_definite_failure
from ingestload.messages.ledger import AckLedger, ProducerLedger


def test_acked_is_everything_sent_minus_failed_and_unknown():
    """acked() = [0, sent) − failed − unknown."""
    ledger = ProducerLedger(1, sent=10, acked_count=7, failed=BitMap([2]), unknown=BitMap([5, 9]))
    assert list(ledger.acked()) == [0, 1, 3, 4, 6, 7, 8]
    assert ledger.complete


def test_incomplete_when_reports_are_missing():
    """A ledger whose reports do not add up to what was sent is incomplete."""
    assert not ProducerLedger(1, sent=10, acked_count=8).complete
    assert ProducerLedger(1, sent=0, acked_count=0).complete


def test_errors_are_filed_as_failed_or_unknown():
    """Definite failures (never written) are failed; timeouts, purges (queued or in flight: a queued
    message may be a retry of one that was written) are unknown."""
    assert not is_definite_failure("_PURGE_QUEUE")
    assert not is_definite_failure("_MSG_TIMED_OUT")
    assert not is_definite_failure("_PURGE_INFLIGHT")
    assert is_definite_failure("MSG_SIZE_TOO_LARGE")
    assert not is_definite_failure("NOT_ENOUGH_REPLICAS")


def test_round_trip_and_merge():
    """Ledgers survive JSON and merge by producer."""
    a = ProducerLedger(2**64 - 1, sent=5, acked_count=4, failed=BitMap([3]), meta={"host": "w1"})
    b = ProducerLedger(7, sent=2, acked_count=2)
    merged = AckLedger([a])
    merged.merge(AckLedger.from_json(AckLedger([b]).to_json()))
    restored = AckLedger.from_json(merged.to_json())
    assert {p.producer_id for p in restored} == {2**64 - 1, 7}
    assert list(restored.producers[2**64 - 1].failed) == [3]
    assert restored.producers[2**64 - 1].meta == {"host": "w1"}
    assert restored.totals() == {"sent": 7, "acked": 6, "failed": 1, "unknown": 0}
    assert restored.complete


def test_64_bit_sets_and_the_first_seq_survive_json():
    """Failed/unknown seqs past 2**32 and the first seq round-trip; acked() spans [first, first+sent)."""
    edge = 2**32
    led = ProducerLedger(5, first=edge - 2, sent=4, acked_count=2, failed=[edge], unknown=[edge + 1])
    back = ProducerLedger.from_dict(led.to_dict())
    assert (back.first, back.sent, list(back.failed), list(back.unknown)) == (edge - 2, 4, [edge], [edge + 1])
    assert list(back.acked()) == [edge - 2, edge - 1]
    assert back.complete


def test_ledger_files_with_32_bit_sets_still_read():
    """A ledger written before seqs were 64-bit (no "bitmaps" key) decodes to the same seqs."""
    import base64

    old = {
        "producer_id": "0000000000000007",
        "sent": 5,
        "acked_count": 4,
        "failed": base64.b64encode(BitMap([3]).serialize()).decode(),
        "unknown": "",
    }
    led = ProducerLedger.from_dict(old)
    assert (list(led.failed), list(led.acked())) == ([3], [0, 1, 2, 4])
