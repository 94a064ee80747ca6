"""Durations as people write them: ``90s``, ``5m``, ``1h30m``, ``250ms`` or plain seconds.

Used by rate profiles and by options that take a duration (``--min-rate-window``). A unit
typo is answered with the spelling that would have worked, never guessed silently.

Example::

    >>> parse_duration("1h30m"), parse_duration("90s"), parse_duration(2.5)
    (5400.0, 90.0, 2.5)
    >>> parse_duration("5min", where="stages[1].duration")
    Traceback (most recent call last):
    ...
    ingestload.errors.ConfigError: stages[1].duration: '5min' is not a duration; did you mean '5m'?
"""

from __future__ import annotations

import math
import re

from ingestload.errors import ConfigError

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?\Z"
)
_SECONDS_PER = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: Spellings people try, and the unit they mean.
_UNIT_TYPOS = {
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "msec": "ms",
    "msecs": "ms",
    "millis": "ms",
    "milliseconds": "ms",
    "h": "h",
    "m": "m",
    "s": "s",
    "ms": "ms",
}
_PIECE = re.compile(rf"({_NUMBER})\s*([A-Za-z]+)")
HINT = "use e.g. 90s, 5m, 1h30m, 250ms or plain seconds"


def parse_duration(value: object, *, where: str = "duration") -> float:
    """Seconds in ``value``: a number (seconds) or text like ``1h30m``, ``90s``, ``0.5s``.

    Raises :class:`~ingestload.errors.ConfigError` naming ``where`` and the fix. Zero and
    negative durations are returned as they are; callers decide whether they are allowed.
    """
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: {value!r} is not a duration; {HINT}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        compact = re.sub(r"\s+", "", text)
        try:
            seconds = float(compact)
        except ValueError:
            match = _DURATION.match(compact)
            if not compact or match is None or not any(match.groupdict().values()):
                raise ConfigError(f"{where}: {text!r} is not a duration; {_suggest(text)}") from None
            seconds = sum(float(v) * _SECONDS_PER[k] for k, v in match.groupdict().items() if v)
    if not math.isfinite(seconds):
        raise ConfigError(f"{where}: {value!r} is not a duration; {HINT}")
    return seconds


def format_duration(seconds: float) -> str:
    """``90`` → ``1m30s``, ``0.25`` → ``250ms`` (inverse of :func:`parse_duration`)."""
    if seconds < 1 and seconds > 0:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    secs_f = secs + (seconds - whole)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    if secs_f or not text:
        text += f"{secs_f:g}s"
    return text


def _suggest(text: str) -> str:
    """'did you mean …' when every piece of ``text`` is a number and a known misspelt unit."""
    pieces = _PIECE.findall(text)
    rebuilt = "".join(f"{n}{u}" for n, u in pieces)
    if pieces and re.sub(r"\s+", "", text) == rebuilt:
        units = [_UNIT_TYPOS.get(u.lower()) for _, u in pieces]
        if all(units):
            return f"did you mean {''.join(f'{n}{u}' for (n, _), u in zip(pieces, units, strict=True))!r}?"
    return HINT
