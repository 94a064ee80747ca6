"""Shared helpers for the ingest API tests: valid bodies with ids, and what landed in Kafka."""

import time
from collections import Counter

import orjson

from ingestload.kafka.admin import read_to_end
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory

ENVELOPE = b"_ingestload"


def bodies(msg_type: str, n: int, tag: str) -> list[bytes]:
    """``n`` valid ``msg_type`` messages, each with ``"_ingestload": {"id": "TAG-i"}`` as last member."""
    factory = MessageFactory(Catalogue.load(), seed=len(tag))
    out: list[bytes] = []
    while len(out) < n:
        topic, value = factory.next(time.time_ns())
        if topic == "gov-" + msg_type:
            out.append(value[:-1] + b',"_ingestload":{"id":"%s-%d"}}' % (tag.encode(), len(out)))
    return out


def batch(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def landed(kafka: str, topics: list[str]) -> list[bytes]:
    """Every message value on ``topics``, read to the end."""
    return [m.value() for chunk in read_to_end({"bootstrap.servers": kafka}, topics) for m in chunk]


def ids(values: list[bytes]) -> Counter[str]:
    """How often each envelope id occurs among ``values``."""
    return Counter(orjson.loads(v)["_ingestload"]["id"] for v in values)
