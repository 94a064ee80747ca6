"""Request bodies for bench/api_user.py's bare FastHttpUser, shaped as IngestApiUser shapes its own.

IngestApiUser takes ``batch`` messages from the mix at a time and posts one request per message
type among them (the batch endpoint is per type), so a "batch of 25" is 25 messages spread over
a few requests. :func:`cut` does the same from the same factory, so both sides send requests of
the same sizes; each message carries a 74-hex ``_ingestload`` member as ours do (a fixed one).
"""

from __future__ import annotations

from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory

MEMBER = b'{"_ingestload":"' + b"0" * 74 + b'",'


def factory() -> MessageFactory:
    return MessageFactory(Catalogue.load(), topic_prefix="")  # topic = message type


def cut(source: MessageFactory, batch: int, now_ns: int) -> list[tuple[str, bytes, int]]:
    """The requests for the next ``batch`` messages: (path, body, messages in it)."""
    if batch == 1:
        msg_type, payload = source.next(now_ns)
        return [(f"/v1/messages/{msg_type}", MEMBER + payload[1:], 1)]
    groups: dict[str, list[bytes]] = {}
    for _ in range(batch):
        msg_type, payload = source.next(now_ns)
        groups.setdefault(msg_type, []).append(MEMBER + payload[1:])
    return [
        (f"/v1/messages/{msg_type}:batch", b"[" + b",".join(items) + b"]", len(items))
        for msg_type, items in groups.items()
    ]


def bodies(batch: int, messages: int = 20_000) -> list[tuple[str, bytes, int]]:
    """Requests for ``messages`` mock messages in takes of ``batch``, rendered now."""
    source = factory()
    return [request for _ in range(messages // batch) for request in cut(source, batch, 0)]


def messages_per_request(batch: int) -> float:
    """Mean messages per request when taking ``batch`` at a time."""
    requests = bodies(batch)
    return sum(n for _, _, n in requests) / len(requests)
