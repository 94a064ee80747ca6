"""The ack ledger: which messages each producer knows were acknowledged, failed, or are unknown.

Seqs are contiguous per producer, so the ledger stores what is cheap and exact:

* ``sent`` — how many seqs were handed to the client (``0 … sent-1``);
* ``failed`` — seqs with a definite failure (never written, e.g. purged from the local queue);
* ``unknown`` — seqs whose fate is unknown (timed out or purged in flight: maybe written);
* ``acked_count`` — how many success reports arrived.

The acknowledged set is then ``[0, sent) − failed − unknown``, and the ledger is
*complete* when every seq was resolved: ``acked_count == sent − |failed| − |unknown|``.
Only error reports cost anything (they are rare); a success costs one integer increment,
which keeps the producer's hot path at 100,000+ messages per second.

Sets are pyroaring bitmaps: mergeable, tiny for sparse failures, serialisable as base64.

Example::

    ledger = ProducerLedger(42, sent=1000, acked_count=998, failed=BitMap([7]), unknown=BitMap([9]))
    ledger.acked()      # BitMap of 998 seqs
    AckLedger.from_json(AckLedger([ledger]).to_json())
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyroaring import BitMap


def _encode(bitmap: BitMap) -> str:
    return base64.b64encode(bitmap.serialize()).decode("ascii")


def _decode(text: str) -> BitMap:
    return BitMap.deserialize(base64.b64decode(text)) if text else BitMap()


@dataclass
class ProducerLedger:
    """What one producer (one process, one run) knows about its messages."""

    producer_id: int
    """Unsigned 64-bit id from the envelope."""
    sent: int = 0
    """Seqs ``0 … sent-1`` were handed to the client."""
    acked_count: int = 0
    """Success reports received."""
    failed: BitMap = field(default_factory=BitMap)
    """Seqs that certainly were not written."""
    unknown: BitMap = field(default_factory=BitMap)
    """Seqs that may or may not have been written (timeouts, purged in flight)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Who produced: host, pid, worker index, path, factory seed and catalogue (to name topics)."""

    def acked(self) -> BitMap:
        """The acknowledged seqs: everything sent minus failed and unknown."""
        acked = BitMap()
        if self.sent:
            acked.add_range(0, self.sent)
        acked -= self.failed
        acked -= self.unknown
        return acked

    @property
    def outstanding(self) -> int:
        """Sends without a report yet: sent − acked − failed − unknown (negative: more reports than sends)."""
        return self.sent - self.acked_count - len(self.failed) - len(self.unknown)

    @property
    def complete(self) -> bool:
        """Every sent seq is accounted for (acked, failed or unknown)."""
        return self.outstanding == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "producer_id": f"{self.producer_id:016x}",
            "sent": self.sent,
            "acked_count": self.acked_count,
            "failed": _encode(self.failed),
            "unknown": _encode(self.unknown),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProducerLedger:
        return cls(
            producer_id=int(data["producer_id"], 16),
            sent=int(data["sent"]),
            acked_count=int(data["acked_count"]),
            failed=_decode(data.get("failed", "")),
            unknown=_decode(data.get("unknown", "")),
            meta=dict(data.get("meta", {})),
        )


class AckLedger:
    """The ledgers of every producer of a run; merge the ones that workers send."""

    def __init__(self, producers: Iterable[ProducerLedger] = ()) -> None:
        self.producers: dict[int, ProducerLedger] = {}
        for ledger in producers:
            self.add(ledger)

    def add(self, ledger: ProducerLedger) -> None:
        """Add one producer's ledger (a later report for the same producer replaces it)."""
        self.producers[ledger.producer_id] = ledger

    def merge(self, other: AckLedger) -> None:
        for ledger in other:
            self.add(ledger)

    def __iter__(self) -> Iterator[ProducerLedger]:
        return iter(self.producers.values())

    def __len__(self) -> int:
        return len(self.producers)

    def __contains__(self, producer_id: object) -> bool:
        return producer_id in self.producers

    def totals(self) -> dict[str, int]:
        return {
            "sent": sum(p.sent for p in self),
            "acked": sum(p.acked_count for p in self),
            "failed": sum(len(p.failed) for p in self),
            "unknown": sum(len(p.unknown) for p in self),
        }

    @property
    def complete(self) -> bool:
        return all(p.complete for p in self)

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self]

    @classmethod
    def from_json(cls, data: Iterable[Mapping[str, Any]]) -> AckLedger:
        return cls(ProducerLedger.from_dict(d) for d in data)
