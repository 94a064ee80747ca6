"""The HTTP path's pure parts: bodies with the envelope inside, and how answers file messages."""

import orjson
import pytest

from ingestload.http.client import (
    OUTCOME_ACKED,
    OUTCOME_FAILED,
    OUTCOME_UNKNOWN,
    IngestApiClient,
    batch_outcomes,
    outcome_of,
)
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.envelope import seq_of
from ingestload.messages.factory import MessageFactory
from ingestload.verify.verifier import Verifier
from tests.unit.fakes import RUN, Msg


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, OUTCOME_ACKED),
        (202, OUTCOME_ACKED),
        (400, OUTCOME_FAILED),
        (422, OUTCOME_FAILED),
        (503, OUTCOME_FAILED),
        (500, OUTCOME_FAILED),
        (502, OUTCOME_UNKNOWN),
        (504, OUTCOME_UNKNOWN),
        (0, OUTCOME_UNKNOWN),
    ],
)
def test_status_decides_the_outcome(status, outcome):
    """2xx acknowledges; gateway timeouts and no answer are unknown; other errors are failures."""
    assert outcome_of(status) == outcome


def test_multi_status_files_each_item_by_index():
    """A 207 body's failures are filed by index; the other items are acknowledged."""
    body = orjson.dumps(
        {"accepted": 3, "failed": 2, "failures": [{"index": 1, "status": 503}, {"index": 3, "status": 504}]}
    )
    assert batch_outcomes(207, body, [10, 11, 12, 13, 14]) == {
        OUTCOME_ACKED: [10, 12, 14],
        OUTCOME_FAILED: [11],
        OUTCOME_UNKNOWN: [13],
    }
    assert batch_outcomes(207, b"not json", [1, 2]) == {OUTCOME_UNKNOWN: [1, 2]}
    assert batch_outcomes(200, b"", [1, 2]) == {OUTCOME_ACKED: [1, 2]}
    assert batch_outcomes(503, b"", [1]) == {OUTCOME_FAILED: [1]}


def test_bodies_carry_the_envelope_and_verify_clean():
    """Each body is the message plus the envelope member; the verifier accepts it and catches a change."""
    client = IngestApiClient(
        MessageFactory(Catalogue.load(), topic_prefix="p-"), envelope_field="_ingestload"
    )
    client.begin_run(RUN, producer_id=9)
    taken = client.take(50)
    assert [seq for _, seq, _ in taken] == list(range(50))
    msg_type, _, body = taken[0]
    message = orjson.loads(body)
    assert message["Header"]["MessageType"] == msg_type
    assert len(message["_ingestload"]) == 82
    changed = dict(orjson.loads(taken[1][2]))
    changed["Param"] = {**changed["Param"], "Floor": -1}
    verifier = Verifier(RUN)
    verifier.process(
        [Msg("p-" + t, 0, i, b) for i, (t, _, b) in enumerate(taken)]
        + [Msg("p-" + taken[1][0], 0, 99, orjson.dumps(changed))]
    )
    summary = verifier.summary()
    assert len(summary.seen[9]) == 50
    assert (summary.corrupted, summary.duplicated, summary.misrouted) == (1, 1, 0)


def test_batches_are_one_json_array_per_type_in_seq_order_and_verify_clean():
    """take_batches: every seq once, grouped by type, each item the same body take() would make."""
    factory = MessageFactory(Catalogue.load(), topic_prefix="p-")
    client = IngestApiClient(factory)
    client.begin_run(RUN, producer_id=4)
    batches = client.take_batches(200)
    assert len(batches) > 1
    seqs = sorted(s for group, _ in batches.values() for s in group)
    assert seqs == list(range(200))
    assert (client.seq, client.in_flight) == (200, 200)
    messages = []
    for msg_type, (group, body) in batches.items():
        items = orjson.loads(body)
        assert len(items) == len(group)
        assert {item["Header"]["MessageType"] for item in items} == {msg_type}
        messages += [
            Msg("p-" + msg_type, 0, seq, orjson.dumps(item)) for seq, item in zip(group, items, strict=True)
        ]
    verifier = Verifier(RUN)
    verifier.process(messages)
    summary = verifier.summary()
    assert len(summary.seen[4]) == 200
    assert (summary.corrupted, summary.duplicated) == (0, 0)


def seq_of_item(item: dict) -> int:
    return seq_of(bytes.fromhex(item["_ingestload"]))


def test_a_mixed_batch_holds_every_type_in_seq_order():
    """take_batches(per_type=False): one array of all 200, in seq order, bodies as take() makes them."""
    same_seed = MessageFactory(Catalogue.load(), topic_prefix="p-")
    one, other = (
        IngestApiClient(same_seed),
        IngestApiClient(MessageFactory(Catalogue.load(), topic_prefix="p-")),
    )
    one.begin_run(RUN, producer_id=4)
    other.begin_run(RUN, producer_id=4)
    batches = one.take_batches(200, per_type=False)
    assert list(batches) == [""]
    seqs, body = batches[""]
    assert seqs == list(range(200))
    items = orjson.loads(body)
    assert len({item["Header"]["MessageType"] for item in items}) > 1
    singles = [orjson.loads(b) for _, _, b in other.take(200)]
    assert [m["Header"] for m in singles] == [m["Header"] for m in items]  # same messages, same order
    assert [seq_of_item(m) for m in items] == seqs


def test_ledger_from_outcomes_and_drain_accounting():
    """Resolved seqs land in the ledger; in-flight counts what awaits an answer."""
    client = IngestApiClient(MessageFactory(Catalogue.load()))
    client.begin_run(RUN, producer_id=3)
    seqs = [s for _, s, _ in client.take(10)]
    assert client.in_flight == 10
    client.resolve(seqs[:6], OUTCOME_ACKED)
    client.resolve(seqs[6:8], OUTCOME_FAILED)
    client.abandon(seqs[8:])
    ledger = client.ledger()
    assert (client.in_flight, ledger.sent, ledger.acked_count) == (0, 10, 6)
    assert (list(ledger.failed), list(ledger.unknown)) == ([6, 7], [8, 9])
    assert ledger.complete
    assert ledger.meta["path"] == "api"
    assert client.drain(0.01) == 0
    assert client.take(5) == []
