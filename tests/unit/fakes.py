"""Stand-ins for confluent-kafka Message objects, for pure verifier logic."""

from dataclasses import dataclass, field

import orjson

from ingestload.messages.envelope import (
    HEADER,
    Envelope,
    body_checksum,
    checksum,
    encode,
    encode_text,
    topic_tag,
)

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
    tag = topic_tag(topic if meant_for is None else meant_for)
    env = Envelope(run, producer, seq, sent_at_us, checksum(value) if crc is None else crc, tag)
    return Msg(topic, partition, offset, value, [(HEADER, encode(env))])


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
    tag = topic_tag(topic if meant_for is None else meant_for)
    env = Envelope(RUN, producer, seq, sent_at_us, body_checksum(body), tag)
    return Msg(topic, partition, offset, orjson.dumps({field_name: encode_text(env), **body}))
