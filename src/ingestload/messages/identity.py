"""The identity of a message inside a field its schema already has (``--envelope-in``): a UUID.

Strict schemas (JSON Schema with ``additionalProperties: false``, Avro, protobuf, seed 001's
consumer that counts fields) reject a message with one member more, so the ``_ingestload``
member cannot travel. Every template has an id field, though (``Header.MessageId: $uuid``), and
a UUID holds 122 free bits — enough for what the verifier needs, checksum included, so the
ledger stays what it is (acked ranges; nothing per message):

=======  ====  ===========================================================================
bits     from  meaning
=======  ====  ===========================================================================
20       run   the first 20 bits of the run id (records of other runs are foreign)
24       prod  the producer id (a sender in this mode draws a 24-bit id; a clash of two
               senders' ids is reported by the ledger merge and makes the verdict INCONCLUSIVE)
36       seq   the producer's seq (6.9 × 10¹⁰ messages per producer and run)
10       tag   the low 10 bits of the topic tag (CRC-32 of the topic the message is meant for)
32       crc   CRC-32 of the message's canonical form with this field set to ``""``
=======  ====  ===========================================================================

laid out as an RFC 9562 version-8 (custom) UUID: ``xxxxxxxx-xxxx-8xxx-Vxxx-xxxxxxxxxxxx``, so
that any UUID validator accepts it. There is no send time: the verifier takes the record's Kafka
timestamp instead (the API's produce time), so end-to-end latency excludes the HTTP hop; a
misrouted message is told from the 10-bit tag, exact as long as the run's topics have distinct
tags (:func:`tags_distinct`; ingestload warns otherwise).

Example::

    >>> text = pack("00112233445566ff", producer=5, seq=7, tag=0xABCDEF12, crc=0x12345678)
    >>> unpack(text, run_prefix("00112233445566ff"))
    (5, 7, 786, 305419896)
"""

from __future__ import annotations

from collections.abc import Iterable

RUN_BITS, PRODUCER_BITS, SEQ_BITS, TAG_BITS, CRC_BITS = 20, 24, 36, 10, 32
MAX_PRODUCER = (1 << PRODUCER_BITS) - 1
MAX_SEQ = (1 << SEQ_BITS) - 1
TAG_MASK = (1 << TAG_BITS) - 1
_LOW62 = (1 << 62) - 1


def run_prefix(run_id: str) -> int:
    """The run's 20-bit mark in an identity UUID."""
    return int(run_id[:5], 16)


def run_marker(run_id: str) -> bytes:
    """The first 5 hex digits of every identity UUID of this run, quoted: a cheap pre-filter."""
    return b'"' + run_id[:5].lower().encode()


def pack(run_id: str, producer: int, seq: int, tag: int, crc: int) -> str:
    """The identity UUID (lower-case text) of one message."""
    if not 0 <= producer <= MAX_PRODUCER or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"producer {producer} or seq {seq} does not fit an identity UUID")
    n = run_prefix(run_id)
    n = (n << PRODUCER_BITS) | producer
    n = (n << SEQ_BITS) | seq
    n = (n << TAG_BITS) | (tag & TAG_MASK)
    n = (n << CRC_BITS) | crc
    value = ((n >> 74) << 80) | (0x8 << 76) | (((n >> 62) & 0xFFF) << 64) | (0b10 << 62) | (n & _LOW62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def unpack(text: object, run: int) -> tuple[int, int, int, int] | None:
    """(producer, seq, 10-bit tag, crc) of an identity UUID of the run marked ``run``, else ``None``."""
    if not isinstance(text, str) or len(text) != 36:
        return None
    try:
        value = int(text.replace("-", ""), 16)
    except ValueError:
        return None
    if (value >> 76) & 0xF != 0x8 or (value >> 62) & 0b11 != 0b10:
        return None
    n = ((value >> 80) << 74) | (((value >> 64) & 0xFFF) << 62) | (value & _LOW62)
    if n >> (PRODUCER_BITS + SEQ_BITS + TAG_BITS + CRC_BITS) != run:
        return None
    crc = n & 0xFFFFFFFF
    n >>= CRC_BITS
    tag = n & TAG_MASK
    n >>= TAG_BITS
    return (n >> SEQ_BITS) & MAX_PRODUCER, n & MAX_SEQ, tag, crc


def tags_distinct(tags: Iterable[int]) -> bool:
    """Whether the 10-bit tags of these topic tags are all different (misrouting is then exact)."""
    tags = list(tags)
    return len({t & TAG_MASK for t in tags}) == len(set(tags))
