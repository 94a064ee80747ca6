"""Send lateness: how late messages left against their intended time, cheaply.

The pacer knows, for every batch it hands out, the intended time of the batch's first
and last message; their lateness spans ``[now − due(last), now − due(first)]``. Rather than
work per message, :meth:`LatenessHistogram.add_range` spreads the batch's count evenly
over that span into fixed 1-2-5 buckets (0.1 ms … 100 s): a few integer additions per
batch, whatever its size. Percentiles are read back by linear interpolation inside a
bucket, which is plenty to tell "on time" (sub-millisecond) from "cannot keep up"
(hundreds of ms and growing).

A :class:`PaceSnapshot` is what one pacer reports (cumulative for the run); snapshots of
several paths or workers add up with :func:`sum_snapshots`, and two snapshots of the same
run give the numbers of the interval between them with :func:`interval`.

Example::

    h = LatenessHistogram()
    h.add_range(0.0, 0.002, 40)       # a batch of 40 messages, 0–2 ms late
    h.percentile(0.5)                 # ≈ 0.001
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

#: Upper edges of the buckets, seconds (the last bucket is everything from 100 s up).
EDGES: tuple[float, ...] = tuple(m * 10.0**e for e in range(-4, 3) for m in (1, 2, 5))[:-2]
#: A message sent later than this after its intended time counts as *late*.
LATE_AFTER = 0.1


class LatenessHistogram:
    """Counts of messages per lateness bucket (see :data:`EDGES`)."""

    __slots__ = ("counts",)

    def __init__(self, counts: Sequence[int] | None = None) -> None:
        self.counts: list[int] = list(counts) if counts is not None else [0] * (len(EDGES) + 1)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def add(self, lateness: float, n: int = 1) -> None:
        """Count ``n`` messages that were ``lateness`` seconds late."""
        self.counts[bisect.bisect_right(EDGES, lateness)] += n

    def add_range(self, lo: float, hi: float, n: int) -> None:
        """Count ``n`` messages whose lateness is spread evenly over ``[lo, hi]``."""
        if n <= 0:
            return
        first = bisect.bisect_right(EDGES, lo)
        last = bisect.bisect_right(EDGES, hi)
        if first == last or hi <= lo:
            self.counts[first] += n
            return
        span = hi - lo
        given = 0
        for bucket in range(first, last):
            # messages up to this bucket's upper edge, rounded so that the parts add up to n
            upto = round(n * (EDGES[bucket] - lo) / span)
            self.counts[bucket] += upto - given
            given = upto
        self.counts[last] += n - given

    def percentile(self, q: float) -> float:
        """The lateness (seconds) below which a share ``q`` of messages fall; 0 when empty.

        ``math.inf`` when it falls in the open-ended top bucket (≥ 100 s).
        """
        total = self.total
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for bucket, count in enumerate(self.counts):
            if count and seen + count >= rank:
                if bucket == len(EDGES):
                    return math.inf
                lo = EDGES[bucket - 1] if bucket else 0.0
                return lo + (EDGES[bucket] - lo) * max(0.0, rank - seen) / count
            seen += count
        return math.inf

    def __add__(self, other: LatenessHistogram) -> LatenessHistogram:
        return LatenessHistogram([a + b for a, b in zip(self.counts, other.counts, strict=True)])

    def __sub__(self, other: LatenessHistogram) -> LatenessHistogram:
        return LatenessHistogram([a - b for a, b in zip(self.counts, other.counts, strict=True)])


class PaceSnapshot(NamedTuple):
    """Cumulative pacing counters of one pacer (or a sum of several) for the current run."""

    intended: float
    """Messages the schedule said should have been sent by now (the target count)."""
    offered: int
    """Messages actually handed to the client (sent), excluding dropped ones."""
    late: int
    """Offered messages sent more than :data:`LATE_AFTER` after their intended time."""
    dropped: int
    """Messages skipped because they fell further behind than ``--max-lateness``."""
    max_lateness: float
    """Largest lateness seen (seconds), exact: the oldest message of the latest batch."""
    lateness: LatenessHistogram
    """Offered messages per lateness bucket."""

    def to_wire(self) -> dict[str, Any]:
        """Plain data for a worker report."""
        return {
            "intended": self.intended,
            "offered": self.offered,
            "late": self.late,
            "dropped": self.dropped,
            "max_lateness": self.max_lateness,
            "lateness": list(self.lateness.counts),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> PaceSnapshot:
        return cls(
            float(data["intended"]),
            int(data["offered"]),
            int(data["late"]),
            int(data["dropped"]),
            float(data["max_lateness"]),
            LatenessHistogram(data["lateness"]),
        )

    @property
    def ratio(self) -> float:
        """offered ÷ intended (1.0 when nothing was due)."""
        return self.offered / self.intended if self.intended >= 1 else 1.0


EMPTY = PaceSnapshot(0.0, 0, 0, 0, 0.0, LatenessHistogram())


def sum_snapshots(snapshots: Iterable[PaceSnapshot]) -> PaceSnapshot:
    """Several pacers (paths, workers) as one."""
    total = EMPTY
    for s in snapshots:
        total = PaceSnapshot(
            total.intended + s.intended,
            total.offered + s.offered,
            total.late + s.late,
            total.dropped + s.dropped,
            max(total.max_lateness, s.max_lateness),
            total.lateness + s.lateness,
        )
    return total


def interval(before: PaceSnapshot, after: PaceSnapshot) -> PaceSnapshot:
    """What happened between two cumulative snapshots (``max_lateness`` is the later one's)."""
    return PaceSnapshot(
        after.intended - before.intended,
        after.offered - before.offered,
        after.late - before.late,
        after.dropped - before.dropped,
        after.max_lateness,
        after.lateness - before.lateness,
    )


def format_seconds(seconds: float) -> str:
    """``0.0004`` → ``0.4 ms``, ``2.5`` → ``2.5 s``, ``inf`` → ``>100 s``."""
    if math.isinf(seconds):
        return f">{EDGES[-1]:g} s"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def describe_lateness(snapshot: PaceSnapshot, max_lateness: float | None = None) -> str:
    """``p50 0.4 ms p99 2.1 ms max 3.2 ms`` for a status or summary line."""
    h = snapshot.lateness
    worst = snapshot.max_lateness if max_lateness is None else max_lateness
    # the buckets are coarse; the exact max bounds what interpolation inside them may claim
    p50, p99 = (min(h.percentile(q), worst) if worst > 0 else h.percentile(q) for q in (0.5, 0.99))
    return f"p50 {format_seconds(p50)} p99 {format_seconds(p99)} max {format_seconds(worst)}"


def format_pacing(total: PaceSnapshot, per_path: Mapping[str, PaceSnapshot] | None = None) -> str:
    """The pacing account printed when a run stops, e.g.

    ``target 166,500 offered 166,500 (100.00%) | lateness p50 0.4 ms p99 2 ms max 5 ms |
    late (>100 ms) 0 | dropped 0 | still due at stop 0`` (then one such part per path when
    there are several). target = offered + dropped + still due at stop (± a fraction).
    """

    def one(s: PaceSnapshot) -> str:
        unsent = max(0, math.floor(s.intended + 1e-6) - s.offered - s.dropped)
        return (
            f"target {math.floor(s.intended + 1e-6):,} offered {s.offered:,} ({s.ratio:.2%}) | "
            f"lateness {describe_lateness(s)} | late (>{format_seconds(LATE_AFTER)}) {s.late:,} | "
            f"dropped {s.dropped:,} | still due at stop {unsent:,}"
        )

    text = one(total)
    if per_path and len(per_path) > 1:
        text += "".join(f" || {path}: {one(s)}" for path, s in per_path.items())
    return text
