"""The fan-out protocol, v1: what a subscriber and the gateway say to each other (sans I/O).

One WebSocket per subscriber at ``ws://HOST:PORT/v1/stream``; every frame is a JSON text
frame holding one object with a ``type``. Positions are lists of ``[topic, partition, offset]``
triples; an offset in a position is the *next* offset the gateway will deliver from.

Subscriber → gateway::

    {"type": "subscribe", "topics": ["gov-alarm"], "id": "view-7",
     "filter": {"field": "Header.ControllerType", "in": ["LCE", "GCE"]}}     # filter optional
    {"type": "unsubscribe"}
    {"type": "progress"}          # ask for a progress frame as soon as the queue is empty

Gateway → subscriber::

    {"type": "subscribed", "subscription": "w0-12", "id": "view-7", "topics": […], "filter": …,
     "from": [["gov-alarm", 0, 1200], ["gov-alarm", 1, 988], …]}
    {"type": "messages", "messages": [{"topic": "gov-alarm", "partition": 0, "offset": 1200,
     "timestamp": 1764505496789, "envelope": "01…", "value": {…the message JSON…}}, …]}
    {"type": "progress", "positions": [["gov-alarm", 0, 1350], …]}
    {"type": "dropped", "count": 120, "total": 480}
    {"type": "partitions", "from": [["gov-alarm", 3, 0]]}
    {"type": "unsubscribed", "subscription": "w0-12", "reason": "requested",
     "to": [["gov-alarm", 0, 1400], …], "dropped": 480}
    {"type": "error", "error": "unknown_topic", "detail": "…"}

The exactness contract, per subscription:

* ``subscribed.from`` — from these offsets on, every message of the subscribed topics that
  matches the filter is pushed to this subscriber, in offset order per partition;
  ``partitions.from`` adds partitions that appeared later.
* every pushed message carries its ``topic``, ``partition`` and ``offset``, Kafka's
  ``timestamp`` (ms), the ingestload ``envelope`` from the Kafka header as 82 hex digits (or
  ``null``; on the HTTP path the envelope is the ``_ingestload`` member inside ``value``), and
  ``value``: the message JSON as it is in Kafka (a value that is not JSON comes as
  ``"value": null, "value_base64": "…"``).
* ``progress.positions`` — every matching message below these offsets was pushed before this
  frame, or counted in a ``dropped`` frame before it.
* ``dropped`` — the gateway dropped ``count`` messages of this subscription (slow subscriber,
  drop-oldest policy); ``total`` since it subscribed.
* ``unsubscribed.to`` — a clean end: the window was ``[from, to)`` per partition, and every
  matching message in it was pushed before this frame or counted as dropped. ``reason`` is
  ``requested``, ``slow_subscriber`` (disconnect policy: the queue was dropped, then the
  connection is closed) or ``shutting_down`` (SIGTERM).
* a subscription that ends any other way (connection lost) has no known end; its last
  ``progress`` is the most a subscriber can vouch for.

A subscriber that is still subscribed when a test ends takes Kafka's end offsets, read after
the producers drained, as the end of its window.

Example::

    >>> parse_client(b'{"type":"subscribe","topics":["gov-alarm"]}')
    Subscribe(topics=('gov-alarm',), filter=None, id=None)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from ingestload.fanout.errors import ProtocolError
from ingestload.fanout.filters import FieldFilter

PATH = "/v1/stream"
#: Topic and partition: the key of every per-partition map.
TopicPartition = tuple[str, int]
Positions = dict[TopicPartition, int]


class Subscribe(NamedTuple):
    """A ``subscribe`` request."""

    topics: tuple[str, ...]
    """Topics to receive, sorted, without repeats."""
    filter: FieldFilter | None
    """Only messages whose field matches; ``None``: every message of the topics."""
    id: str | None
    """The subscriber's own label, echoed back and shown in the gateway's stats."""


class Unsubscribe(NamedTuple):
    """An ``unsubscribe`` request: end the subscription cleanly."""


class ProgressRequest(NamedTuple):
    """A ``progress`` request: send a progress frame once everything queued was sent."""


ClientMessage = Subscribe | Unsubscribe | ProgressRequest


def parse_client(data: bytes | str) -> ClientMessage:
    """Parse one frame from a subscriber; :class:`ProtocolError` says what the peer did wrong."""
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid_json", "the frame is not JSON; send one JSON object per frame") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", f"expected a JSON object, got {type(message).__name__}")
    kind = message.get("type")
    if kind == "subscribe":
        topics = message.get("topics")
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) and t for t in topics):
            raise ProtocolError(
                "invalid_subscribe", "'topics' must be a non-empty list of topic names, e.g. [\"gov-alarm\"]"
            )
        label = message.get("id")
        if label is not None and (not isinstance(label, str) or len(label) > 200):
            raise ProtocolError("invalid_subscribe", "'id' must be a string of at most 200 characters")
        raw_filter = message.get("filter")
        return Subscribe(
            tuple(sorted(set(topics))),
            None if raw_filter is None else FieldFilter.from_json(raw_filter),
            label,
        )
    if kind == "unsubscribe":
        return Unsubscribe()
    if kind == "progress":
        return ProgressRequest()
    raise ProtocolError(
        "unknown_type", f"unknown message type {kind!r}; expected subscribe, unsubscribe or progress"
    )


# -- rendering (gateway side) -----------------------------------------------------------------


def positions_json(positions: Mapping[TopicPartition, int]) -> list[list[Any]]:
    """Positions as the wire's sorted ``[topic, partition, offset]`` triples."""
    return [[t, p, o] for (t, p), o in sorted(positions.items())]


def positions_from_json(triples: Any) -> Positions:
    """Parse ``[topic, partition, offset]`` triples; :class:`ProtocolError` for anything else."""
    if not isinstance(triples, list):
        raise ProtocolError("invalid_positions", "positions must be a list of [topic, partition, offset]")
    positions: Positions = {}
    for item in triples:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], str)
            or type(item[1]) is not int
            or type(item[2]) is not int
        ):
            raise ProtocolError("invalid_positions", f"not a [topic, partition, offset] triple: {item!r}")
        positions[(item[0], item[1])] = item[2]
    return positions


def render(frame: Mapping[str, Any]) -> bytes:
    """Any control frame as JSON bytes."""
    return orjson.dumps(frame)


def subscribed(subscription: str, request: Subscribe, start: Mapping[TopicPartition, int]) -> bytes:
    return render(
        {
            "type": "subscribed",
            "subscription": subscription,
            "id": request.id,
            "topics": list(request.topics),
            "filter": None if request.filter is None else request.filter.to_json(),
            "from": positions_json(start),
        }
    )


def unsubscribed(subscription: str, reason: str, end: Mapping[TopicPartition, int], dropped: int) -> bytes:
    return render(
        {
            "type": "unsubscribed",
            "subscription": subscription,
            "reason": reason,
            "to": positions_json(end),
            "dropped": dropped,
        }
    )


def progress(positions: Mapping[TopicPartition, int]) -> bytes:
    return render({"type": "progress", "positions": positions_json(positions)})


def dropped(count: int, total: int) -> bytes:
    return render({"type": "dropped", "count": count, "total": total})


def partitions(start: Mapping[TopicPartition, int]) -> bytes:
    return render({"type": "partitions", "from": positions_json(start)})


def error(code: str, detail: str) -> bytes:
    return render({"type": "error", "error": code, "detail": detail})


_MESSAGES_HEAD = b'{"type":"messages","messages":['
_MESSAGES_TAIL = b"]}"


def messages(fragments: Iterable[bytes]) -> bytes:
    """A ``messages`` frame from pre-rendered message objects (see :func:`message_fragment`)."""
    return _MESSAGES_HEAD + b",".join(fragments) + _MESSAGES_TAIL


def message_fragment(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    envelope: bytes | None,
    value: bytes | None,
    value_is_json: bool,
) -> bytes:
    """One pushed message as a JSON object, rendered once and shared by every subscriber.

    ``value`` is spliced in as it is when it is JSON (the caller parsed it), so the bytes a
    subscriber sees are the bytes in Kafka.
    """
    head = orjson.dumps(
        {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp": timestamp_ms,
            "envelope": envelope.hex() if envelope is not None else None,
        }
    )[:-1]
    if value is None:
        return head + b',"value":null}'
    if value_is_json:
        return head + b',"value":' + value + b"}"
    return head + b',"value":null,"value_base64":"' + base64.b64encode(value) + b'"}'


# -- reading (subscriber side) ----------------------------------------------------------------


def parse_server(data: bytes | str) -> dict[str, Any]:
    """One gateway frame as a dict with a known ``type``; :class:`ProtocolError` otherwise."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid_json", "the gateway sent a frame that is not JSON") from None
    if not isinstance(frame, dict) or frame.get("type") not in SERVER_TYPES:
        kind = frame.get("type") if isinstance(frame, dict) else type(frame).__name__
        raise ProtocolError("unknown_type", f"the gateway sent an unknown frame type {kind!r}")
    return frame


SERVER_TYPES = frozenset(
    {"subscribed", "messages", "progress", "dropped", "partitions", "unsubscribed", "error"}
)


def subscribe_request(
    topics: Iterable[str], filter: FieldFilter | None = None, label: str | None = None
) -> bytes:
    """A ``subscribe`` frame."""
    frame: dict[str, Any] = {"type": "subscribe", "topics": sorted(set(topics))}
    if filter is not None:
        frame["filter"] = filter.to_json()
    if label is not None:
        frame["id"] = label
    return render(frame)


UNSUBSCRIBE = render({"type": "unsubscribe"})
PROGRESS = render({"type": "progress"})
