"""The tests' own RFC 8785 (tests/oracle.py) and the one the verifier uses (the rfc8785 package) are
written independently; they must agree with the RFC's own examples and with each other."""

import random
import struct

import pytest
import rfc8785

from tests.oracle import jcs

# RFC 8785, Appendix B: IEEE 754 bit patterns and their canonical text.
APPENDIX_B = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "text"), APPENDIX_B)
def test_numbers_as_in_the_rfc(bits, text):
    """Both implementations print the RFC's example numbers exactly as the RFC does."""
    value = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    assert jcs(value) == text.encode()
    assert rfc8785.dumps(value) == text.encode()


def test_the_two_implementations_agree():
    """On 30,000 random doubles and on objects with escapes, non-ASCII and non-BMP member names."""
    rng = random.Random(17)
    for _ in range(10_000):
        for value in (
            struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0],
            rng.uniform(-1e6, 1e6),
            round(rng.uniform(0, 100), 2),
        ):
            if value == value and abs(value) != float("inf"):
                assert jcs(value) == rfc8785.dumps(value), value
    doc = {
        "é": '\u2028\x01\n"\\',
        "b": [1, 2.0, None, True],
        "a": {"z": 1, "y": "x"},
        "\U0001f600": 1,
        "\uffff": 2,
    }
    assert jcs(doc) == rfc8785.dumps(doc)
