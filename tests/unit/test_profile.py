"""Rate profiles: the file format, its errors, and rate/count as exact functions of time."""

import math
from pathlib import Path

import pytest

from ingestload.errors import ProfileError
from ingestload.rate.profile import ConstantRate, RateProfile, Stage, curve_from_wire

PROFILES = Path(__file__).resolve().parents[2] / "mocks" / "profiles"

EXAMPLE = """
name: example
stages:
  - {kind: ramp, from: 0, to: 5000, duration: 60s}
  - {kind: hold, duration: 5m}
  - {kind: step, to: 10000, duration: 2m}
  - {kind: spike, factor: 3, duration: 10s}
  - {kind: ramp, to: 0, duration: 30s}
"""


def example() -> RateProfile:
    return RateProfile.parse(EXAMPLE, "example.yaml")


def test_stages_fill_in_rates_from_the_stage_before():
    """hold continues the ramp's end rate; a spike multiplies it and the next stage resumes from before."""
    p = example()
    assert [(s.kind, s.duration, s.start_rate, s.end_rate) for s in p.stages] == [
        ("ramp", 60.0, 0.0, 5000.0),
        ("hold", 300.0, 5000.0, 5000.0),
        ("step", 120.0, 10000.0, 10000.0),
        ("spike", 10.0, 30000.0, 30000.0),
        ("ramp", 30.0, 10000.0, 0.0),
    ]
    assert (p.duration, p.peak) == (520.0, 30000.0)


def test_rate_at_is_piecewise_linear_and_zero_outside():
    """rate_at interpolates ramps, jumps at steps and is 0 before the start and from the end on."""
    p = example()
    assert p.rate_at(-1) == 0.0
    assert p.rate_at(0) == 0.0
    assert p.rate_at(30) == 2500.0
    assert p.rate_at(59.999) == pytest.approx(5000, rel=1e-4)
    assert p.rate_at(60) == 5000.0
    assert p.rate_at(479) == 10000.0
    assert p.rate_at(485) == 30000.0
    assert p.rate_at(505) == 5000.0
    assert p.rate_at(520) == 0.0


def test_count_until_is_the_exact_integral():
    """count_until integrates ramps exactly (area of a triangle/trapezoid), not in 1-second steps."""
    p = example()
    assert p.count_until(30) == 0.5 * 30 * 2500
    assert p.count_until(60) == 150_000
    assert p.count_until(360) == 150_000 + 5000 * 300
    assert p.total == 150_000 + 1_500_000 + 1_200_000 + 300_000 + 150_000
    assert p.count_until(10_000) == p.total
    # and it agrees with a fine numerical integration anywhere
    steps = 100_000
    numeric = sum(p.rate_at((i + 0.5) * 400 / steps) for i in range(steps)) * 400 / steps
    assert p.count_until(400) == pytest.approx(numeric, rel=1e-6)


def test_time_for_count_inverts_count_until():
    """time_for_count gives back the time at which a count is reached, on ramps up and down."""
    p = example()
    for t in (0.001, 1.0, 29.3, 60.0, 200.0, 479.9, 485.0, 500.1, 519.99):
        assert p.time_for_count(p.count_until(t)) == pytest.approx(t, abs=1e-7)
    assert p.time_for_count(0) == 0.0
    assert math.isinf(p.time_for_count(p.total + 1))


def test_zero_rate_stages_are_skipped_by_the_inverse():
    """A pause (hold at 0) is jumped over: the next message is due when the rate resumes."""
    p = RateProfile([Stage("hold", 10, 100, 100), Stage("hold", 5, 0, 0), Stage("hold", 10, 100, 100)])
    assert p.time_for_count(1000) == 10.0
    assert p.time_for_count(1001) == pytest.approx(15.01)
    assert p.count_between(9, 16) == 100 + 100


def test_constant_rate_is_a_curve_too():
    """A constant rate answers the same questions, forever."""
    c = ConstantRate(2775)
    assert c.count_between(10, 20) == 27_750
    assert c.time_after(10, 2775) == 11.0
    assert c.count_between(5, 1) == 0.0
    assert math.isinf(ConstantRate(0).time_after(0, 1))
    assert math.isinf(c.duration)


def test_wire_format_round_trips():
    """Profiles and constants survive the trip to a worker unchanged."""
    p = example()
    back = curve_from_wire(p.to_wire())
    assert isinstance(back, RateProfile)
    assert back.stages == p.stages
    assert curve_from_wire(ConstantRate(5).to_wire()) == ConstantRate(5)
    assert curve_from_wire(None) is None


@pytest.mark.parametrize(
    ("stages", "error"),
    [
        ("[]", "example.yaml: 'stages' must be a non-empty list"),
        ("[{kind: rmap, to: 5, duration: 1s}]", "stages[0]: unknown stage kind 'rmap'; did you mean 'ramp'?"),
        ("[{to: 5, duration: 1s}]", "stages[0]: missing 'kind' (one of ramp, hold, step, spike)"),
        (
            "[{kind: ramp, to: -5, duration: 1s}]",
            "stages[0] (ramp).to: -5 is not allowed; rates are messages",
        ),
        ("[{kind: hold, rate: 5, duration: 0s}]", "stages[0] (hold).duration: '0s' must be longer than 0"),
        ("[{kind: hold, rate: 5, duration: -3}]", "stages[0] (hold).duration: -3 must be longer than 0"),
        (
            "[{kind: hold, rate: 5, duration: 1s}, {kind: hold, duration: 5min}]",
            "stages[1] (hold).duration: '5min' is not a duration; did you mean '5m'?",
        ),
        ("[{kind: hold, duration: 5m}]", "stages[0] (hold): missing 'rate'; the first stage has no rate"),
        ("[{kind: ramp, to: 5, over: 5m}]", "stages[0] (ramp): unknown key 'over'; did you mean 'duration'?"),
        ("[{kind: ramp, to: 5, durration: 5m}]", "unknown key 'durration'; did you mean 'duration'?"),
        ("[{kind: ramp, to: 5}]", "stages[0] (ramp): missing 'duration' (e.g. duration: 60s)"),
        ("[{kind: hold, rate: '2,775', duration: 1s}]", "(hold).rate: '2,775' is not a rate; give messages"),
        ("[{kind: hold, rate: 0, duration: 5s}]", "every stage has rate 0"),
        ("[{kind: spike, to: 1, factor: 2, duration: 1s}]", "give exactly one of 'to' (a rate) or 'factor'"),
        ("[{kind: spike, factor: 3, duration: 10s}]", "'factor' needs a rate before the spike"),
        ("[hold 5]", "stages[0]: a stage is a mapping with 'kind'"),
    ],
)
def test_mistakes_are_one_line_naming_file_stage_and_fix(stages, error):
    """Each kind of mistake gives one line with the file, the stage index/field and the fix."""
    with pytest.raises(ProfileError) as e:
        RateProfile.parse(f"stages: {stages}\n", "example.yaml")
    message = str(e.value)
    assert error in message
    assert message.startswith("example.yaml: ")
    assert "\n" not in message


def test_file_level_mistakes():
    """Unknown top-level keys, non-mappings, bad YAML and missing files are named with the fix."""
    cases = {
        "stage: []\n": "unknown key 'stage'; did you mean 'stages'?",
        "- 1\n": "a rate profile is a mapping with 'stages'",
        "stages: [1\n": "not valid YAML (line 2)",
    }
    for text, error in cases.items():
        with pytest.raises(ProfileError, match=r"^p\.yaml: ") as e:
            RateProfile.parse(text, "p.yaml")
        assert error in str(e.value)
    with pytest.raises(ProfileError, match="cannot read the rate profile"):
        RateProfile.load("/nonexistent/profile.yaml")


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path):
    """Every profile shipped under mocks/profiles/ is valid and sends something."""
    profile = RateProfile.load(path)
    assert profile.total > 0
    assert profile.describe().startswith(profile.name)


def test_shipped_band_profile_holds_seed_000s_rate():
    """band-2775.yaml holds 2,775 msg/s, seed 000's target."""
    p = RateProfile.load(PROFILES / "band-2775.yaml")
    assert p.peak == 2775
    assert p.rate_at(1) == p.rate_at(p.duration - 1) == 2775
