"""What real ingest APIs do to a message, done here by hand to what IngestApiClient really sends; the
verifier must call each healthy change intact and each damaging one corrupted.

The "APIs" below are written with the standard library's json and urllib (not with ingestload's
canonical form), so that they do not share the code under test.
"""

import json
import time
import uuid
from urllib.parse import parse_qsl

import pytest

from ingestload.errors import ConfigError
from ingestload.http.client import IngestApiClient
from ingestload.messages import identity
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger
from ingestload.verify.body import BodySpec
from ingestload.verify.explain import Explainer
from ingestload.verify.verifier import Verifier
from tests.unit.fakes import RUN, Msg

CATALOGUE = Catalogue.load()
MEMBERS = CATALOGUE.member_paths()


def sent(n=200, run=RUN, **kwargs):
    """n messages as IngestApiClient renders them: [(topic, seq, body bytes)]."""
    client = IngestApiClient(MessageFactory(CATALOGUE, seed=3), **kwargs)
    client.begin_run(run)
    rendered = list(client._render(n))
    return client, rendered


def verify(records, run=RUN, **spec):
    """Records as [(topic, value bytes)] → the verifier's summary."""
    v = Verifier(run, body=BodySpec(members=MEMBERS, **spec))
    v.process([Msg(topic, 0, offset, value) for offset, (topic, value) in enumerate(records)])
    return v.summary()


def like_node(value: bytes) -> bytes:
    """JSON.parse then JSON.stringify, roughly: keys in another order, whole numbers without .0."""

    def node(obj):
        if isinstance(obj, dict):
            return {k: node(obj[k]) for k in reversed(list(obj))}
        if isinstance(obj, float) and obj.is_integer():
            return int(obj)
        return obj

    return json.dumps(node(json.loads(value)), separators=(",", ":"), ensure_ascii=False).encode()


def like_python_floats(value: bytes) -> bytes:
    """Parsed with every number a float, written by json.dumps: 59 → 59.0, 1000 → 1000.0, \\u escapes."""
    return json.dumps(json.loads(value, parse_int=float), indent=1).encode()


@pytest.mark.parametrize("transform", [lambda v: v, like_node, like_python_floats])
def test_re_serialised_messages_are_intact(transform):
    """Forwarded, re-serialised the Node way, or with every number a float: nothing is corrupted."""
    _, messages = sent(500)
    s = verify([(t, transform(v)) for t, _, v in messages])
    assert (s.records, s.corrupted, s.duplicated, s.foreign) == (500, 0, 0, 0)


def test_a_changed_value_is_corrupted_even_after_re_serialisation():
    """One value changed (Param.Floor + 1), then re-serialised: exactly that message is corrupted."""
    _, messages = sent(100)

    def change(value):
        doc = json.loads(value)
        doc["Param"]["Floor"] += 1
        return like_node(json.dumps(doc).encode())

    s = verify([(t, change(v) if seq == 42 else like_node(v)) for t, seq, v in messages])
    assert s.corrupted == 1
    assert [i.seq for i in s.corrupted_samples] == [42]


def test_enrichment_is_counted_not_corrupted():
    """Members the API adds (receivedAt, source, one inside Header) are set aside, counted and named."""
    _, messages = sent(50)

    def enrich(value):
        doc = json.loads(value)
        doc["receivedAt"] = "2026-12-04T12:00:00Z"
        doc["source"] = "node-api"
        doc["Header"]["Gateway"] = "gw-1"
        return json.dumps(doc).encode()

    s = verify([(t, enrich(v)) for t, _, v in messages])
    assert (s.records, s.corrupted, s.enriched) == (50, 0, 50)
    assert s.enriched_members == {"receivedAt": 50, "source": 50, "Header.Gateway": 50}


def test_a_removed_member_is_corrupted_and_named():
    """A member of ours removed is corruption, and the report names it (the message is made again)."""
    client, messages = sent(30)

    def remove(value):
        doc = json.loads(value)
        del doc["Header"]["SchemaVersion"]
        doc["receivedAt"] = "x"
        return json.dumps(doc).encode()

    s = verify([(t, remove(v) if seq == 7 else v) for t, seq, v in messages])
    assert s.corrupted == 1
    sample = s.corrupted_samples[0]
    ledger = AckLedger([client.ledger()])
    body, sent_at = s.corrupted_bodies[sample]
    assert Explainer(ledger, BodySpec(members=MEMBERS)).explain(sample.producer_id, 7, body, sent_at) == (
        "Header.SchemaVersion removed"
    )


@pytest.mark.parametrize("path", ["data", None])
def test_wrapped_messages_are_found_by_path_or_discovery(path):
    """{"meta": …, "data": <message>}: found with --message-path data and without it."""
    _, messages = sent(40)
    wrapped = [
        (t, json.dumps({"meta": {"id": seq}, "data": json.loads(v)}).encode()) for t, seq, v in messages
    ]
    s = verify(wrapped, message_path=path)
    assert (s.records, s.corrupted, s.foreign) == (40, 0, 0)


@pytest.mark.parametrize("shape", ["array", "object", "deep"])
def test_several_messages_in_one_record_each_count(shape):
    """A batch forwarded as one record — an array, or an object holding one — counts message by message."""
    _, messages = sent(60)
    topic = messages[0][0]
    same = [json.loads(v) for t, _, v in messages if t == topic]
    records = []
    for i in range(0, len(same), 7):
        chunk = same[i : i + 7]
        doc = {"array": chunk, "object": {"count": len(chunk), "records": chunk}}.get(shape)
        if doc is None:
            doc = {"batch": {"meta": {"n": len(chunk)}, "items": chunk}}
        records.append((topic, json.dumps(doc).encode()))
    s = verify(records)
    assert (s.records, s.corrupted, s.foreign) == (len(same), 0, 0)
    assert len(records) < len(same)


def test_byte_order_mark_and_leading_whitespace():
    """A UTF-8 BOM or whitespace before the JSON does not hide the message."""
    _, messages = sent(20)
    s = verify([(t, (b"\xef\xbb\xbf" if seq % 2 else b"\n  ") + v) for t, seq, v in messages])
    assert (s.records, s.corrupted, s.foreign) == (20, 0, 0)


def seed001_writes(form_body: bytes) -> bytes:
    """What seed 001's endpoint writes: json.dumps(request.form) — a flat object of strings."""
    return json.dumps(dict(parse_qsl(form_body.decode(), keep_blank_values=True))).encode()


def test_form_bodies_check_out_as_the_api_writes_them():
    """--api-body form: the API's json.dumps(form) (string values) checks out; a changed field does not."""
    client, messages = sent(100, body="form")
    assert client.content_type == "application/x-www-form-urlencoded"

    def change(value):
        doc = json.loads(value)
        doc["Header.EquipmentId"] += "0"
        return json.dumps(doc).encode()

    s = verify([(t, change(seed001_writes(v)) if seq == 5 else seed001_writes(v)) for t, seq, v in messages])
    assert (s.records, s.corrupted) == (100, 1)


@pytest.mark.parametrize("body", ["json", "form"])
def test_strict_mode_adds_no_member_and_still_detects_corruption(body):
    """--envelope-in Header.MessageId: exactly the template's fields (a field-counting consumer accepts
    every message), the id is a valid UUID, and a changed value is still corrupted."""
    client, messages = sent(300, body=body, envelope_in="Header.MessageId")
    assert client.producer_id < 2**24
    written = [(t, seed001_writes(v) if body == "form" else v) for t, _, v in messages]
    factory = MessageFactory(CATALOGUE, seed=3)
    for (_, value), _ in zip(written, range(300), strict=False):
        doc = json.loads(value)
        expected = json.loads(factory.next(time.time_ns())[1])
        if body == "form":
            assert len(doc) == sum(len(v) for v in expected.values())  # one field per leaf, nothing added
            ident = doc["Header.MessageId"]
        else:
            assert doc.keys() == expected.keys()
            assert doc["Header"].keys() == expected["Header"].keys()
            ident = doc["Header"]["MessageId"]
        assert uuid.UUID(ident).version == 8
    s = verify(written, envelope_in="Header.MessageId")
    assert (s.records, s.corrupted, s.foreign, s.misrouted) == (300, 0, 0, 0)

    def change(value):
        doc = json.loads(value)
        if body == "form":
            doc["Param.Timestamp"] = "2000-01-01T00:00:00.000Z"
        else:
            doc["Param"]["Timestamp"] = "2000-01-01T00:00:00.000Z"
        return json.dumps(doc).encode()

    s = verify(
        [(t, change(v) if i in (3, 99) else v) for i, (t, v) in enumerate(written)],
        envelope_in="Header.MessageId",
    )
    assert s.corrupted == 2


def test_strict_mode_identity_of_another_run_is_foreign():
    """A UUID that is not an identity of this run (another run, or a plain v4 UUID) is foreign."""
    _, messages = sent(5, envelope_in="Header.MessageId")
    other = identity.pack("fffff00000000000", 1, 1, 0, 0)
    records = [
        (t, v.replace(json.loads(v)["Header"]["MessageId"].encode(), other.encode())) for t, _, v in messages
    ]
    s = verify(records, envelope_in="Header.MessageId")
    assert (s.records, s.foreign) == (0, 5)


def test_strict_mode_misrouting_is_told_by_the_topic_tag():
    """A strict-mode message written to another type's topic is misrouted, not seen on its own topic."""
    _, messages = sent(50, envelope_in="Header.MessageId")
    topics = sorted({t for t, _, _ in messages})
    assert identity.tags_distinct(__import__("zlib").crc32(t.encode()) for t in topics)
    records = [(topics[(topics.index(t) + 1) % len(topics)] if seq == 10 else t, v) for t, seq, v in messages]
    s = verify(records, envelope_in="Header.MessageId")
    assert (s.misrouted, s.records) == (1, 49)


def test_envelope_in_must_name_a_field_of_every_template():
    """--envelope-in naming a field a template lacks is refused up front, naming the message types."""
    with pytest.raises(ConfigError, match=r"Param\.AlarmCode"):
        IngestApiClient(MessageFactory(CATALOGUE), envelope_in="Param.AlarmCode")


def test_strict_mode_identity_in_capitals_is_found():
    """An API that writes UUIDs in capitals (some .NET and Java stacks) does not hide the messages."""
    run = "abcdef0123456789"
    _, messages = sent(20, run=run, envelope_in="Header.MessageId")

    def upper(value):
        doc = json.loads(value)
        doc["Header"]["MessageId"] = doc["Header"]["MessageId"].upper()
        return json.dumps(doc).encode()

    s = verify([(t, upper(v)) for t, _, v in messages], run=run, envelope_in="Header.MessageId")
    assert (s.records, s.foreign, s.corrupted) == (20, 0, 0)


def test_duplicates_inside_batched_records_count_per_producer():
    """A message forwarded twice inside batch records is a duplicate of its producer: the per-producer
    count (which tells a producer-id clash from real duplicates) holds it, as for one-message records."""
    client, messages = sent(30)
    topic = messages[0][0]
    same = [json.loads(v) for t, _, v in messages if t == topic]
    records = [(topic, json.dumps(same).encode()), (topic, json.dumps(same[:3]).encode())]
    s = verify(records)
    assert s.duplicated == 3
    assert s.duplicated_by_producer == {client.producer_id: 3}
