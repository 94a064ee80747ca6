"""Durations as people write them, and the fixes suggested for typos."""

import pytest

from ingestload.durations import format_duration, parse_duration
from ingestload.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h 30m 10s", 5410.0),
        ("300", 300.0),
        (300, 300.0),
        (2.5, 2.5),
        ("1.5s", 1.5),
        ("250ms", 0.25),
        ("2m500ms", 120.5),
    ],
)
def test_accepted_spellings(text, seconds):
    """Units h, m, s, ms (combined, with or without spaces) and plain seconds are understood."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("5min", "did you mean '5m'?"),
        ("5 mins", "did you mean '5m'?"),
        ("10sec", "did you mean '10s'?"),
        ("2hrs", "did you mean '2h'?"),
        ("1h30min", "did you mean '1h30m'?"),
        ("5M", "did you mean '5m'?"),
        ("soon", "use e.g. 90s, 5m, 1h30m, 250ms or plain seconds"),
        ("1m30", "use e.g. 90s, 5m, 1h30m, 250ms or plain seconds"),
        ("", "use e.g. 90s"),
    ],
)
def test_typos_name_the_place_and_the_fix(text, fix):
    """A unit typo is an error that names where it is and the spelling that would work."""
    with pytest.raises(ConfigError) as e:
        parse_duration(text, where="stages[1].duration")
    assert str(e.value).startswith(f"stages[1].duration: {text!r} is not a duration; ")
    assert fix in str(e.value)


@pytest.mark.parametrize("value", [None, True, float("inf"), float("nan")])
def test_non_durations_are_refused(value):
    """None, booleans and non-finite numbers are not durations."""
    with pytest.raises(ConfigError):
        parse_duration(value)


def test_format_is_the_inverse_of_parse():
    """format_duration writes what parse_duration reads back."""
    for seconds in (0.25, 1, 59.5, 90, 3600, 5400, 3661.5):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
    assert format_duration(90) == "1m30s"
