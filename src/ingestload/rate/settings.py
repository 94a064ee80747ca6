"""The rate's options and settings: target or profile, split between paths, lateness, guard.

Example::

    rate = RateSettings.from_values(read(OPTIONS, namespace, os.environ))
    curve = ConstantRate(rate.target) if rate.profile is None else RateProfile.load(rate.profile)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ingestload.errors import ConfigError
from ingestload.options import (
    Option,
    Values,
    build,
    declared,
    number,
    option,
    pairs,
    positive_duration,
    settings_class,
)
from ingestload.rate.delivered import LoadThresholds

#: Target msg/s when neither ``--rate`` nor ``--rate-profile`` is given.
DEFAULT_RATE = 1000.0


def parse_rate_split(flag: str, value: Any) -> dict[str, float] | None:
    """``"kafka=0.7,api=0.3"`` → ``{"kafka": 0.7, "api": 0.3}`` (weights; ``None`` stays ``None``).

    Example::

        >>> parse_rate_split("--rate-split", "kafka=7, api=3")
        {'kafka': 7.0, 'api': 3.0}
    """
    syntax = "PATH=WEIGHT[,PATH=WEIGHT…], e.g. kafka=0.7,api=0.3"
    found = pairs(flag, value, syntax)
    if found is None:
        return None
    hint = f"{flag}: {str(value).strip()!r} is not valid; expected {syntax}"
    split: dict[str, float] = {}
    for path, weight in found:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", path):
            raise ConfigError(hint)
        try:
            share = float(weight)
        except ValueError:
            raise ConfigError(hint) from None
        if not math.isfinite(share) or share < 0:
            raise ConfigError(f"{flag}: {path}={weight} is not allowed; weights are numbers ≥ 0")
        split[path] = share
    if not any(split.values()):
        raise ConfigError(
            f"{flag}: {str(value).strip()!r} gives every path weight 0; give at least one a weight > 0"
        )
    return split


def _rate(flag: str, value: Any) -> float | None:
    if value is None:  # not given: DEFAULT_RATE, unless a profile drives the rate
        return None
    return number(float, minimum=0, what="messages per second ≥ 0 (0 = unlimited)")(flag, value)


def _ratio(flag: str, value: Any) -> float | None:
    if value is None:
        return None
    what = "a ratio in (0, 1], e.g. 0.95"
    ratio = number(float, minimum=0, what=what)(flag, value)
    if not 0 < ratio <= 1:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected {what}")
    return ratio


def _share(flag: str, value: Any) -> float:
    what = "a share between 0 and 1, e.g. 0.9"
    share = number(float, minimum=0, what=what)(flag, value)
    if share > 1:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected {what}")
    return float(share)


def _window(flag: str, value: Any) -> float:
    seconds = positive_duration(flag, value)
    if seconds is None:
        raise ConfigError(f"{flag}: empty; expected a duration > 0, e.g. 10s")
    return seconds


def _profile(flag: str, value: Any) -> str | None:
    return str(value).strip() if value else None


@settings_class
class RateSettings:
    """What the rate machinery reads: the target (or a profile), its split, lateness, the guard."""

    target: float = option(
        "--rate",
        None,
        _rate,
        "Target messages per second for the whole run (all workers); 0 = as fast as possible. "
        "Default 1000; not together with --rate-profile.",
        "MSGS_PER_S",
        web_ui=True,
    )
    """Target messages per second for the whole run; 0 means as fast as possible."""
    profile: str | None = option(
        "--rate-profile",
        None,
        _profile,
        "A rate profile YAML (stages: ramp, hold, step, spike; see mocks/profiles/) that drives the "
        "target rate instead of --rate; the run ends when the profile ends.",
        "PATH",
        web_ui=True,
    )
    """Rate profile file that drives the run instead of :attr:`target` (loaded where it is used:
    on the master or the local process, never on workers, which receive its stages)."""
    split: Mapping[str, float] | None = option(
        "--rate-split",
        None,
        parse_rate_split,
        "How the target divides between paths, as weights, e.g. kafka=0.7,api=0.3; "
        "default: by the weights of the user classes of each path.",
        "PATH=W,…",
        web_ui=True,
    )
    """Weight per path (``kafka``, ``api``) of the target; ``None``: by user class weights."""
    max_lateness: float | None = option(
        "--max-lateness",
        None,
        positive_duration,
        "Drop (never send, count as dropped) messages further behind their intended time than this, "
        "e.g. 2s; default: send them late (catch up).",
        "DURATION",
        web_ui=True,
    )
    """Seconds behind schedule after which messages are dropped; ``None``: catch up."""
    min_ratio: float | None = option(
        "--min-rate-ratio",
        None,
        _ratio,
        "Fail the run (exit code 5) when the offered rate stays below this share of the target "
        "(e.g. 0.95) for longer than --min-rate-window; default: off.",
        "RATIO",
        web_ui=True,
    )
    """Rate guard: lowest acceptable offered ÷ target; ``None`` turns the guard off."""
    min_window: float = option(
        "--min-rate-window",
        "10s",
        _window,
        "How long the offered rate may stay below --min-rate-ratio.",
        "DURATION",
        web_ui=True,
    )
    """Rate guard: seconds the offered rate may stay below the ratio before the run fails."""
    min_offered: float = option(
        "--min-offered-ratio",
        "0.9",
        _share,
        "The load verdict: each path must send at least this share of its target over the run, or the "
        "run fails (0 = not judged).",
        "RATIO",
        web_ui=True,
    )
    """Load verdict: lowest acceptable sent ÷ target per path over the whole run."""
    max_failed: float = option(
        "--max-failed-ratio",
        "0.01",
        _share,
        "The load verdict: at most this share of each path's sends may fail (refused by the system "
        "under test: 4xx/5xx, connection refused, a broker error), or the run fails (1 = not judged).",
        "RATIO",
        web_ui=True,
    )
    """Load verdict: highest acceptable failed ÷ sent per path."""
    batch_max: int = option(
        "--batch-max",
        "1000",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Most messages a user sends per wake-up before yielding.",
        "N",
    )
    """Most messages one user sends per wake-up."""

    @classmethod
    def from_values(cls, values: Values) -> RateSettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`OPTIONS`;
        ``--rate`` and ``--rate-profile`` together are refused."""
        rate, profile = declared(cls)["target"], declared(cls)["profile"]
        if values[profile] is not None and values[rate] is not None:
            raise ConfigError(
                f"--rate {values.text(rate)} and --rate-profile {values[profile]}: give only one of them "
                "(the profile sets the rate over time)"
            )
        return build(cls, values, target=DEFAULT_RATE if values[rate] is None else values[rate])

    @property
    def load_thresholds(self) -> LoadThresholds:
        """The load verdict's thresholds (:mod:`~ingestload.rate.delivered`)."""
        return LoadThresholds(min_offered_ratio=self.min_offered, max_failed_ratio=self.max_failed)

    @property
    def unlimited(self) -> bool:
        """As fast as possible (``--rate 0``)."""
        return self.target == 0

    def describe(self) -> str:
        """``1000 msg/s``, ``unlimited`` or ``profile PATH``, then the split."""
        shown = "unlimited" if self.target == 0 else f"{self.target:g} msg/s"
        if self.profile:
            shown = f"profile {self.profile}"
        if self.split:
            shown += " split " + ",".join(f"{k}={v:g}" for k, v in self.split.items())
        return shown


#: The rate options, in the order ``--help`` shows them.
OPTIONS: tuple[Option[Any], ...] = tuple(declared(RateSettings).values())
RATE, PROFILE = declared(RateSettings)["target"], declared(RateSettings)["profile"]
