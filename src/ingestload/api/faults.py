"""Fault injection for the reference ingest API: wrong on purpose, off by default, counted exactly.

Three switches, each a fraction of accepted messages (0 = off, 1 = every message):

``drop``
    answer 2xx and never produce the message — a lost acknowledged message;
``duplicate``
    produce the message twice — a duplicate on Kafka;
``ack_before_delivery``
    answer 2xx as soon as the message is handed to the Kafka client, without waiting for
    the broker's acknowledgement (what seed 001's naive Flask app did). Nothing is lost
    while the broker is healthy; a crash or a broker outage then loses what was answered.

Each switch draws from its own random stream, seeded from ``seed`` and the switch's name,
one draw per message that reaches it (a dropped message is not also duplicated), so with a
seed the n-th message of a process meets the same fate in every run, and
:meth:`FaultPlan.preview` tells in advance which messages those are.

Example::

    plan = FaultPlan(drop=0.1, seed=7)
    dice = plan.dice()
    fate = dice.roll()              # Fate(drop=False, duplicate=False, ack_before_delivery=False)
    plan.preview(1000).dropped      # indexes (0-based, in arrival order) that will be dropped
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import NamedTuple


class Fate(NamedTuple):
    """What fault injection does to one accepted message."""

    drop: bool
    """Answer 2xx, never produce."""
    duplicate: bool
    """Produce the message twice."""
    ack_before_delivery: bool
    """Answer 2xx before the broker acknowledged it."""


CLEAN = Fate(False, False, False)
"""The fate of every message while fault injection is off."""


@dataclass(frozen=True)
class FaultPlan:
    """Which faults to inject, how often, and from which seed."""

    drop: float = 0.0
    """Fraction of accepted messages answered 2xx but never produced (0–1)."""
    duplicate: float = 0.0
    """Fraction of accepted messages produced twice (0–1)."""
    ack_before_delivery: float = 0.0
    """Fraction of accepted messages answered before Kafka acknowledged them (0–1)."""
    seed: int = 0
    """Seed of the random streams; the same seed gives the same fates in the same order."""

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "ack_before_delivery"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault fraction {name}={value!r} must be between 0 and 1")

    @property
    def active(self) -> bool:
        """True when any switch is on."""
        return self.drop > 0 or self.duplicate > 0 or self.ack_before_delivery > 0

    def dice(self) -> FaultDice:
        """A fresh sequence of fates (one per process)."""
        return FaultDice(self)

    def preview(self, n: int) -> Preview:
        """The fates of the first ``n`` messages a process accepts, without injecting anything."""
        dice = self.dice()
        fates = [dice.roll() for _ in range(n)]
        return Preview(
            dropped=[i for i, f in enumerate(fates) if f.drop],
            duplicated=[i for i, f in enumerate(fates) if f.duplicate],
            acked_before_delivery=[i for i, f in enumerate(fates) if f.ack_before_delivery],
        )

    def describe(self) -> str:
        """One line for logs, e.g. ``drop=0.1 duplicate=0 ack_before_delivery=0 seed=7``."""
        if not self.active:
            return "off"
        return (
            f"drop={self.drop:g} duplicate={self.duplicate:g} "
            f"ack_before_delivery={self.ack_before_delivery:g} seed={self.seed}"
        )


class Preview(NamedTuple):
    """Indexes (arrival order, from 0) of the messages each switch will hit."""

    dropped: list[int]
    """Answered 2xx, never produced."""
    duplicated: list[int]
    """Produced twice."""
    acked_before_delivery: list[int]
    """Answered before delivery."""


class FaultDice:
    """Rolls the fate of each accepted message, in arrival order; not thread-safe (one per event loop)."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._drop = random.Random(f"{plan.seed}:drop")
        self._duplicate = random.Random(f"{plan.seed}:duplicate")
        self._early = random.Random(f"{plan.seed}:ack_before_delivery")

    def roll(self) -> Fate:
        """The fate of the next message."""
        plan = self.plan
        if plan.drop > 0 and self._drop.random() < plan.drop:
            return Fate(True, False, False)
        duplicate = plan.duplicate > 0 and self._duplicate.random() < plan.duplicate
        early = plan.ack_before_delivery > 0 and self._early.random() < plan.ack_before_delivery
        return Fate(False, duplicate, early)


@dataclass
class FaultCounts:
    """What fault injection did in one process (shown at ``/debug/faults`` and logged at shutdown)."""

    dropped: int = 0
    """Messages answered 2xx and never produced."""
    duplicated: int = 0
    """Messages produced a second time."""
    duplicate_failed: int = 0
    """Second copies whose delivery failed (so they did not duplicate anything)."""
    acked_before_delivery: int = 0
    """Messages answered 2xx before Kafka acknowledged them."""
    lost_after_early_ack: int = 0
    """Of those, messages whose delivery then failed: answered 2xx, not in Kafka."""
    by_topic: dict[str, dict[str, int]] = field(default_factory=dict)
    """The same counts (dropped, duplicated, acked_before_delivery) per topic."""

    def count(self, topic: str, what: str, n: int = 1) -> None:
        """Add ``n`` to counter ``what`` overall and for ``topic``."""
        setattr(self, what, getattr(self, what) + n)
        per = self.by_topic.setdefault(topic, {})
        per[what] = per.get(what, 0) + n

    def as_dict(self) -> dict[str, object]:
        return {
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "duplicate_failed": self.duplicate_failed,
            "acked_before_delivery": self.acked_before_delivery,
            "lost_after_early_ack": self.lost_after_early_ack,
            "by_topic": self.by_topic,
        }
