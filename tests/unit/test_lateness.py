"""Bucketed send lateness: spreading batches, percentiles, sums and intervals."""

import math

import pytest

from ingestload.rate.lateness import (
    EDGES,
    LatenessHistogram,
    PaceSnapshot,
    describe_lateness,
    format_seconds,
    interval,
    sum_snapshots,
)


def test_a_batch_is_spread_over_the_buckets_it_spans():
    """40 messages spread evenly over 0–2 ms land in the buckets up to 2 ms, in proportion, adding to 40."""
    h = LatenessHistogram()
    h.add_range(0.0, 0.002, 40)
    assert h.total == 40
    assert h.counts[:5] == [2, 2, 6, 10, 20]
    assert h.percentile(0.5) == pytest.approx(0.001)


def test_percentiles_of_a_uniform_spread():
    """Uniform lateness over 0–1 s gives p50 ≈ 0.5 s and p99 ≈ 0.99 s."""
    h = LatenessHistogram()
    h.add_range(0.0, 1.0, 100_000)
    assert h.percentile(0.5) == pytest.approx(0.5, rel=0.01)
    assert h.percentile(0.99) == pytest.approx(0.99, rel=0.01)


def test_single_values_empty_and_overflow():
    """One value goes to its bucket; an empty histogram reads 0; beyond 100 s reads as infinite."""
    h = LatenessHistogram()
    assert h.percentile(0.5) == 0.0
    h.add(0.0003, 5)
    assert 0.0002 <= h.percentile(0.5) <= 0.0005
    h.add(500, 100)
    assert math.isinf(h.percentile(0.99))
    assert format_seconds(math.inf) == f">{EDGES[-1]:g} s"


def test_snapshots_add_and_subtract():
    """Snapshots of several pacers add up; two snapshots of one pacer give the interval between them."""
    h1, h2 = LatenessHistogram(), LatenessHistogram()
    h1.add(0.001, 10)
    h2.add(0.001, 30)
    a = PaceSnapshot(100.5, 100, 1, 0, 0.2, h1)
    b = PaceSnapshot(300.0, 290, 3, 2, 0.1, h2)
    total = sum_snapshots([a, b])
    assert (total.intended, total.offered, total.late, total.dropped, total.max_lateness) == (
        400.5,
        390,
        4,
        2,
        0.2,
    )
    assert total.lateness.total == 40
    diff = interval(a, b)
    assert (diff.offered, diff.lateness.total) == (190, 20)
    back = PaceSnapshot.from_wire(b.to_wire())
    assert back[:5] == b[:5]
    assert back.lateness.counts == b.lateness.counts


def test_describe_uses_the_exact_max():
    """The status text shows p50, p99 and the exact max lateness."""
    h = LatenessHistogram()
    h.add_range(0.0, 0.001, 100)
    text = describe_lateness(PaceSnapshot(100, 100, 0, 0, 0.00093, h))
    assert text.startswith("p50 0.5 ms p99 ")
    assert text.endswith("max 0.93 ms")
