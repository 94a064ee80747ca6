"""Splitting a JSON array into the raw bytes of its elements (batch items reach Kafka as sent)."""

import json
import random

import orjson
import pytest

from ingestload.api.jsonsplit import items, split_array


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[]", []),
        (b"[ \n ]", []),
        (b"[1]", [b"1"]),
        (
            b'[ {"a": [1, {"b": "]}[,\\""}]} , "x,y", null, true, -1.5e3 ]\n',
            [b'{"a": [1, {"b": "]}[,\\""}]}', b'"x,y"', b"null", b"true", b"-1.5e3"],
        ),
        (b"[[],{}]", [b"[]", b"{}"]),
        (b'[ "\\\\", "\\\\\\"" ]', [b'"\\\\"', b'"\\\\\\""']),
    ],
)
def test_split_array(body, expected):
    """Elements are cut at top-level commas only; brackets and commas inside strings do not count."""
    assert split_array(body) == expected


def test_random_arrays_in_every_style():
    """For random nested arrays, written compactly, indented or with non-ASCII text, each element's bytes
    parse back to the element."""
    rnd = random.Random(1)

    def value(depth: int = 0):
        k = rnd.random()
        if depth > 3 or k < 0.3:
            return rnd.choice([1, -2.5, 'a,]}"{[', None, True, "\\", "é"])
        if k < 0.6:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        return {f'k{i},"]': value(depth + 1) for i in range(rnd.randint(0, 3))}

    for _ in range(500):
        array = [value() for _ in range(rnd.randint(0, 5))]
        for body in (
            orjson.dumps(array),
            json.dumps(array).encode(),
            json.dumps(array, indent=2).encode(),
            json.dumps(array, ensure_ascii=False).encode(),
        ):
            raw = items(body, orjson.loads(body))
            assert [orjson.loads(r) for r in raw] == array
            assert all(r in body for r in raw)


def test_compact_input_comes_back_byte_identical():
    """orjson-style compact input takes the fast path and yields the very bytes that were sent."""
    body = b'[{"a":1,"b":[1.5,"x"]},{"c":null}]'
    assert items(body, orjson.loads(body)) == [b'{"a":1,"b":[1.5,"x"]}', b'{"c":null}']


def test_non_canonical_numbers_are_kept():
    """A number written as 1e2 stays 1e2 (a re-encoding would turn it into 100.0)."""
    body = b'[{"n": 1e2}]'
    assert items(body, orjson.loads(body)) == [b'{"n": 1e2}']
