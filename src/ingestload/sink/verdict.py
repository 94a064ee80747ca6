"""The storage hop's verdict: every acknowledged message in the table exactly once, and intact.

The truth is the run's ack ledger (what the broker or the API acknowledged), as for the Kafka
verdict; the table is read back (:class:`~ingestload.sink.table.SinkTarget`) and every row's
message found and checked by the same reader as the HTTP path's records
(:class:`~ingestload.verify.body.BodyReader`: the envelope member or a strict schema's identity
field, canonical checksums, enrichment, wrappers). Per table:

* **lost** — acknowledged, and neither in the table nor among the dead letters, once the sink has
  caught up (its consumer group's committed offsets reached Kafka's end, and the table stopped
  changing). Without a known consumer group the sink's progress is unknown: missing rows make the
  verdict INCONCLUSIVE, never an invented loss;
* **duplicated** — copies beyond the first row of a message;
* **corrupted** — a row whose message does not check out against its checksum (first ids shown);
* **dead-lettered** — a message of the run that the sink rejected (with its reason); our messages
  are valid, so any is a FAIL.

Messages whose outcome is unknown (maybe written) count neither way; rows of other runs are
ignored.

Example::

    tally = TableTally(body_spec, run_id)
    for value, written_at, kafka_at in target.rows(run_id):
        tally.add_row(value, written_at, kafka_at)
    verdict = judge(target.name, ledger, tally, thresholds, caught_up=None)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyroaring import BitMap64

from ingestload.messages.ledger import AckLedger
from ingestload.verdicts import FAIL, INCONCLUSIVE, PASS, Status
from ingestload.verify.body import BodyReader, BodySpec
from ingestload.verify.verdict import Thresholds

#: First ids shown per kind of anomaly.
SHOWN = 5


@dataclass
class TableTally:
    """What a read of the table found of the run: seen seqs per producer, anomalies, latency."""

    spec: BodySpec
    run_id: str
    seen: dict[int, BitMap64] = field(default_factory=dict)
    dead: dict[int, BitMap64] = field(default_factory=dict)
    dead_reasons: dict[str, int] = field(default_factory=dict)
    duplicated: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    corrupted: int = 0
    corrupted_ids: list[str] = field(default_factory=list)
    rows: int = 0
    """Rows read (all, the run's and others')."""
    foreign: int = 0
    """Rows holding no message of the run."""
    latency_ms: dict[int, int] = field(default_factory=dict)
    """Kafka record → row (or send → row when the table has no Kafka time): ms → count."""

    def __post_init__(self) -> None:
        self._reader = BodyReader(self.spec, self.run_id)

    def add_row(
        self, value: bytes | None, written_at: datetime | None = None, kafka_at: datetime | None = None
    ) -> None:
        self.rows += 1
        found = self._reader.read(value)
        if not found:
            self.foreign += 1
            return
        for producer, seq, sent_at_us, intact, _meant, _added, _body in found:
            seen = self.seen.get(producer)
            if seen is None:
                seen = self.seen[producer] = BitMap64()
            if seq in seen:
                self.duplicated += 1
                if len(self.duplicate_ids) < SHOWN:
                    self.duplicate_ids.append(f"{producer:016x}#{seq}")
            else:
                seen.add(seq)
            if not intact:
                self.corrupted += 1
                if len(self.corrupted_ids) < SHOWN:
                    self.corrupted_ids.append(f"{producer:016x}#{seq}")
            if written_at is not None:
                start_us = kafka_at.timestamp() * 1e6 if kafka_at is not None else sent_at_us
                if start_us is not None:
                    ms = max(0, int((written_at.timestamp() * 1e6 - start_us) / 1000))
                    self.latency_ms[ms] = self.latency_ms.get(ms, 0) + 1

    def add_dead_letter(self, value: bytes | None, reason: str) -> None:
        for producer, seq, *_ in self._reader.read(value) or ():
            dead = self.dead.get(producer)
            if dead is None:
                dead = self.dead[producer] = BitMap64()
            dead.add(seq)
            self.dead_reasons[reason] = self.dead_reasons.get(reason, 0) + 1


@dataclass(frozen=True)
class SinkVerdict:
    """The storage hop's verdict on one table."""

    status: Status
    table: str
    acked: int
    """Acknowledged messages of the run (the ledger's)."""
    stored: int
    """Distinct acknowledged messages found in the table."""
    lost: int
    missing: int
    """Acknowledged, not in the table, not dead-lettered (lost when the sink had caught up)."""
    duplicated: int
    corrupted: int
    dead_lettered: int
    rows: int
    unknown_written: int
    """Messages of unknown outcome that are in the table (counted neither way)."""
    first_ids: Mapping[str, Sequence[str]] = field(default_factory=dict)
    dead_reasons: Mapping[str, int] = field(default_factory=dict)
    latency_ms: Mapping[int, int] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    caught_up: str = ""
    """How the sink's progress was known (or why it was not)."""

    def percentile(self, q: float) -> int | None:
        total = sum(self.latency_ms.values())
        if not total:
            return None
        rank, running = q * total, 0
        for ms in sorted(self.latency_ms):
            running += self.latency_ms[ms]
            if running >= rank:
                return ms
        return max(self.latency_ms)

    def line(self) -> str:
        return (
            f"SINK VERDICT: {self.status}  table={self.table} acked={self.acked:,} stored={self.stored:,} "
            f"lost={self.lost:,} duplicated={self.duplicated:,} corrupted={self.corrupted:,} "
            f"dead_lettered={self.dead_lettered:,}"
        )

    def report(self) -> str:
        lines = [self.line()]
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        if p50 is not None:
            lines.append(f"  Kafka → row latency: p50 {p50} ms, p99 {p99} ms, max {max(self.latency_ms)} ms")
        lines.append(f"  rows read {self.rows:,}; {self.caught_up}")
        for kind, ids in self.first_ids.items():
            if ids:
                lines.append(f"  first {kind}: {', '.join(ids)}")
        for reason, n in sorted(self.dead_reasons.items(), key=lambda kv: -kv[1])[:SHOWN]:
            lines.append(f"  dead-lettered {n:,}: {reason}")
        lines += [f"  reason: {r}" for r in self.reasons]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return {
            "status": self.status,
            "table": self.table,
            "acked": self.acked,
            "stored": self.stored,
            "lost": self.lost,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "corrupted": self.corrupted,
            "dead_lettered": self.dead_lettered,
            "rows": self.rows,
            "unknown_written": self.unknown_written,
            "first_ids": {k: list(v) for k, v in self.first_ids.items()},
            "dead_reasons": dict(self.dead_reasons),
            "latency": {"p50_ms": p50, "p99_ms": p99, "count": sum(self.latency_ms.values())},
            "caught_up": self.caught_up,
            "reasons": list(self.reasons),
        }


def judge(
    table: str,
    ledger: AckLedger,
    tally: TableTally,
    thresholds: Thresholds,
    *,
    caught_up: bool | None,
    progress: str,
    missing_workers: Sequence[str] = (),
) -> SinkVerdict:
    """The verdict on one table. ``caught_up``: True when the sink had written everything Kafka
    held, False when it had not within the wait, ``None`` when its progress cannot be known."""
    acked_total = stored = missing = dead_lettered = unknown_written = 0
    missing_ids: list[str] = []
    dead_ids: list[str] = []
    empty = BitMap64()
    headers_only: list[str] = []
    for producer in ledger:
        if producer.meta.get("path") == "kafka" and not producer.meta.get("body_envelope"):
            # Its envelope travelled in a Kafka header only, which a table does not keep: its
            # messages cannot be told apart there. Not judged — and never called lost.
            headers_only.append(f"{producer.producer_id:016x}")
            continue
        acked = producer.acked()
        seen = tally.seen.get(producer.producer_id, empty)
        dead = tally.dead.get(producer.producer_id, empty) - seen
        acked_total += len(acked)
        stored += len(acked & seen)
        dead_here = acked & dead
        dead_lettered += len(dead_here)
        absent = acked - seen - dead
        missing += len(absent)
        unknown_written += len(producer.unknown & seen)
        for seqs, shown in ((absent, missing_ids), (dead_here, dead_ids)):
            for seq in seqs:
                if len(shown) >= SHOWN:
                    break
                shown.append(f"{producer.producer_id:016x}#{seq}")
    reasons: list[str] = []
    status = PASS
    definite = [
        ("duplicated", tally.duplicated, thresholds.max_duplicated, "copies beyond the first row"),
        ("corrupted", tally.corrupted, thresholds.max_corrupted, "rows whose message does not check out"),
        ("dead-lettered", dead_lettered, 0, "acknowledged messages the sink rejected as invalid"),
    ]
    for kind, count, limit, what in definite:
        if count > limit:
            status = FAIL
            reasons.append(f"{kind} {count:,} > {limit:,} ({what})")
    lost = 0
    if missing:
        if caught_up:
            lost = missing
            if lost > thresholds.max_lost:
                status = FAIL
                reasons.append(
                    f"lost {lost:,} > {thresholds.max_lost:,} (acknowledged, not in table {table})"
                )
        elif status != FAIL:
            status = INCONCLUSIVE
            reasons.append(f"{missing:,} acknowledged messages are not in table {table} yet and {progress}")
        else:
            reasons.append(f"{missing:,} acknowledged messages not in table {table}; {progress}")
    if headers_only and status != FAIL:
        status = INCONCLUSIVE
        reasons.append(
            f"{len(headers_only)} Kafka-path producer(s) ({', '.join(headers_only[:3])}) sent the envelope "
            "in a Kafka header only (a process started without --sink): their messages cannot be found "
            "in a table; give --sink (INGESTLOAD_SINK) to every worker"
        )
    if missing_workers and status != FAIL:
        status = INCONCLUSIVE
        reasons.append(
            f"the ledgers of {len(missing_workers)} worker(s) never arrived: {', '.join(missing_workers)}"
        )
    if acked_total == 0 and status == PASS:
        status = INCONCLUSIVE
        reasons.append("no acknowledged message to look for: nothing was proven")
    return SinkVerdict(
        status=status,
        table=table,
        acked=acked_total,
        stored=stored,
        lost=lost,
        missing=missing,
        duplicated=tally.duplicated,
        corrupted=tally.corrupted,
        dead_lettered=dead_lettered,
        rows=tally.rows,
        unknown_written=unknown_written,
        first_ids={
            "lost" if caught_up else "missing": missing_ids,
            "duplicated": tally.duplicate_ids,
            "corrupted": tally.corrupted_ids,
            "dead-lettered": dead_ids,
        },
        dead_reasons=tally.dead_reasons,
        latency_ms=tally.latency_ms,
        reasons=tuple(reasons),
        caught_up=progress,
    )


def unjudged(table: str, ledger: AckLedger, reason: str) -> SinkVerdict:
    """INCONCLUSIVE without a read: the table or the sink's progress could not be known."""
    acked = sum(len(p.acked()) for p in ledger)
    return SinkVerdict(
        status=INCONCLUSIVE,
        table=table,
        acked=acked,
        stored=0,
        lost=0,
        missing=0,
        duplicated=0,
        corrupted=0,
        dead_lettered=0,
        rows=0,
        unknown_written=0,
        reasons=(reason,),
        caught_up="not known",
    )
