"""MessageFactory: mock controller messages, deterministic, in exact mix proportions, fast.

How it stays under a few microseconds per message:

* every (controller, message type) cell gets ``variants`` payloads rendered once, at
  construction, from a seeded random source, and kept as bytes split around the
  ``$timestamp`` position — sending a message is one ``bytes.join`` with the current
  timestamp, which is formatted at most once per millisecond;
* the order of cells comes from blocks of ``block`` slots: each block holds exactly the
  mix's share of every cell (largest-remainder rounding, as seed 000's
  ``Percentage.calculate(controller, msgType, total)``) in a shuffled order that depends
  only on the seed and the block number (one of 16 seeded shuffles, rotated per block, so
  the per-block cost is a list rotation, not a shuffle). Over whole blocks the mix is
  exact; within a block it is a random sample without replacement.

Message ``i`` is a pure function of (catalogue, seed, i) apart from its timestamp, so
:meth:`MessageFactory.unread` can step back after backpressure without breaking either
the mix or determinism.

Example::

    factory = MessageFactory(Catalogue.load(), seed=7)
    topic, value = factory.next(time.time_ns())     # ("gov-movementData", b'{"Header":…}')
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from ingestload.messages.canonical import canonical
from ingestload.messages.catalogue import TIMESTAMP_SENTINEL, Catalogue, Cell, Draw

_SENTINEL_BYTES = TIMESTAMP_SENTINEL.encode()
#: Distinct shuffled block orders per factory; block ``b`` uses shuffle ``b % SHUFFLES``,
#: rotated by a step that depends on ``b // SHUFFLES``.
SHUFFLES = 16
#: A prime, so that successive rotations of one shuffle land far apart.
_ROTATION_STEP = 7_919


def iso_ms(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, e.g. ``2024-08-09T12:34:56.789Z``.

    Example::

        >>> iso_ms(1_723_206_896_789)
        '2024-08-09T12:34:56.789Z'
    """
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class MessageFactory:
    """Produces ``(topic, value)`` pairs for the catalogue's mix; one instance per producer."""

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        seed: int = 0,
        variants: int = 64,
        block: int = 10_000,
        topic_prefix: str | None = None,
    ) -> None:
        if variants < 1 or block < 1:
            raise ValueError("variants and block must be ≥ 1")
        self.catalogue = catalogue
        self.seed = seed
        self.block = block
        self.topic_prefix = topic_prefix
        self.cells: tuple[Cell, ...] = catalogue.cells
        self.topics: tuple[str, ...] = tuple(catalogue.topic(c.msg_type, topic_prefix) for c in self.cells)
        counts = catalogue.counts(block)
        self._shuffles: dict[int, list[int]] = {}
        self._slots = [
            index
            for index, cell in enumerate(self.cells)
            for _ in range(counts[(cell.controller.name, cell.msg_type)])
        ]
        self._variants: list[list[list[bytes]]] = [self._render(cell, variants) for cell in self.cells]
        self._n_variants = variants
        self._position = 0
        self._block_start = 0
        self._schedule: list[int] = self._schedule_for(0)
        self._lookup_block = 0
        self._lookup_schedule = self._schedule
        self._ts_ms = -1
        self._ts = b""

    def _render(self, cell: Cell, variants: int) -> list[list[bytes]]:
        rng = random.Random(f"{self.seed}:{cell.controller.name}:{cell.msg_type}")
        draw = Draw(rng, cell.controller, cell.msg_type)
        # In canonical form (RFC 8785): on the HTTP path the plain CRC-32 of the payload is the
        # envelope checksum (see messages/canonical.py) without re-serialising anything, and an API
        # that re-serialises (59.0 → 59) writes exactly these bytes back.
        return [canonical(cell.template.render(draw)).split(_SENTINEL_BYTES) for _ in range(variants)]

    def _schedule_for(self, block_no: int) -> list[int]:
        """Block ``block_no``'s order: one of :data:`SHUFFLES` seeded shuffles, rotated.

        Shuffling 10,000 slots in Python costs ~4 ms, ~0.4 µs per message if done for every
        block; a rotation of a cached shuffle costs microseconds and keeps each block exact.
        """
        k = block_no % SHUFFLES
        base = self._shuffles.get(k)
        if base is None:
            base = list(self._slots)
            random.Random(f"{self.seed}:schedule:{k}").shuffle(base)
            self._shuffles[k] = base
        r = (block_no // SHUFFLES) * _ROTATION_STEP % len(base) if base else 0
        return base[r:] + base[:r]

    def describe(self) -> dict[str, object]:
        """The parameters that decide which cell (and topic) message ``i`` is: see :meth:`rebuild`."""
        return {
            "seed": self.seed,
            "block": self.block,
            "catalogue": self.catalogue.source,
            "topic_prefix": self.topic_prefix,
            "variants": self._n_variants,
        }

    @classmethod
    def rebuild(cls, description: Mapping[str, Any], *, payloads: bool = False) -> MessageFactory:
        """A factory equal to the one :meth:`describe` described (same cells in the same order);
        with ``payloads`` also the same payloads (message ``i`` byte for byte, given its send time)."""
        source = description.get("catalogue")
        catalogue = Catalogue.load(source if source and source != "<catalogue>" else None)
        return cls(
            catalogue,
            seed=int(description.get("seed", 0)),
            block=int(description.get("block", 10_000)),
            variants=int(description.get("variants", 64)) if payloads else 1,
            topic_prefix=description.get("topic_prefix"),
        )

    def topic_at(self, position: int) -> str:
        """The topic of message ``position`` (fast for ascending positions)."""
        return self.topics[self._cell_index_at(position)]

    @property
    def position(self) -> int:
        """How many messages have been taken (the index of the next one)."""
        return self._position

    def seek(self, position: int) -> None:
        """Continue from message ``position``."""
        if position < 0:
            raise ValueError("position must be ≥ 0")
        block_no = position // self.block
        self._block_start = block_no * self.block
        self._schedule = self._schedule_for(block_no)
        self._position = position

    def _cell_index_at(self, position: int) -> int:
        block_no, offset = divmod(position, self.block)
        if block_no * self.block != self._lookup_block:
            self._lookup_block = block_no * self.block
            self._lookup_schedule = self._schedule_for(block_no)
        return self._lookup_schedule[offset]

    def cell_at(self, position: int) -> Cell:
        """The cell of message ``position`` (for inspection and tracing; not on the hot path)."""
        return self.cells[self._cell_index_at(position)]

    def next(self, now_ns: int) -> tuple[str, bytes]:
        """The next message, its ``$timestamp`` fields set from ``now_ns`` (``time.time_ns()``)."""
        i = self._position
        offset = i - self._block_start
        if offset >= self.block or offset < 0:
            self.seek(i)
            offset = i - self._block_start
        cell = self._schedule[offset]
        self._position = i + 1
        ms = now_ns // 1_000_000
        if ms != self._ts_ms:
            self._ts_ms = ms
            self._ts = iso_ms(ms).encode()
        return self.topics[cell], self._ts.join(self._variants[cell][i % self._n_variants])

    def unread(self, count: int = 1) -> None:
        """Step back ``count`` messages, e.g. when the client refused them (backpressure)."""
        if count > self._position:
            raise ValueError("cannot unread past the first message")
        self._position -= count
