"""Rate profiles: how the target message rate changes over a run, as pure functions of time.

A profile is a list of stages in a YAML file (see ``mocks/profiles/``)::

    name: ramp, hold, step, spike, ramp down
    stages:
      - {kind: ramp,  from: 0, to: 5000, duration: 60s}   # linear ramp
      - {kind: hold,  duration: 5m}                        # keep the current rate
      - {kind: step,  to: 10000, duration: 2m}             # jump, then hold
      - {kind: spike, factor: 3, duration: 10s}            # 3 × the current rate, then back
      - {kind: ramp,  to: 0, duration: 30s}

=======  ======================================  =====================================
kind     keys                                    rate during the stage
=======  ======================================  =====================================
ramp     ``to``, ``duration``, [``from``]        linear from ``from`` (default: the
                                                 rate before) to ``to``
hold     ``duration``, [``rate``]                ``rate`` (default: the rate before)
step     ``to``, ``duration``                    ``to``
spike    ``duration``, ``to`` or ``factor``      ``to`` or ``factor`` × the rate before;
                                                 the next stage starts from the rate
                                                 before the spike
=======  ======================================  =====================================

Rates are messages per second (≥ 0); durations are ``90s``, ``5m``, ``1h30m``, ``250ms`` or
plain seconds (> 0). A mistake is one line naming the file, the stage and the fix::

    ramp.yaml: stages[1] (hold).duration: '5min' is not a duration; did you mean '5m'?

The profile itself is a piecewise-linear rate ``r(t)`` for ``0 ≤ t < duration`` (0 outside).
:meth:`RateProfile.count_until` is its exact integral — a linear ramp is tracked exactly,
not as one-second steps — and :meth:`RateProfile.time_for_count` its inverse (when the
n-th message is due), which the pacer uses to sleep until the next message.

Example::

    profile = RateProfile.load("mocks/profiles/spike.yaml")
    profile.rate_at(30.0)        # 2500.0 (half way up the first ramp)
    profile.count_until(60.0)    # 150000.0 = ∫₀⁶⁰ r(t) dt
    ConstantRate(2775).count_between(0, 10)   # 27750.0
"""

from __future__ import annotations

import bisect
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ingestload.durations import HINT as DURATION_HINT
from ingestload.durations import format_duration, parse_duration
from ingestload.errors import ConfigError, ProfileError

STAGE_KINDS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required keys, optional keys) besides "kind"
    "ramp": (frozenset({"to", "duration"}), frozenset({"from"})),
    "hold": (frozenset({"duration"}), frozenset({"rate"})),
    "step": (frozenset({"to", "duration"}), frozenset()),
    "spike": (frozenset({"duration"}), frozenset({"to", "factor"})),
}
_TOP_KEYS = ("name", "description", "stages")


class RateCurve(Protocol):
    """A target rate over time that the pacer can follow (a profile or a constant rate)."""

    @property
    def duration(self) -> float:
        """Seconds until the curve ends (``math.inf`` for a constant rate)."""
        ...

    @property
    def peak(self) -> float:
        """Highest rate anywhere on the curve."""
        ...

    def rate_at(self, t: float) -> float:
        """Messages per second at time ``t``."""
        ...

    def count_between(self, a: float, b: float) -> float:
        """Messages due in ``[a, b)`` (exact integral; 0 when ``b ≤ a``)."""
        ...

    def time_after(self, a: float, n: float) -> float:
        """The time ``t ≥ a`` at which ``count_between(a, t) == n``; ``math.inf`` if never."""
        ...

    def to_wire(self) -> dict[str, Any]:
        """A msgpack/JSON-able description (for the master → worker message)."""
        ...


@dataclass(frozen=True)
class ConstantRate:
    """The same rate forever: ``--rate``."""

    rate: float
    """Messages per second (≥ 0)."""

    @property
    def duration(self) -> float:
        return math.inf

    @property
    def peak(self) -> float:
        return self.rate

    def rate_at(self, t: float) -> float:
        return self.rate

    def count_between(self, a: float, b: float) -> float:
        return self.rate * (b - a) if b > a else 0.0

    def time_after(self, a: float, n: float) -> float:
        if n <= 0:
            return a
        return a + n / self.rate if self.rate > 0 else math.inf

    def to_wire(self) -> dict[str, Any]:
        return {"constant": self.rate}


@dataclass(frozen=True)
class Stage:
    """One stage of a profile, as written in the file (after defaults are filled in)."""

    kind: str
    """``ramp``, ``hold``, ``step`` or ``spike``."""
    duration: float
    """Seconds (> 0)."""
    start_rate: float
    """Rate at the start of the stage (msg/s)."""
    end_rate: float
    """Rate at the end of the stage (equals ``start_rate`` except for ramps)."""

    def describe(self) -> str:
        """``ramp 0 → 5,000/s over 1m`` and similar, for logs."""
        span = format_duration(self.duration)
        if self.kind == "ramp":
            return f"ramp {self.start_rate:,.0f} → {self.end_rate:,.0f}/s over {span}"
        return f"{self.kind} {self.start_rate:,.0f}/s for {span}"


class RateProfile:
    """A piecewise-linear target rate: stages → ``rate_at``, ``count_until``, ``time_for_count``.

    Build it from a file (:meth:`load`), from a YAML text (:meth:`parse`) or from stages.
    Time is seconds since the profile started; the rate is 0 before 0 and from
    :attr:`duration` on.
    """

    def __init__(self, stages: Sequence[Stage], name: str = "") -> None:
        if not stages:
            raise ProfileError("a rate profile needs at least one stage")
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.name = name
        starts, cum = [], []
        t = count = 0.0
        for stage in self.stages:
            starts.append(t)
            cum.append(count)
            t += stage.duration
            count += (stage.start_rate + stage.end_rate) / 2 * stage.duration
        self._starts = starts
        self._cum = cum
        self.duration: float = t
        """Total seconds."""
        self.total: float = count
        """Messages due over the whole profile (``count_until(duration)``)."""
        self.peak: float = max(max(s.start_rate, s.end_rate) for s in self.stages)
        """Highest rate."""

    # -- the rate as a function of time -------------------------------------------

    def _index(self, t: float) -> int:
        return bisect.bisect_right(self._starts, t) - 1

    def rate_at(self, t: float) -> float:
        """Target msg/s at ``t`` seconds (0 outside the profile)."""
        if t < 0 or t >= self.duration:
            return 0.0
        i = self._index(t)
        stage = self.stages[i]
        return stage.start_rate + (stage.end_rate - stage.start_rate) * (t - self._starts[i]) / stage.duration

    def count_until(self, t: float) -> float:
        """Messages due in ``[0, t)``: the exact integral of :meth:`rate_at` (fractional)."""
        if t <= 0:
            return 0.0
        if t >= self.duration:
            return self.total
        i = self._index(t)
        stage = self.stages[i]
        dt = t - self._starts[i]
        slope = (stage.end_rate - stage.start_rate) / stage.duration
        return self._cum[i] + stage.start_rate * dt + slope * dt * dt / 2

    def time_for_count(self, n: float) -> float:
        """The earliest ``t`` with ``count_until(t) ≥ n`` (``math.inf`` when ``n > total``)."""
        if n <= 0:
            return 0.0
        if n > self.total:
            return math.inf
        # the stage in which the count passes n: the last one that starts below n
        i = max(0, bisect.bisect_left(self._cum, n) - 1)
        stage = self.stages[i]
        rest = n - self._cum[i]
        r0 = stage.start_rate
        slope = (stage.end_rate - r0) / stage.duration
        if slope == 0:
            dt = rest / r0
        else:
            # r0·dt + slope·dt²/2 = rest, in the form that stays accurate for both signs of slope
            dt = 2 * rest / (r0 + math.sqrt(max(0.0, r0 * r0 + 2 * slope * rest)))
        return self._starts[i] + min(max(dt, 0.0), stage.duration)

    # RateCurve, so that the pacer can follow a profile like a constant rate

    def count_between(self, a: float, b: float) -> float:
        """Messages due in ``[a, b)``."""
        return self.count_until(b) - self.count_until(a) if b > a else 0.0

    def time_after(self, a: float, n: float) -> float:
        """When ``n`` more messages than were due at ``a`` are due."""
        if n <= 0:
            return a
        return max(a, self.time_for_count(self.count_until(a) + n))

    def to_wire(self) -> dict[str, Any]:
        return {"stages": [[s.kind, s.duration, s.start_rate, s.end_rate] for s in self.stages]}

    # -- building ------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> RateProfile:
        """Read and validate a profile file; raises :class:`ProfileError` naming the fix."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"{path}: cannot read the rate profile: {e.strerror}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<profile>") -> RateProfile:
        """Validate a profile given as YAML text (``source`` names it in errors)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise ProfileError(f"{source}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
        return cls.from_data(data, source)

    @classmethod
    def from_data(cls, data: Any, source: str = "<profile>") -> RateProfile:
        """Validate a profile already read into Python data (a mapping with ``stages``)."""
        if not isinstance(data, dict):
            raise ProfileError(
                f"{source}: a rate profile is a mapping with 'stages' (a list), "
                "e.g. stages: [{kind: hold, rate: 2775, duration: 5m}]"
            )
        for key in data:
            if key not in _TOP_KEYS:
                raise ProfileError(f"{source}: unknown key {key!r}{_did_you_mean(str(key), _TOP_KEYS)}")
        stages_data = data.get("stages")
        if not isinstance(stages_data, list) or not stages_data:
            raise ProfileError(
                f"{source}: 'stages' must be a non-empty list, e.g. stages: [{{kind: hold, rate: 2775, "
                "duration: 5m}]"
            )
        stages: list[Stage] = []
        before: float | None = None  # the rate the next stage starts from
        for index, raw in enumerate(stages_data):
            stage, before = _stage(raw, f"{source}: stages[{index}]", before)
            stages.append(stage)
        profile = cls(stages, name=str(data.get("name") or Path(source).stem))
        if profile.total <= 0:
            raise ProfileError(f"{source}: every stage has rate 0; give at least one stage a rate above 0")
        return profile

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RateProfile:
        """The inverse of :meth:`to_wire`."""
        return cls([Stage(str(k), float(d), float(r0), float(r1)) for k, d, r0, r1 in data["stages"]])

    def describe(self) -> str:
        """One line: name, duration, peak, total and the stages."""
        return (
            f"{self.name or 'profile'}: {format_duration(self.duration)}, peak {self.peak:,.0f}/s, "
            f"{self.total:,.0f} messages: " + "; ".join(s.describe() for s in self.stages)
        )


def curve_from_wire(data: Mapping[str, Any] | None) -> RateCurve | None:
    """A curve from :meth:`RateCurve.to_wire` data; ``None`` stays ``None`` (unlimited)."""
    if data is None:
        return None
    if "constant" in data:
        return ConstantRate(float(data["constant"]))
    return RateProfile.from_wire(data)


# -- validation of one stage ------------------------------------------------------------


#: Words people write for a stage key, and the key they mean.
_SYNONYMS = {
    "over": "duration",
    "for": "duration",
    "length": "duration",
    "target": "to",
    "end": "to",
    "start": "from",
}


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = (
        [_SYNONYMS[word]] if _SYNONYMS.get(word) in choices else difflib.get_close_matches(word, choices, n=1)
    )
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (allowed: {', '.join(choices)})"


def _rate(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileError(
            f"{where}: {value!r} is not a rate; give messages per second as a number, e.g. 2775"
        )
    if value < 0:
        raise ProfileError(f"{where}: {value!r} is not allowed; rates are messages per second ≥ 0")
    return float(value)


def _stage(raw: Any, where: str, before: float | None) -> tuple[Stage, float | None]:
    """One validated stage and the rate the following stage starts from."""
    if not isinstance(raw, dict):
        raise ProfileError(
            f"{where}: a stage is a mapping with 'kind', e.g. {{kind: ramp, to: 5000, duration: 60s}}"
        )
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in STAGE_KINDS:
        if kind is None:
            raise ProfileError(f"{where}: missing 'kind' (one of {', '.join(STAGE_KINDS)})")
        raise ProfileError(
            f"{where}: unknown stage kind {kind!r}{_did_you_mean(str(kind), list(STAGE_KINDS))}"
        )
    where = f"{where} ({kind})"
    required, optional = STAGE_KINDS[kind]
    allowed = ["kind", *sorted(required | optional)]
    for key in raw:
        if key not in allowed:
            raise ProfileError(f"{where}: unknown key {key!r}{_did_you_mean(str(key), allowed)}")
    for key in sorted(required):
        if key not in raw:
            example = "60s" if key == "duration" else "5000"
            raise ProfileError(f"{where}: missing {key!r} (e.g. {key}: {example})")
    try:
        duration = parse_duration(raw["duration"], where=f"{where}.duration")
    except ProfileError:
        raise
    except ConfigError as e:
        raise ProfileError(str(e)) from None
    if duration <= 0:
        raise ProfileError(f"{where}.duration: {raw['duration']!r} must be longer than 0; {DURATION_HINT}")

    def rate_or_before(key: str) -> float:
        if key in raw:
            return _rate(raw[key], f"{where}.{key}")
        if before is None:
            raise ProfileError(
                f"{where}: missing {key!r}; the first stage has no rate before it to continue from"
            )
        return before

    if kind == "ramp":
        start = (
            _rate(raw["from"], f"{where}.from") if "from" in raw else (before if before is not None else 0.0)
        )
        end = _rate(raw["to"], f"{where}.to")
        return Stage(kind, duration, start, end), end
    if kind == "hold":
        rate = rate_or_before("rate")
        return Stage(kind, duration, rate, rate), rate
    if kind == "step":
        rate = _rate(raw["to"], f"{where}.to")
        return Stage(kind, duration, rate, rate), rate
    # spike: 'to' or 'factor' (exactly one), then back to the rate before
    if ("to" in raw) == ("factor" in raw):
        raise ProfileError(f"{where}: give exactly one of 'to' (a rate) or 'factor' (× the rate before)")
    if "to" in raw:
        rate = _rate(raw["to"], f"{where}.to")
    else:
        factor = _rate(raw["factor"], f"{where}.factor")
        if before is None:
            raise ProfileError(f"{where}: 'factor' needs a rate before the spike; give 'to' (a rate) instead")
        rate = factor * before
    return Stage(kind, duration, rate, rate), before
