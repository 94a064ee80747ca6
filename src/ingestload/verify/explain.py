"""What changed in a corrupted message: the first corrupted ids of the verdict name the member.

A message is a pure function of its producer's factory description, its seq and its send time
(:class:`~ingestload.messages.factory.MessageFactory`), so the message that was sent can be made
again from the ledger and compared, leaf by leaf, with the one found in Kafka. Only the verdict's
samples (20 at most) are explained, at the end of the run.

Example::

    detail = Explainer(ledger, spec).explain(producer_id, seq, found_body, sent_at_us)
    # 'Param.Floor changed'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ingestload.errors import IngestloadError
from ingestload.messages.factory import MessageFactory
from ingestload.messages.forms import flatten
from ingestload.messages.ledger import AckLedger
from ingestload.verify.body import BodySpec, get_path

#: Two send times far apart: leaves that differ between the two renderings are send-time stamps.
_T1_NS, _T2_NS = 1_000_000_000_000_000_000, 1_500_000_000_123_000_000


class Explainer:
    """Names the members in which a corrupted message differs from the one that was sent."""

    def __init__(self, ledger: AckLedger, spec: BodySpec) -> None:
        self.spec = spec
        self._meta = {p.producer_id: p.meta for p in ledger}
        self._factories: dict[tuple[Any, ...], MessageFactory | None] = {}

    def _factory(self, meta: Mapping[str, Any]) -> MessageFactory | None:
        key = tuple(sorted((k, str(v)) for k, v in meta.items() if k != "pid"))
        if key not in self._factories:
            try:
                self._factories[key] = MessageFactory.rebuild(meta, payloads=True) if "seed" in meta else None
            except IngestloadError:
                self._factories[key] = None
        return self._factories[key]

    def _sent(self, factory: MessageFactory, seq: int, now_ns: int) -> dict[str, str]:
        factory.seek(seq)
        message = orjson.loads(factory.next(now_ns)[1])
        if self.spec.envelope_in:
            where = get_path(message, self.spec.envelope_in, tuple(self.spec.envelope_in.split(".")))
            if where is not None:
                where[0][where[1]] = ""
        return flatten(message)

    def explain(self, producer: int, seq: int, found: Any, sent_at_us: int | None) -> str | None:
        """``"Param.Floor changed, Header.X removed"`` — or ``None`` when it cannot be known."""
        meta = self._meta.get(producer)
        factory = self._factory(meta) if meta is not None else None
        if factory is None or not isinstance(found, dict):
            return None
        if sent_at_us is not None:
            sent = self._sent(factory, seq, sent_at_us * 1000)
            stamps: set[str] = set()
        else:  # strict mode: no send time; leave out the leaves it stamps
            sent = self._sent(factory, seq, _T1_NS)
            other = self._sent(factory, seq, _T2_NS)
            stamps = {k for k, v in sent.items() if other.get(k) != v}
        got = flatten(found)
        changes = [f"{k} removed" for k in sent if k not in got and k not in stamps]
        changes += [f"{k} changed" for k in sent if k in got and k not in stamps and got[k] != sent[k]]
        if not changes:  # members the API added are enrichment: named only when nothing else differs
            changes = [f"{k} added" for k in got if k not in sent]
        return ", ".join(changes[:4]) or None
