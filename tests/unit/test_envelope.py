"""The envelope header: encoding, decoding and the fast writer."""

import pytest

from ingestload.errors import EnvelopeError
from ingestload.messages.envelope import (
    HEADER,
    SIZE,
    Envelope,
    EnvelopeWriter,
    checksum,
    decode,
    encode,
    find,
    seq_of,
    topic_tag,
)

ENV = Envelope(
    "00112233445566ff",
    2**64 - 1,
    2**64 - 2,
    1_700_000_000_123_456,
    checksum(b'{"a":1}'),
    topic_tag("gov-alarm"),
)


def test_round_trip():
    """encode/decode keep every field, including the extremes of the integer ranges."""
    assert decode(encode(ENV)) == ENV
    assert len(encode(ENV)) == SIZE == 41


def test_writer_matches_encode():
    """The hot-path writer produces the same bytes as encode()."""
    writer = EnvelopeWriter(ENV.run_id, ENV.producer_id)
    assert writer.pack(ENV.seq, ENV.sent_at_us, ENV.checksum, ENV.topic_tag) == encode(ENV)


def test_seq_of_reads_only_the_seq():
    """seq_of() extracts the seq without a full decode."""
    assert seq_of(encode(ENV)) == ENV.seq


@pytest.mark.parametrize("value", [b"", b"\x02" * 40, b"\x01" + encode(ENV)[1:], encode(ENV) + b"x"])
def test_decode_rejects_what_is_not_an_envelope(value):
    """Wrong length or version is an EnvelopeError, not garbage fields."""
    with pytest.raises(EnvelopeError):
        decode(value)


def test_find_among_headers():
    """find() picks our header among others and ignores foreign or broken ones."""
    assert find([("trace", b"x"), (HEADER, encode(ENV))]) == ENV
    assert find([("trace", b"x")]) is None
    assert find(None) is None
    assert find([(HEADER, b"broken")]) is None


def test_topic_tag_is_the_crc32_of_the_topic_name():
    """The tag names a topic independently of this code: CRC-32 of its UTF-8 name."""
    import zlib

    assert topic_tag("gov-alarm") == zlib.crc32(b"gov-alarm") != topic_tag("gov-fault")
