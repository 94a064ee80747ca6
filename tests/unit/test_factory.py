"""MessageFactory: exact mix proportions, determinism, timestamps and speed-independent behaviour."""

import collections
import re

import orjson
import pytest

from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory, iso_ms

NOW_NS = 1_723_206_896_789_123_456  # 2024-08-09T12:34:56.789123456Z


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def tally(factory: MessageFactory, n: int) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for _ in range(n):
        _, value = factory.next(NOW_NS)
        header = orjson.loads(value)["Header"]
        counts[(header["ControllerType"], header["MessageType"])] += 1
    return counts


def test_mix_is_exact_over_whole_blocks(catalogue):
    """Over 100,000 messages (ten blocks) every cell gets exactly its percentage."""
    counts = tally(MessageFactory(catalogue, seed=3), 100_000)
    assert counts == collections.Counter(catalogue.counts(100_000))


def test_mix_is_close_over_a_partial_block(catalogue):
    """Part-way through a block each cell stays within a few messages of its share."""
    n = 103_333
    counts = tally(MessageFactory(catalogue, seed=5, block=10_000), n)
    for (controller, msg_type), expected in catalogue.counts(n).items():
        assert abs(counts[(controller, msg_type)] - expected) <= 60, (controller, msg_type)


def test_topic_matches_message_type(catalogue):
    """Each message goes to prefix + its message type."""
    factory = MessageFactory(catalogue, topic_prefix="x-")
    for _ in range(2000):
        topic, value = factory.next(NOW_NS)
        assert topic == "x-" + orjson.loads(value)["Header"]["MessageType"]


def test_same_seed_same_messages_different_seed_different_messages(catalogue):
    """The factory is deterministic given a seed, and the seed matters."""
    a, b, c = (MessageFactory(catalogue, seed=s) for s in (1, 1, 2))
    first = [a.next(NOW_NS) for _ in range(5000)]
    assert first == [b.next(NOW_NS) for _ in range(5000)]
    assert first != [c.next(NOW_NS) for _ in range(5000)]


def test_timestamp_is_stamped_at_send_time_as_iso_utc_milliseconds(catalogue):
    """Param.Timestamp is the time passed to next(), ISO-8601 UTC with milliseconds and Z."""
    factory = MessageFactory(catalogue)
    _, value = factory.next(NOW_NS)
    assert orjson.loads(value)["Param"]["Timestamp"] == "2024-08-09T12:34:56.789Z"
    _, later = factory.next(NOW_NS + 1_500_000_000)
    assert orjson.loads(later)["Param"]["Timestamp"] == "2024-08-09T12:34:58.289Z"


def test_iso_ms_pads_milliseconds():
    """Milliseconds are always three digits."""
    assert iso_ms(1_723_206_896_007) == "2024-08-09T12:34:56.007Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso_ms(0))


def test_unread_gives_back_the_same_message(catalogue):
    """After unread() the next message is the one that was refused, so the mix is unchanged."""
    factory = MessageFactory(catalogue, seed=9, block=100)
    for _ in range(99):
        factory.next(NOW_NS)
    refused = factory.next(NOW_NS)  # last slot of the first block
    nxt = factory.next(NOW_NS)  # first of the second block
    factory.unread(2)
    assert factory.next(NOW_NS) == refused
    assert factory.next(NOW_NS) == nxt


def test_cell_at_agrees_with_next(catalogue):
    """cell_at(i) predicts the controller and type of message i."""
    factory = MessageFactory(catalogue, seed=4, block=500)
    for i in range(1200):
        cell = factory.cell_at(i)
        header = orjson.loads(factory.next(NOW_NS)[1])["Header"]
        assert (header["ControllerType"], header["MessageType"]) == (cell.controller.name, cell.msg_type)


def test_payload_fields_follow_the_template(catalogue):
    """Generated fields have the types and ranges the template asks for."""
    factory = MessageFactory(catalogue, seed=1)
    for _ in range(3000):
        message = orjson.loads(factory.next(NOW_NS)[1])
        header, param = message["Header"], message["Param"]
        controller = catalogue.controllers[header["ControllerType"]]
        assert header["EquipmentId"].startswith(controller.equipment_prefix + "-")
        if header["MessageType"] == "fault":
            assert 2000 <= param["FaultCode"] <= 2999
        if "Floor" in param:
            assert 1 <= param["Floor"] <= controller.floors
