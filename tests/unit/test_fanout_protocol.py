"""The fan-out protocol's frames and the subscription filters, without I/O."""

import base64

import orjson
import pytest

from ingestload.fanout import protocol
from ingestload.fanout.errors import ProtocolError
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.protocol import ProgressRequest, Subscribe, Unsubscribe, parse_client


def test_subscribe_parses_topics_filter_and_label():
    """Topics are sorted without repeats; the filter and the label come through."""
    request = parse_client(
        b'{"type":"subscribe","topics":["b","a","b"],"id":"v1",'
        b'"filter":{"field":"Header.ControllerType","in":["LCE","GCE"]}}'
    )
    assert request == Subscribe(("a", "b"), FieldFilter(("Header", "ControllerType"), ("GCE", "LCE")), "v1")
    assert parse_client('{"type":"unsubscribe"}') == Unsubscribe()
    assert parse_client('{"type":"progress"}') == ProgressRequest()


@pytest.mark.parametrize(
    ("frame", "code", "hint"),
    [
        (b"{nope", "invalid_json", "not JSON"),
        (b"[1]", "invalid_message", "JSON object"),
        (b'{"type":"subscribe"}', "invalid_subscribe", "topics"),
        (b'{"type":"subscribe","topics":[]}', "invalid_subscribe", "non-empty"),
        (b'{"type":"subscribe","topics":["a"],"id":7}', "invalid_subscribe", "'id'"),
        (b'{"type":"subscribe","topics":["a"],"filter":{"field":"x"}}', "invalid_filter", '"in"'),
        (
            b'{"type":"subscribe","topics":["a"],"filter":{"field":"a..b","in":[1]}}',
            "invalid_filter",
            "dotted",
        ),
        (
            b'{"type":"subscribe","topics":["a"],"filter":{"field":"a","in":[[1]]}}',
            "invalid_filter",
            "strings",
        ),
        (b'{"type":"hello"}', "unknown_type", "subscribe, unsubscribe or progress"),
    ],
)
def test_bad_frames_say_what_the_peer_did(frame, code, hint):
    """Every malformed request raises a ProtocolError whose code and detail name the mistake."""
    with pytest.raises(ProtocolError) as info:
        parse_client(frame)
    assert info.value.code == code
    assert hint in info.value.detail


def test_filter_matches_by_json_type():
    """A filter matches equal JSON scalars only: 1 is not true, a missing field matches nothing."""
    f = FieldFilter.from_json({"field": "Param.Floor", "in": [1, "x", None]})
    assert f.matches({"Param": {"Floor": 1}})
    assert f.matches({"Param": {"Floor": None}})
    assert not f.matches({"Param": {"Floor": True}})
    assert not f.matches({"Param": {}})
    assert not f.matches({"Param": "flat"})
    assert not f.matches(None)
    assert FieldFilter.from_json(f.to_json()) == f


def test_message_fragment_splices_the_value_verbatim():
    """A JSON value reaches the subscriber byte for byte; a non-JSON value comes base64-encoded."""
    value = b'{"b":1,  "a":[2]}'
    fragment = protocol.message_fragment("t", 2, 41, 1700, b"\x01\x02", value, True)
    assert fragment.endswith(b',"value":' + value + b"}")
    frame = orjson.loads(protocol.messages([fragment, fragment]))
    assert frame["type"] == "messages"
    assert frame["messages"][0] == {
        "topic": "t",
        "partition": 2,
        "offset": 41,
        "timestamp": 1700,
        "envelope": "0102",
        "value": {"b": 1, "a": [2]},
    }
    raw = orjson.loads(protocol.message_fragment("t", 0, 1, None, None, b"\xff\x00", False))
    assert raw["value"] is None
    assert base64.b64decode(raw["value_base64"]) == b"\xff\x00"
    assert orjson.loads(protocol.message_fragment("t", 0, 1, None, None, None, False))["value"] is None


def test_positions_round_trip_and_reject_garbage():
    """Positions travel as [topic, partition, offset] triples and come back as a map."""
    positions = {("a", 1): 5, ("a", 0): 2**63}
    wire = orjson.loads(protocol.progress(positions))
    assert wire == {"type": "progress", "positions": [["a", 0, 2**63], ["a", 1, 5]]}
    assert protocol.positions_from_json(wire["positions"]) == positions
    with pytest.raises(ProtocolError):
        protocol.positions_from_json([["a", "0", 1]])
    with pytest.raises(ProtocolError):
        protocol.parse_server(b'{"type":"surprise"}')
