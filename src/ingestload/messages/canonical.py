"""The canonical form a message is checked in on the HTTP path: RFC 8785 (JSON Canonicalization Scheme).

An ingest API of someone else's design rarely forwards our bytes: Node.js and Go parse and
re-serialise (``59.0`` → ``59``, ``1e3`` → ``1000``, other key order, no spaces, other escapes),
Python's ``json.dumps`` escapes every non-ASCII character. What survives every such round trip is
the JSON *value*; RFC 8785 defines one byte string per value (members sorted by UTF-16 code
units, numbers as ECMAScript prints them, minimal string escapes), and the envelope's checksum on
the HTTP path is the CRC-32 of that byte string. A changed value changes it; a re-serialisation
does not.

The implementation is the maintained ``rfc8785`` package (Trail of Bits), pure Python and about
20 µs per message — too slow for the verifier's hot path. So :func:`checks_out` first tries
orjson's sorted-keys form (0.3 µs), which *is* the canonical form for every value without a
fractional or exponent number and with ASCII member names (what a byte-forwarding or a Node/Go
API writes for our messages), and only on a mismatch asks ``rfc8785``. The shortcut cannot pass a
changed value: orjson's output parses back to exactly the value it printed, so equal bytes mean
an equal value.

Example::

    >>> canonical_checksum({"b": 59.0, "a": 1e3}) == canonical_checksum({"a": 1000, "b": 59})
    True
    >>> checks_out({"a": 1000, "b": 59}, canonical_checksum({"b": 59.0, "a": 1e3}))
    True
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
import rfc8785

_SORTED = orjson.OPT_SORT_KEYS


def canonical(value: Any) -> bytes:
    """The RFC 8785 form of a JSON value (parsed: dicts, lists, str, int, float, bool, None).

    Integers beyond ±2**53 have no canonical form (I-JSON); such a value is written as orjson
    writes it, so that a byte-forwarding API still checks out (a JavaScript API could not carry it
    intact anyway).
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        return orjson.dumps(value, option=_SORTED)


def canonical_checksum(value: Any) -> int:
    """CRC-32 of :func:`canonical` — the checksum the envelope carries on the HTTP path."""
    return zlib.crc32(canonical(value))


def checks_out(value: Any, crc: int) -> bool:
    """Whether ``value`` is the value whose canonical checksum is ``crc`` (fast for the usual case)."""
    return quick_checks_out(value, crc) or slow_checks_out(value, crc)


def quick_checks_out(value: Any, crc: int) -> bool:
    """The shortcut of :func:`checks_out` alone: ``True`` is certain, ``False`` may be a false alarm
    (a fractional number, a non-ASCII member name) that :func:`slow_checks_out` settles."""
    try:
        return zlib.crc32(orjson.dumps(value, option=_SORTED)) == crc
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: only rfc8785 can say
        return False


def slow_checks_out(value: Any, crc: int) -> bool:
    """:func:`checks_out` by RFC 8785 proper (about 20 µs a message)."""
    try:
        return zlib.crc32(rfc8785.dumps(value)) == crc
    except rfc8785.CanonicalizationError:
        return False


def number_text(value: int | float) -> str:
    """A number as RFC 8785 (ECMAScript) prints it: ``59.0`` → ``59``, ``1e21`` → ``1e+21``."""
    return canonical(value).decode()
