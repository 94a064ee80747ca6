"""The storage hop's pure parts: message validation, row keys, how far behind a sink is, the verdict."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pyroaring import BitMap64

from ingestload.messages.catalogue import Catalogue
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.sink.progress import behind
from ingestload.sink.records import Validator, leaf_paths, message_key, split
from ingestload.sink.verdict import TableTally, judge
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS
from ingestload.verify.body import BodySpec
from ingestload.verify.verdict import Thresholds
from tests import oracle

RUN = "00112233445566ff"
ALARM = {
    "Header": {
        "MessageId": "9b2c",
        "MessageType": "alarm",
        "ControllerType": "LCE",
        "EquipmentId": "LCE-1",
        "SchemaVersion": "1.2",
    },
    "Param": {
        "Timestamp": "2026-12-04T12:00:00.000Z",
        "AlarmCode": 1234,
        "Severity": "MAJOR",
        "Active": True,
        "Floor": 3,
        "Description": "Car overload",
    },
}


def body(producer: int, seq: int, message: dict | None = None, *, tamper: bool = False) -> bytes:
    """A message as the HTTP path sends it, built from the documented layout (tests/oracle.py)."""
    message = dict(message or ALARM)
    crc = oracle.crc32(oracle.canonical(message))
    text = oracle.envelope(RUN, producer, seq, 1_700_000_000_000_000, crc, "gov-alarm").hex()
    if tamper:
        message = {**message, "Header": {**message["Header"], "EquipmentId": "tampered"}}
    return orjson.dumps({"_ingestload": text, **message})


def test_leaf_paths_keep_only_fields_no_other_path_continues():
    """``Header`` is a branch, ``Header.MessageId`` a field."""
    assert leaf_paths({"Header", "Header.MessageId", "Param", "Param.Floor", "Top"}) == {
        "Header.MessageId",
        "Param.Floor",
        "Top",
    }


def test_validator_accepts_a_whole_message_enriched_or_as_a_form_and_names_what_is_missing():
    """A message holding every field of its type is valid — with members added, or flattened as a
    form — and one without a field is not, the field named; a non-object and an unknown type too."""
    validator = Validator.of(Catalogue.load(None))
    assert validator.problem("gov-alarm", ALARM) is None
    assert validator.problem("gov-alarm", {**ALARM, "_ingestload": "x", "receivedAt": 1}) is None
    flat = {f"{group}.{k}": str(v) for group, fields in ALARM.items() for k, v in fields.items()}
    assert validator.problem("gov-alarm", flat) is None
    incomplete = {
        "Header": ALARM["Header"],
        "Param": {k: v for k, v in ALARM["Param"].items() if k != "Floor"},
    }
    assert validator.problem("gov-alarm", incomplete) == "alarm: fields missing: Param.Floor"
    assert validator.problem("gov-alarm", [ALARM]) == "not a JSON object but list"
    # A topic that names no type: the message's own type field decides.
    assert validator.problem("ingest", ALARM) is None
    nameless = {**ALARM, "Header": {**ALARM["Header"], "MessageType": "weather"}}
    assert validator.problem("ingest", nameless).startswith("no known message type")


def test_split_reads_one_message_an_array_or_says_why_not():
    """One object, each element of an array, or the reason a value is not JSON at all."""
    assert split(b'{"a": 1}') == ([{"a": 1}], None)
    assert split(b"[1, 2]") == ([1, 2], None)
    assert split(None) == ([], "an empty record (no value)")
    messages, why = split(b"{not json")
    assert messages == []
    assert why.startswith("not JSON")


def test_message_key_is_the_identity_from_the_header_or_the_member_else_where_it_was_read():
    """The same message read twice gets the same key (its envelope); without one, its coordinates."""
    header = oracle.envelope(RUN, 7, 42, 1, 0, "gov-alarm")
    assert message_key({}, [("ingestload", header)], ("t", 0, 5, 0)) == f"{RUN}:7:42"
    member = orjson.loads(body(9, 3))
    assert message_key(member, None, ("t", 1, 6, 0)) == f"{RUN}:9:3"
    # Several messages in one record: the header is not theirs; each member is.
    assert message_key(member, [("ingestload", header)], ("t", 1, 6, 2), single=False) == f"{RUN}:9:3"
    assert message_key({"a": 1}, None, ("t", 1, 6, 2)) == "t/1@6#2"


def test_behind_counts_every_message_between_the_committed_and_the_end_offsets():
    """No commit yet counts from the partition's start; a commit at the end counts nothing."""
    end = {("a", 0): 100, ("a", 1): 50, ("b", 0): 0}
    assert behind(end, {("a", 0): 100, ("a", 1): 20}) == 30
    assert behind(end, {}) == 150
    assert behind(end, {("a", 0): 100, ("a", 1): 50, ("b", 0): -1}) == 0


def ledger(*producers: tuple[int, int, set[int]]) -> AckLedger:
    return AckLedger(
        ProducerLedger(
            producer_id=p, sent=n, acked_count=n - len(u), unknown=BitMap64(u), meta={"path": "api"}
        )
        for p, n, u in producers
    )


def tally_of(rows: list[bytes], dead: list[bytes] = ()) -> TableTally:
    tally = TableTally(BodySpec.of(), RUN)
    written = datetime(2026, 12, 4, tzinfo=UTC)
    for value in rows:
        tally.add_row(value, written, written - timedelta(milliseconds=12))
    for value in dead:
        tally.add_dead_letter(value, "alarm: fields missing: Param.Floor")
    return tally


def test_the_verdict_counts_what_was_injected_exactly():
    """Two producers of 50; the table misses 2, holds 1 copy too many, 1 changed message and 1 that
    the sink dead-lettered; 1 message of unknown outcome is absent (not lost), rows of another run
    are ignored."""
    rows = [
        body(p, s)
        for p in (1, 2)
        for s in range(50)
        if (p, s) not in {(1, 10), (1, 11), (2, 7), (2, 5), (2, 6)}
    ]
    rows += [body(1, 20), body(2, 5, tamper=True), orjson.dumps({"_ingestload": "ff" * 41, **ALARM})]
    verdict = judge(
        "t",
        ledger((1, 50, set()), (2, 50, {7})),
        tally_of(rows, dead=[body(2, 6)]),
        Thresholds(),
        caught_up=True,
        progress="caught up",
    )
    assert verdict.status == FAIL
    assert (verdict.acked, verdict.stored) == (99, 96)  # the changed one is there, changed
    assert (verdict.lost, verdict.duplicated, verdict.corrupted, verdict.dead_lettered) == (2, 1, 1, 1)
    assert verdict.first_ids["lost"] == [f"{1:016x}#10", f"{1:016x}#11"]
    assert verdict.first_ids["dead-lettered"] == [f"{2:016x}#6"]
    assert verdict.dead_reasons == {"alarm: fields missing: Param.Floor": 1}
    assert verdict.percentile(0.5) == 12


@pytest.mark.parametrize(("caught_up", "status"), [(True, FAIL), (False, INCONCLUSIVE), (None, INCONCLUSIVE)])
def test_missing_rows_are_lost_only_once_the_sink_caught_up(caught_up, status):
    """A sink that had not caught up, or whose progress is unknown, leaves missing rows missing."""
    rows = [body(1, s) for s in range(10) if s != 4]
    verdict = judge(
        "t", ledger((1, 10, set())), tally_of(rows), Thresholds(), caught_up=caught_up, progress="how"
    )
    assert verdict.status == status
    assert verdict.missing == 1
    assert verdict.lost == (1 if caught_up else 0)


def test_a_complete_table_passes_and_header_only_producers_are_never_called_lost():
    """Every message once: PASS. A Kafka-path producer whose envelope was only in a header: its
    messages cannot be found in a table — INCONCLUSIVE, nothing lost."""
    rows = [body(1, s) for s in range(10)]
    assert (
        judge("t", ledger((1, 10, set())), tally_of(rows), Thresholds(), caught_up=True, progress="").status
        == PASS
    )
    both = ledger((1, 10, set()))
    both.add(ProducerLedger(producer_id=3, sent=5, acked_count=5, meta={"path": "kafka"}))
    verdict = judge("t", both, tally_of(rows), Thresholds(), caught_up=True, progress="")
    assert verdict.status == INCONCLUSIVE
    assert verdict.lost == 0
    assert "in a Kafka header only" in verdict.reasons[0]
