"""Stand-ins for confluent-kafka Message objects, for pure verifier logic.

The envelopes are built by the tests' own oracle (tests/oracle.py: its own layout, CRC-32 and
canonical JSON, from the docs), never by the product's ``encode``/``body_checksum``/``topic_tag``:
a verifier that misreads the envelope cannot agree with a message built by the same mistake.
"""

import json
from dataclasses import dataclass, field

from tests.oracle import canonical, crc32, envelope

HEADER = "ingestload"

RUN = "00112233445566ff"


@dataclass
class Msg:
    """The subset of confluent_kafka.Message the verifier reads."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes
    _headers: list = field(default_factory=list)

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def value(self):
        return self._value

    def headers(self):
        return self._headers or None

    def timestamp(self):
        return (1, 0)  # TIMESTAMP_CREATE_TIME, the epoch


def kafka_msg(
    producer,
    seq,
    *,
    topic="t",
    partition=0,
    offset=0,
    value=b'{"a":1}',
    sent_at_us=0,
    run=RUN,
    crc=None,
    meant_for=None,
):
    env = envelope(run, producer, seq, sent_at_us, crc32(value) if crc is None else crc, meant_for or topic)
    return Msg(topic, partition, offset, value, [(HEADER, env)])


def http_msg(
    producer,
    seq,
    body,
    *,
    topic="t",
    partition=0,
    offset=0,
    field_name="_ingestload",
    sent_at_us=0,
    meant_for=None,
):
    env = envelope(RUN, producer, seq, sent_at_us, crc32(canonical(body)), meant_for or topic)
    document = {field_name: env.hex(), **body}
    return Msg(topic, partition, offset, json.dumps(document, separators=(",", ":")).encode())
