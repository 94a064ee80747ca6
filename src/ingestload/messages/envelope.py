"""The envelope: what every message carries so that it can be traced back exactly.

On the Kafka path the envelope is one binary Kafka header, ``ingestload``, 41 bytes::

    offset size  field
         0    1  version (2)
         1    8  run id (8 bytes, shown as 16 hex digits)
         9    8  producer id (unsigned 64-bit, unique per producing process and run)
        17    8  seq (unsigned 64-bit, contiguous per producer, from 0 unless told otherwise)
        25    8  sent_at (signed 64-bit, microseconds since the Unix epoch)
        33    4  checksum (CRC-32 of the message value)
        37    4  topic tag (CRC-32 of the name of the topic the message is meant for)

The topic tag lets a reader tell, message by message, that a message sits on a topic other
than the one its sender meant (*misrouted*) — on the HTTP path too, where the ingest API
chooses the topic: the sender tags the topic the API should route the type to.

One packed header costs a fraction of five text headers to build and to read back,
which matters at hundreds of thousands of messages per second.

On the HTTP path a third-party API will not copy our headers, so the envelope travels
inside the JSON message as a member (default ``_ingestload``) holding the same 41 bytes as
82 hex digits; its checksum is :func:`body_checksum` of the message without that member.

Example::

    >>> env = Envelope("00112233445566ff", 7, 0, 1_700_000_000_000_000, checksum(b"{}"), topic_tag("t"))
    >>> decode(encode(env)) == env
    True
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import NamedTuple

from ingestload.errors import EnvelopeError
from ingestload.messages.canonical import canonical_checksum

HEADER = "ingestload"
VERSION = 2

_LAYOUT = struct.Struct(">B8sQQqII")
_TAIL = struct.Struct(">QqII")
_WHOLE = struct.Struct(">17sQqII")
SIZE = _LAYOUT.size
#: Where the run id sits in an encoded envelope, for readers that only need it.
RUN_ID = slice(1, 9)
#: Byte offset of the seq field, for readers that only need the seq.
SEQ_OFFSET = 17
#: Byte offset of the sent-at field (signed 64-bit µs), for readers that only need the send time.
SENT_AT_OFFSET = 25
_SEQ = struct.Struct(">Q")


def _crc32() -> Callable[[bytes], int]:
    """ISA-L's CRC-32: the same checksum as zlib's, ~2.5× faster on a 300-byte message (SIMD; ~80
    against ~200 ns measured), where zlib's is a large part of a sender's and the verifier's work
    per message. zlib's where isal is not installed."""
    try:
        from isal.isal_zlib import crc32
    except ImportError:  # pragma: no cover - a platform without an isal wheel
        return zlib.crc32
    return crc32


checksum = _crc32()
"""CRC-32 of a payload, as stored in the envelope (zlib's polynomial, computed by ISA-L)."""


def topic_tag(topic: str) -> int:
    """The envelope's tag of a topic: CRC-32 of its name."""
    return zlib.crc32(topic.encode())


class Envelope(NamedTuple):
    """The identity of one message."""

    run_id: str
    """16 hex digits shared by every message of one test run."""
    producer_id: int
    """Unsigned 64-bit id of the producing process for this run."""
    seq: int
    """Position in the producer's contiguous sequence, from 0."""
    sent_at_us: int
    """Microseconds since the epoch when the message was handed to the client."""
    checksum: int
    """CRC-32 of the message value as sent."""
    topic_tag: int
    """CRC-32 of the name of the topic the message is meant for (:func:`topic_tag`)."""


def encode(env: Envelope) -> bytes:
    """The header value for ``env``."""
    return _LAYOUT.pack(
        VERSION,
        bytes.fromhex(env.run_id),
        env.producer_id,
        env.seq,
        env.sent_at_us,
        env.checksum,
        env.topic_tag,
    )


def decode(value: bytes) -> Envelope:
    """Parse a header value; raises :class:`EnvelopeError` when it is not one of ours."""
    if len(value) != SIZE or value[0] != VERSION:
        raise EnvelopeError(f"not an ingestload v{VERSION} envelope ({len(value)} bytes)")
    _, run, producer, seq, sent_at, crc, tag = _LAYOUT.unpack(value)
    return Envelope(run.hex(), producer, seq, sent_at, crc, tag)


def encode_text(env: Envelope) -> str:
    """The envelope as 82 hex digits, for a JSON member on the HTTP path."""
    return encode(env).hex()


def decode_text(text: object) -> Envelope:
    """Parse :func:`encode_text` output; raises :class:`EnvelopeError` for anything else."""
    if not isinstance(text, str) or len(text) != 2 * SIZE:
        raise EnvelopeError("not an ingestload text envelope")
    try:
        return decode(bytes.fromhex(text))
    except ValueError:
        raise EnvelopeError("not an ingestload text envelope") from None


def body_checksum(message: object) -> int:
    """CRC-32 of a JSON message *without* its envelope member, in canonical form (RFC 8785).

    Canonical, so that an ingest API may re-serialise or reorder the JSON it forwards and the
    message still checks out (see :mod:`ingestload.messages.canonical`); any change to a value is
    caught.
    """
    return canonical_checksum(message)


def seq_of(value: bytes) -> int:
    """The seq of an encoded envelope, without decoding the rest."""
    return int(_SEQ.unpack_from(value, SEQ_OFFSET)[0])


def header_of(headers: list[tuple[str, bytes]] | None) -> bytes | None:
    """The raw envelope header value among a message's headers (``None``: there is none).

    The one place that scans headers: readers that only need a field slice the value
    (:func:`seq_of`, :data:`RUN_ID` …) instead of decoding it all.
    """
    for key, value in headers or ():
        if key == HEADER:
            return value
    return None


def is_of_run(value: bytes | None, run: bytes) -> bool:
    """True when a raw header ``value`` is an envelope of the run whose 8-byte id is ``run``."""
    return value is not None and len(value) == SIZE and value[RUN_ID] == run


def find(headers: list[tuple[str, bytes]] | None) -> Envelope | None:
    """The envelope among a message's headers, or ``None`` for a foreign message."""
    value = header_of(headers)
    if value is None:
        return None
    try:
        return decode(value)
    except EnvelopeError:
        return None


class EnvelopeWriter:
    """Builds envelopes for one producer quickly: the constant part is packed once.

    Example::

        writer = EnvelopeWriter("00112233445566ff", producer_id=42)
        header_value = writer.pack(seq=0, sent_at_us=now_us, crc=checksum(value), tag=topic_tag("gov-alarm"))
    """

    __slots__ = ("pack_header", "pack_tail", "prefix", "producer_id", "run_id")

    def __init__(self, run_id: str, producer_id: int) -> None:
        self.run_id = run_id
        self.producer_id = producer_id
        self.prefix = struct.pack(">B8sQ", VERSION, bytes.fromhex(run_id), producer_id)
        """The constant first 17 bytes (version, run id, producer id)."""
        self.pack_tail = _TAIL.pack
        """Packs (seq, sent_at_us, crc, topic tag) into the last 24 bytes; hot loops call it directly."""
        self.pack_header = _WHOLE.pack
        """Packs (:attr:`prefix`, seq, sent_at_us, crc, topic tag) into a header value: one call, no
        concatenation, for the hottest loops."""

    def pack(self, seq: int, sent_at_us: int, crc: int, tag: int) -> bytes:
        """The header value for one message."""
        return self.prefix + self.pack_tail(seq, sent_at_us, crc, tag)
