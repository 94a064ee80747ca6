"""The raw bytes of each element of a JSON array, so that batch items reach Kafka as they were sent.

A batch is parsed once (to validate every item), but what goes to Kafka must be the bytes
the client sent, not a re-encoding: a checksum taken by the client over its own bytes must
still match, and ``1e2`` must not turn into ``100.0``. :func:`items` finds that out cheaply:
when the client wrote compact JSON as orjson does (the usual case), re-encoding the parsed
items reproduces the body exactly and those bytes are used; otherwise the body is split at
its top-level commas by :func:`split_array`, which skips over strings.

Example::

    >>> split_array(b'[ {"a": 1} , [2, 3], "x,y" ]')
    [b'{"a": 1}', b'[2, 3]', b'"x,y"']
"""

from __future__ import annotations

import re
from typing import Any

import orjson

#: A JSON string (escapes included) or one structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


def split_array(body: bytes) -> list[bytes]:
    """The elements of the JSON array ``body`` as raw bytes, surrounding whitespace removed.

    ``body`` must already be known to be a valid JSON array (e.g. ``orjson.loads`` accepted it).
    """
    items: list[bytes] = []
    depth = 0
    start = -1
    for match in _TOKEN.finditer(body):
        char = body[match.start()]
        if char == 0x22:  # a string: nothing inside it counts
            continue
        if char in b"[{":
            depth += 1
            if depth == 1:
                start = match.end()
        elif char in b"]}":
            depth -= 1
            if depth == 0:
                last = body[start : match.start()].strip()
                if last or items:
                    items.append(last)
                break
        elif depth == 1:  # a comma between two elements
            items.append(body[start : match.start()].strip())
            start = match.end()
    return items


def items(body: bytes, parsed: list[Any]) -> list[bytes]:
    """The raw bytes of every element of ``body``, whose parsed value is ``parsed``."""
    encoded = [orjson.dumps(item) for item in parsed]
    if len(body) == sum(map(len, encoded)) + len(encoded) + 1 and body == b"[" + b",".join(encoded) + b"]":
        return encoded  # byte-identical to what was sent
    raw = split_array(body)
    if len(raw) != len(parsed):  # cannot happen for valid JSON; never send the wrong bytes
        raise ValueError(f"split {len(raw)} elements from an array of {len(parsed)}")
    return raw
