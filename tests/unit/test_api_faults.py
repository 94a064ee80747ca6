"""Fault injection: deterministic fates from a seed, exact previews, counts."""

import pytest

from ingestload.api.faults import CLEAN, FaultCounts, FaultPlan


def test_off_by_default():
    """A default plan is inactive and every fate is clean."""
    plan = FaultPlan()
    dice = plan.dice()
    assert not plan.active
    assert plan.describe() == "off"
    assert {dice.roll() for _ in range(1000)} == {CLEAN}


def test_same_seed_same_fates():
    """Two dice from the same plan roll the same fates in the same order."""
    plan = FaultPlan(drop=0.2, duplicate=0.3, ack_before_delivery=0.1, seed=42)
    a, b = plan.dice(), plan.dice()
    assert [a.roll() for _ in range(500)] == [b.roll() for _ in range(500)]


def test_preview_matches_the_dice():
    """preview(n) lists exactly the indexes the dice will hit, per switch."""
    plan = FaultPlan(drop=0.1, duplicate=0.2, ack_before_delivery=0.3, seed=7)
    dice = plan.dice()
    fates = [dice.roll() for _ in range(1000)]
    preview = plan.preview(1000)
    assert preview.dropped == [i for i, f in enumerate(fates) if f.drop]
    assert preview.duplicated == [i for i, f in enumerate(fates) if f.duplicate]
    assert preview.acked_before_delivery == [i for i, f in enumerate(fates) if f.ack_before_delivery]
    assert 50 < len(preview.dropped) < 150


def test_a_dropped_message_is_not_also_duplicated():
    """Drop wins: a dropped message is neither duplicated nor acknowledged early."""
    dice = FaultPlan(drop=0.5, duplicate=1.0, ack_before_delivery=1.0, seed=1).dice()
    fates = [dice.roll() for _ in range(200)]
    assert all(not (f.drop and (f.duplicate or f.ack_before_delivery)) for f in fates)
    assert all(f.duplicate and f.ack_before_delivery for f in fates if not f.drop)


def test_switches_draw_from_separate_streams():
    """Turning on a second switch does not change which messages the first one hits."""
    alone = FaultPlan(duplicate=0.3, seed=9).preview(300).duplicated
    together = FaultPlan(duplicate=0.3, ack_before_delivery=0.5, seed=9).preview(300).duplicated
    assert alone == together


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_fraction_out_of_range(value):
    """A fraction outside 0–1 is refused with the switch's name."""
    with pytest.raises(ValueError, match="drop"):
        FaultPlan(drop=value)


def test_counts_per_topic():
    """Counts add up overall and per topic."""
    counts = FaultCounts()
    counts.count("gov-alarm", "dropped")
    counts.count("gov-alarm", "dropped", 2)
    counts.count("gov-fault", "duplicated")
    assert counts.as_dict()["dropped"] == 3
    assert counts.by_topic == {"gov-alarm": {"dropped": 3}, "gov-fault": {"duplicated": 1}}
