"""An independent reader for the tests: what of a run is in Kafka, found by code that shares nothing
with ingestload's verifier or readers — its own consumer loop, its own envelope parsing and building,
its own CRC-32 and its own canonical JSON, written from the envelope's description in docs/paths.md
(version 2, run id, producer id, seq, sent-at µs, CRC-32 of the value, CRC-32 of the meant-for topic;
on the HTTP path the same 41 bytes as 82 hex digits in a JSON member, the CRC over the message without
that member with sorted keys).

Unit tests build their messages with :func:`envelope` and :func:`crc32` here (tests/unit/fakes.py),
so that the verifier is checked against an envelope it did not write.

Tests that judge the verdict know the truth from what they injected; where they need what the
broker holds (a broker that lost its log, a count to compare with `acked`), they read it here.

    copies = read_copies(bootstrap, topics, run_id)
    by_message = group(copies)              # (producer, seq) -> [Copy, …]
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

# The envelope, as documented in docs/paths.md: version 2, run id, producer id, seq, sent-at (µs),
# CRC-32 of the value, CRC-32 of the name of the topic the message was meant for.
_ENVELOPE = struct.Struct(">B8sQQqII")


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def crc32(data: bytes, start: int = 0) -> int:
    """CRC-32 (IEEE 802.3, reflected, as in zip and Ethernet), computed here byte by byte; ``start``
    continues from an earlier CRC (as ``zlib.crc32(data, start)`` is documented to)."""
    crc = start ^ 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def canonical(document) -> bytes:
    """A JSON document in the form the HTTP path's CRC covers: RFC 8785 (:func:`jcs`, this module's
    own implementation)."""
    return jcs(document)


def topic_tag(topic: str) -> int:
    return crc32(topic.encode())


def envelope(run_id: str, producer: int, seq: int, sent_at_us: int, crc: int, meant_for: str) -> bytes:
    """The 41-byte envelope of one message, built from the documented layout."""
    return _ENVELOPE.pack(2, bytes.fromhex(run_id), producer, seq, sent_at_us, crc, topic_tag(meant_for))


@dataclass(frozen=True)
class Copy:
    """One record of the run found on a topic."""

    topic: str
    partition: int
    offset: int
    producer: int
    seq: int
    meant_for: int
    """CRC-32 of the topic the sender meant it for."""
    intact: bool
    """The value matches the checksum in its envelope."""
    timestamp_ms: int = -1
    """The record's timestamp (the producer's clock when it was handed to its client)."""
    tag_mask: int = 0xFFFFFFFF
    """The bits of the topic tag the envelope carries (strict mode: 10)."""

    @property
    def misrouted(self) -> bool:
        return topic_tag(self.topic) & self.tag_mask != self.meant_for


def jcs(value) -> bytes:
    """RFC 8785 written here from the RFC, sharing nothing with ingestload's canonical form."""
    return _jcs(value).encode()


def _jcs(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        out = ['"']
        for ch in value:
            if ch in '"\\':
                out.append("\\" + ch)
            elif ch in _SHORT:
                out.append(_SHORT[ch])
            elif ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return "".join(out) + '"'
    if isinstance(value, int | float):
        return _number(float(value) if isinstance(value, float) else value)
    if isinstance(value, list):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
    return "{" + ",".join(_jcs(k) + ":" + _jcs(value[k]) for k in keys) + "}"


_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _number(x) -> str:
    """ECMAScript's Number.prototype.toString for a double (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, int):
        x = float(x)
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    digits_text, _, exp_text = f"{x!r}".partition("e")  # repr: the shortest digits that round-trip
    whole, _, frac = digits_text.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole.lstrip("0")) + int(exp_text or 0)  # value = 0.DIGITS × 10**n
    if not whole.lstrip("0"):  # 0.000123 → digits 123, n = -3
        n = int(exp_text or 0) - (len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    return digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def _strict_identity(text, run: bytes):
    """(producer, seq, 10-bit tag, crc) of a strict-mode identity UUID of the run (layout in the docs)."""
    try:
        value = uuid.UUID(text).int
    except (ValueError, AttributeError, TypeError):
        return None
    if (value >> 76) & 0xF != 8:
        return None
    bits = ((value >> 80) << 74) | (((value >> 64) & 0xFFF) << 62) | (value & ((1 << 62) - 1))
    if bits >> 102 != int.from_bytes(run, "big") >> 44:
        return None
    return (bits >> 78) & 0xFFFFFF, (bits >> 42) & 0xFFFFFFFFF, (bits >> 32) & 0x3FF, bits & 0xFFFFFFFF


def _bodies(doc, path):
    """The message objects of one record: at ``path``, else the record, its array, or one level down."""
    if path:
        for part in path.split("."):
            doc = doc.get(part) if isinstance(doc, dict) else None
    if isinstance(doc, list):
        return [d for d in doc if isinstance(d, dict)]
    if not isinstance(doc, dict):
        return []
    if path:
        return [doc]
    found = [doc]
    for value in doc.values():
        if isinstance(value, list):
            found += [d for d in value if isinstance(d, dict)]
        elif isinstance(value, dict):
            found.append(value)
    return found


def _envelope_of(message, run: bytes, field: str, envelope_in=None, message_path=None, added=()):
    """[(producer, seq, meant, intact)] of the run's messages in one record."""
    for key, value in message.headers() or []:
        if key == "ingestload":
            if len(value) != _ENVELOPE.size or value[1:9] != run:
                return []
            _, _, producer, seq, _, crc, meant = _ENVELOPE.unpack(value)
            return [(producer, seq, meant, crc32(message.value() or b"") == crc)]
    raw = (message.value() or b"").removeprefix(b"\xef\xbb\xbf").strip()
    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    found = []
    for body in _bodies(doc, message_path):
        if envelope_in is None:
            try:
                env = bytes.fromhex(body.pop(field))
            except (ValueError, TypeError, KeyError, AttributeError):
                continue
            if len(env) != _ENVELOPE.size or env[1:9] != run:
                continue
            _, _, producer, seq, _, crc, meant = _ENVELOPE.unpack(env)
        else:
            holder, key = body, envelope_in
            if key not in holder:
                *parents, key = envelope_in.split(".")
                for part in parents:
                    holder = holder.get(part) if isinstance(holder, dict) else None
            if not isinstance(holder, dict) or key not in holder:
                continue
            ident = _strict_identity(holder[key], run)
            if ident is None:
                continue
            producer, seq, meant, crc = ident
            holder[key] = ""
        for member in added:
            body.pop(member, None)
        found.append((producer, seq, meant, crc32(jcs(body)) == crc))
    return found


def read_copies(
    bootstrap: str,
    topics: list[str],
    run_id: str,
    *,
    field: str = "_ingestload",
    stall_after: float = 60.0,
    envelope_in: str | None = None,
    message_path: str | None = None,
    added: tuple[str, ...] = (),
) -> list[Copy]:
    """Every copy of a message of ``run_id`` on every partition of ``topics``, read from the beginning
    to the end of each partition (call it once nothing writes any more). Raises if the reading stalls.

    HTTP path: the message may be in the ``field`` member or (strict mode) an identity UUID in the
    ``envelope_in`` field; at ``message_path``, else the record, an array, or one level down; the
    members in ``added`` (what the API says it adds) are left out of the checksum."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",  # what anyone reading committed data gets
        }
    )
    run = bytes.fromhex(run_id)
    copies: list[Copy] = []
    try:
        metadata = consumer.list_topics(timeout=20)
        partitions = [
            TopicPartition(topic, p, OFFSET_BEGINNING)
            for topic in topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]
        if not partitions:
            return copies
        consumer.assign(partitions)
        open_ = {(tp.topic, tp.partition) for tp in partitions}
        last = time.monotonic()
        while open_:
            if time.monotonic() - last > stall_after:
                raise AssertionError(f"oracle: reading stalled before the end of {sorted(open_)}")
            for message in consumer.consume(1000, 0.5):
                last = time.monotonic()
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        open_.discard((message.topic(), message.partition()))
                        continue
                    raise AssertionError(f"oracle: {error}")
                for producer, seq, meant, intact in _envelope_of(
                    message, run, field, envelope_in, message_path, added
                ):
                    copies.append(
                        Copy(
                            message.topic(),
                            message.partition(),
                            message.offset(),
                            producer,
                            seq,
                            meant,
                            intact,
                            message.timestamp()[1],
                            1023 if envelope_in else 0xFFFFFFFF,
                        )
                    )
    finally:
        consumer.close()
    return copies


def partition_ends(bootstrap: str, topics: list[str], *, committed: bool, timeout: float = 30.0) -> dict:
    """Each partition's end as ``topic[p]`` → offset: for a committed reader (its last stable offset)
    or, with ``committed=False``, the high watermark — from the end-of-partition event of a consumer
    of the oracle's own that reads from the end (not from a ListOffsets answer)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed" if committed else "read_uncommitted",
        }
    )
    ends: dict[str, int] = {}
    try:
        metadata = consumer.list_topics(timeout=20)
        wanted = [
            TopicPartition(topic, p, OFFSET_END)
            for topic in topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]
        consumer.assign(wanted)
        deadline = time.monotonic() + timeout
        while len(ends) < len(wanted):
            if time.monotonic() > deadline:
                raise AssertionError(f"oracle: no end for some of {topics} within {timeout:g}s")
            for message in consumer.consume(1000, 0.2):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends[f"{message.topic()}[{message.partition()}]"] = message.offset()
    finally:
        consumer.close()
    return ends


def group(copies: list[Copy]) -> dict[tuple[int, int], list[Copy]]:
    """The copies of each message, by (producer, seq)."""
    grouped: dict[tuple[int, int], list[Copy]] = defaultdict(list)
    for copy in copies:
        grouped[(copy.producer, copy.seq)].append(copy)
    return dict(grouped)


def tally(copies: list[Copy], sent: dict[int, tuple[int, int]] | None = None) -> dict[str, int]:
    """The anomalies as docs/verdict.md defines them, counted from the records themselves: every copy on a
    topic other than the one it was meant for is misrouted; every copy on its own topic beyond the first
    is duplicated; every copy whose value fails its checksum is corrupted. With ``sent`` (producer →
    (first seq, how many it sent), what the test knows), a distinct message whose seq its producer never
    sent is phantom, and not seen."""
    misrouted = sum(1 for c in copies if c.misrouted)
    right = [c for c in copies if not c.misrouted]
    distinct_right = {(c.producer, c.seq) for c in right}
    distinct = {(c.producer, c.seq) for c in copies}
    phantom = set()
    if sent is not None:
        for producer, seq in distinct:
            first, count = sent.get(producer, (0, 0))
            if not first <= seq < first + count:
                phantom.add((producer, seq))
    return {
        "records": len(copies),
        "seen": len(distinct - phantom),
        "phantom": len(phantom),
        "misrouted": misrouted,
        "duplicated": len(right) - len(distinct_right),
        "corrupted": sum(1 for c in copies if not c.intact),
    }


def wait_for_records(bootstrap: str, topics: list[str], at_least: int, timeout: float = 60.0) -> int:
    """Block (cooperatively under gevent) until ``topics`` hold at least ``at_least`` records in all;
    for timing a fault by progress, not by the clock. Raises when it does not happen in ``timeout``.

    Each partition's end is taken from the end-of-partition events of a consumer reading at the
    end, not from a ListOffsets answer: the embedded broker answers that with the start of the last
    record batch, which stays behind for good when a run's last batches are large (a backlog sent
    after a reconnect)."""
    import gevent

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"oracle-{uuid.uuid4().hex}",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    ends: dict[tuple[str, int], int] = {}
    assigned: set[tuple[str, int]] = set()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            metadata = consumer.list_topics(timeout=10)
            present = {
                (topic, p)
                for topic in topics
                if topic in metadata.topics
                for p in metadata.topics[topic].partitions
            }
            if present - assigned:
                consumer.incremental_assign([TopicPartition(t, p, OFFSET_END) for t, p in present - assigned])
                assigned |= present
            for message in consumer.consume(10_000, 0.1):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    ends[(message.topic(), message.partition())] = message.offset()
            if sum(ends.values()) >= at_least:
                return sum(ends.values())
            gevent.sleep(0.05)
        raise AssertionError(
            f"oracle: {sum(ends.values())} (fewer than {at_least}) records on {topics} after {timeout:g}s"
        )
    finally:
        consumer.close()
