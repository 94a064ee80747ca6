"""The verdict: acked vs seen, in Jepsen's vocabulary, and the exit code it implies.

=============  ===========================================================================
lost           acknowledged, and on none of the run's topics once they were read to the end
unseen         acknowledged, not seen, and the end of the topics was not reached (or not read)
duplicated     extra copies of a message (same producer and seq) on its topic beyond the first
corrupted      the value does not match the checksum in its envelope
misrouted      a copy found on a topic other than the one it was meant for (each copy counts;
               the message is not lost, and not a duplicate, for it)
phantom        a record of the run from a known producer with a seq that producer never sent
deleted        offsets of the run's partitions removed (retention, compaction, DeleteRecords)
               before the verifier read them: messages missing there are unseen, not lost; on a
               compacted topic (``cleanup.policy=compact``) any record may have been removed
               without moving the log's start: messages missing there are unseen too
not visible    offsets above a partition's last stable offset (an open transaction) when the
               verifier stopped: messages missing there are unseen, not lost
recovered      reported failed or unknown by the client, but found in Kafka
reordered      a producer's seq went backwards within a partition (informational)
foreign        messages on the topics that are not of this run (ignored, counted)
enriched       intact messages to which the ingest API added members of its own (not an
               anomaly: counted, and the members named)
=============  ===========================================================================

Status: **FAIL** when lost, duplicated, corrupted, misrouted or phantom exceed their thresholds
(definite anomalies win over missing information); otherwise **INCONCLUSIVE** when anything
needed for a verdict is missing — a worker never reported its ledger, a producer's sends are not
all resolved, two ledgers claim one producer id (its messages are judged by neither: a clash is
not a duplicate), messages came from a producer with no ledger, records were deleted before they
were read or were not yet visible,
the verifier could not read (or read again) a partition, or the drain window ran out with
acknowledged messages unseen before the end of the topics was reached, or nothing was
acknowledged at all; otherwise **PASS**. Never PASS on missing data, never an invented loss.

Example::

    verdict = classify(ledger, verifier.summary(), reached_end=True)
    print(verdict.line())            # VERDICT: PASS  acked=1,000 seen=1,000 lost=0 …
    sys.exit(verdict.exit_code)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pyroaring import BitMap64

from ingestload.messages.ledger import AckLedger
from ingestload.verdicts import EXIT_CODES, FAIL, INCONCLUSIVE, PASS
from ingestload.verify.verifier import MessageId, SeenSummary


@dataclass(frozen=True)
class Thresholds:
    """How many anomalies a run may have and still pass."""

    max_lost: int = 0
    """Lost messages tolerated."""
    max_duplicated: int = 0
    """Duplicate copies tolerated."""
    max_corrupted: int = 0
    """Corrupted messages tolerated."""
    max_misrouted: int = 0
    """Copies on a wrong topic tolerated."""
    max_phantom: int = 0
    """Records of a known producer with seqs it never sent tolerated (none: they cannot be right)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one run's verification."""

    status: str
    """PASS, FAIL or INCONCLUSIVE."""
    run_id: str
    acked: int
    """Messages the producers know were acknowledged."""
    seen: int
    """Distinct messages of the run found in Kafka."""
    lost: int
    unseen: int
    duplicated: int
    corrupted: int
    misrouted: int
    recovered: int
    reordered: int
    foreign: int
    failed: int
    """Sends reported as certainly not written."""
    unknown: int
    """Sends whose fate the client could not know."""
    producers: int
    thresholds: Thresholds
    reasons: tuple[str, ...] = ()
    """Why the status is what it is (empty for a clean PASS)."""
    lost_samples: tuple[MessageId, ...] = ()
    duplicated_samples: tuple[MessageId, ...] = ()
    corrupted_samples: tuple[MessageId, ...] = ()
    misrouted_samples: tuple[MessageId, ...] = ()
    lost_by_topic: Mapping[str, int] = field(default_factory=dict)
    anomalies_by_topic: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per topic where found: duplicated, corrupted, misrouted (lost: :attr:`lost_by_topic`)."""
    seen_by_topic: Mapping[str, int] = field(default_factory=dict)
    latency_ms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per topic: end-to-end latency percentiles (sent → consumed) in ms."""
    enriched: int = 0
    """Intact messages with members the ingest API added (HTTP path; not an anomaly)."""
    enriched_members: Mapping[str, int] = field(default_factory=dict)
    """Each member the API added → how many messages."""
    phantom: int = 0
    """Records of a known producer whose seq it never sent (outside ``[first, first+sent)``)."""
    phantom_samples: tuple[MessageId, ...] = ()
    deleted: Mapping[str, int] = field(default_factory=dict)
    """Per partition (``topic[p]``): offsets of the run deleted before the verifier read them."""
    not_visible: Mapping[str, int] = field(default_factory=dict)
    """Per partition (``topic[p]``): offsets above the last stable offset when the verifier stopped."""
    watched_s: float | None = None
    """How long after the final ledger (the last acknowledgement) the verifier kept reading: copies
    that land later are not in this verdict (judge again with ``ingestload verify``)."""
    read_to: Mapping[str, int] = field(default_factory=dict)
    """Per partition (``topic[p]``): the offset after the last record the verdict read — what it
    covers, so that a record can be told in or out of it without a clock."""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def line(self) -> str:
        """``VERDICT: FAIL  acked=1,204,332 seen=1,204,289 lost=43 …``"""
        text = (
            f"VERDICT: {self.status}  acked={self.acked:,} seen={self.seen:,} lost={self.lost:,} "
            f"duplicated={self.duplicated:,} corrupted={self.corrupted:,} misrouted={self.misrouted:,} "
            f"recovered={self.recovered:,} (failed/unknown but seen)"
        )
        if self.unseen:
            text += f" unseen={self.unseen:,}"
        if self.phantom:
            text += f" phantom={self.phantom:,}"
        return text

    def report(self, samples: int = 10) -> str:
        """The verdict block: the line, the reasons and the first ids of each anomaly."""
        lines = [self.line()]
        lines += [f"  reason: {reason}" for reason in self.reasons]
        details = [
            ("failed", self.failed),
            ("unknown", self.unknown),
            ("reordered", self.reordered),
            ("foreign", self.foreign),
            ("producers", self.producers),
        ]
        lines.append("  also: " + " ".join(f"{name}={value:,}" for name, value in details))
        if self.enriched:
            members = ", ".join(sorted(self.enriched_members))
            lines.append(f"  enriched: {self.enriched:,} messages, members {members} (added by the API)")
        if self.watched_s is not None:
            lines.append(
                f"  watched for {self.watched_s:.1f} s after the last acknowledgement: copies that land "
                "later are not in this verdict (judge again later with `ingestload verify --ledger …`)"
            )
        for name, ids in (
            ("lost", self.lost_samples),
            ("phantom", self.phantom_samples),
            ("duplicated", self.duplicated_samples),
            ("corrupted", self.corrupted_samples),
            ("misrouted", self.misrouted_samples),
        ):
            if ids:
                shown = ", ".join(i.describe() for i in ids[:samples])
                lines.append(f"  first {name} (producer#seq topic[partition]@offset): {shown}")
        for topic, stats in sorted(self.latency_ms.items()):
            lines.append(
                f"  e2e latency {topic}: p50={stats['p50']:g} ms p95={stats['p95']:g} ms "
                f"p99={stats['p99']:g} ms max={stats['max']:g} ms (n={int(stats['count']):,})"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        for key in (
            "lost_samples",
            "duplicated_samples",
            "corrupted_samples",
            "misrouted_samples",
            "phantom_samples",
        ):
            data[key] = [i._asdict() | {"producer_id": f"{i.producer_id:016x}"} for i in getattr(self, key)]
        return data


def _sender(producer_id: int, meta: Mapping[str, Any]) -> str:
    """One sender of a producer id, as a person finds it: host, pid, worker, path."""
    parts = [f"{k} {meta[k]}" for k in ("host", "pid", "worker", "path") if meta.get(k) is not None]
    return f"{producer_id:016x} ({', '.join(parts) or 'no description'})"


def _where(partitions: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in sorted(partitions.items())[:8]) + (
        " …" if len(partitions) > 8 else ""
    )


@dataclass
class _Tally:
    """What :func:`classify` counts over the producers' ledgers."""

    acked: int = 0
    lost: int = 0
    recovered: int = 0
    failed: int = 0
    unknown: int = 0
    phantom: int = 0
    unseen_unreadable: int = 0
    reasons: list[str] = field(default_factory=list)
    missing_samples: list[MessageId] = field(default_factory=list)
    phantom_samples: list[MessageId] = field(default_factory=list)
    lost_by_topic: dict[str, int] = field(default_factory=dict)


def _tally(
    ledger: AckLedger,
    summary: SeenSummary,
    clashing: set[int],
    unreadable_topics: set[str],
    topic_of: Callable[[int, int], str | None] | None,
    sample_limit: int,
) -> _Tally:
    """Acknowledged against seen, producer by producer: lost, phantom, recovered (and the reasons a
    producer's messages cannot be judged)."""
    t = _Tally()
    for producer in ledger:
        pid = producer.producer_id
        acked = producer.acked()
        t.acked += len(acked)
        t.failed += len(producer.failed)
        t.unknown += len(producer.unknown)
        seen = summary.seen.get(pid, BitMap64())
        t.recovered += len((producer.failed | producer.unknown) & seen)
        if pid in clashing:
            continue  # two senders drew this id: neither's messages can be judged (a reason below)
        sent = BitMap64()
        if producer.sent:
            sent.add_range(producer.first, producer.first + producer.sent)
        never_sent = seen - sent
        t.phantom += len(never_sent)
        for seq in never_sent[: max(0, sample_limit - len(t.phantom_samples))]:
            t.phantom_samples.append(MessageId(pid, seq, None, None, None))
        missing = acked - seen
        outstanding = producer.outstanding
        if outstanding > 0:
            # Sends without a report: any `outstanding` of the missing ones may be unacknowledged,
            # so only the excess is provably lost.
            t.reasons.append(f"producer {pid:016x}: {outstanding:,} sends without a delivery report")
            t.lost += max(0, len(missing) - outstanding)
            continue
        if outstanding < 0:
            t.reasons.append(f"producer {pid:016x}: {-outstanding:,} more delivery reports than sends")
        if missing and unreadable_topics:
            # Missing where records were deleted or not yet visible: not known to be lost.
            kept = BitMap64()
            for seq in missing:
                name = topic_of(pid, seq) if topic_of is not None else None
                if name is None or name in unreadable_topics:
                    t.unseen_unreadable += 1
                else:
                    kept.add(seq)
            missing = kept
        t.lost += len(missing)
        if missing and topic_of is not None:
            for seq in missing:
                name = topic_of(pid, seq) or "?"
                t.lost_by_topic[name] = t.lost_by_topic.get(name, 0) + 1
        for seq in missing[: max(0, sample_limit - len(t.missing_samples))]:
            topic = topic_of(pid, seq) if topic_of else None
            t.missing_samples.append(MessageId(pid, seq, topic, None, None))
    return t


def _ledger_reasons(
    ledger: AckLedger, summary: SeenSummary, clashing: set[int], missing_workers: list[str]
) -> tuple[list[str], int]:
    """Why the ledgers cannot vouch for everything seen: producers without a ledger, two ledgers
    for one producer id, workers that never reported; and the copies a clash would make look
    duplicated."""
    reasons = []
    strangers = [p for p in summary.seen if p not in ledger]
    if strangers:
        count = sum(len(summary.seen[p]) for p in strangers)
        reasons.append(
            f"{count:,} messages from {len(strangers)} producer(s) that never reported a ledger "
            "(a worker that died or was cut off?)"
        )
    clash_duplicated = sum(summary.duplicated_by_producer.get(p, 0) for p in clashing)
    for producer_id in sorted(clashing):
        senders = [
            ledger.producers[producer_id],
            *(c for c in ledger.clashes if c.producer_id == producer_id),
        ]
        reasons.append(
            f"{len(senders)} ledgers claim producer id {producer_id:016x}: "
            + " and ".join(_sender(producer_id, c.meta) for c in senders)
            + " — two senders drew one id (or one reported twice): their messages cannot be told "
            "apart, so they are judged neither lost nor duplicated"
            + (
                f" ({clash_duplicated:,} copies of its seqs would look duplicated)"
                if clash_duplicated
                else ""
            )
        )
    if missing_workers:
        reasons.append(f"worker(s) never reported their final ledger: {', '.join(missing_workers)}")
    return reasons, clash_duplicated


def _unreadable_reasons(
    deleted: Mapping[str, int], compacted: list[str], not_visible: Mapping[str, int], unseen: int
) -> list[str]:
    """Why some partitions could not tell what became of the run's messages there."""
    reasons = []
    if deleted:
        reasons.append(
            f"records deleted (retention, compaction or DeleteRecords) before the verifier read them, "
            f"offsets gone per partition: {_where(deleted)}"
            + (f"; {unseen:,} acknowledged messages not found there are unseen, not lost" if unseen else "")
        )
    if compacted:
        reasons.append(
            f"compacted topic(s) {', '.join(compacted)} (cleanup.policy=compact): compaction may have "
            "removed records of the run without moving the log's start; acknowledged messages not "
            "found there are unseen, not lost"
        )
    if not_visible:
        reasons.append(
            "records not yet visible to a read_committed reader (an open transaction holds the last "
            f"stable offset back), offsets per partition: {_where(not_visible)}"
            + (
                ""
                if deleted or not unseen
                else f"; {unseen:,} acknowledged messages not found are unseen, not lost"
            )
        )
    return reasons


#: How each anomaly's threshold is named in a FAIL reason.
_LIMITS = {
    "lost": "--max-lost",
    "duplicated": "--max-duplicated",
    "corrupted": "--max-corrupted",
    "misrouted": "--max-misrouted",
}


def _over(thresholds: Thresholds, **counts: int) -> list[str]:
    """The anomalies above their thresholds (each one a FAIL reason)."""
    over = []
    for name, count in counts.items():
        limit = int(getattr(thresholds, f"max_{name}"))
        if count > limit and name == "phantom":
            over.append(
                f"phantom {count:,} > {limit:,}: records of this run's producers with seqs never sent"
            )
        elif count > limit:
            over.append(f"{name} {count:,} > {_LIMITS[name]} {limit:,}")
    return over


def classify(
    run_id: str,
    ledger: AckLedger,
    summary: SeenSummary,
    *,
    reached_end: bool,
    thresholds: Thresholds | None = None,
    missing_workers: Iterable[str] = (),
    errors: Iterable[str] = (),
    latency_ms: Mapping[str, Mapping[str, float]] | None = None,
    topic_of: Callable[[int, int], str | None] | None = None,
    sample_limit: int = 20,
    deleted: Mapping[tuple[str, int], int] | None = None,
    not_visible: Mapping[tuple[str, int], int] | None = None,
    watched_s: float | None = None,
    compacted: Iterable[str] = (),
    read_to: Mapping[tuple[str, int], int] | None = None,
) -> Verdict:
    """Compare what the producers acknowledged with what the verifier saw.

    ``topic_of(producer_id, seq)`` names the topic of a message that was never seen (from
    the producer's factory description), for the samples and per-topic counts. ``deleted`` and
    ``not_visible`` name partitions (with how many offsets) whose records the verifier could not
    read: acknowledged messages missing on their topics are *unseen*, never lost.
    ``watched_s`` is how long after the final ledger the verifier read (shown in the report).
    ``compacted`` names compacted topics: messages missing there are unseen too.
    """
    thresholds = thresholds or Thresholds()
    errors = list(errors)
    gone = {f"{t}[{p}]": n for (t, p), n in (deleted or {}).items()}
    hidden = {f"{t}[{p}]": n for (t, p), n in (not_visible or {}).items()}
    compacted = sorted(set(compacted))
    unreadable = {t for t, _ in deleted or {}} | {t for t, _ in not_visible or {}} | set(compacted)
    clashing = {c.producer_id for c in ledger.clashes}
    t = _tally(ledger, summary, clashing, unreadable, topic_of, sample_limit)
    ledger_reasons, clash_duplicated = _ledger_reasons(ledger, summary, clashing, sorted(missing_workers))
    reasons = t.reasons + ledger_reasons + [f"verifier: {e}" for e in errors]
    reasons += _unreadable_reasons(gone, compacted, hidden, t.unseen_unreadable)

    lost = t.lost if reached_end else 0
    unseen = (0 if reached_end else t.lost) + t.unseen_unreadable
    if unseen and not reached_end and errors:
        reasons.append(
            f"{unseen:,} acknowledged messages unseen: the verifier did not read every partition to "
            "its end (the verifier's reason above)"
        )
    elif unseen and not reached_end:
        reasons.append(
            f"the drain window ran out with {unseen:,} acknowledged messages unseen before the verifier "
            "reached the end of the topics (raise --drain-timeout, or check the verifier can keep up)"
        )
    if t.acked == 0:
        nobody = "no producer reported a ledger" if not ledger.producers else "no message was acknowledged"
        reasons.append(f"{nobody}: nothing to verify")
    duplicated = summary.duplicated - clash_duplicated
    over = _over(
        thresholds,
        lost=lost,
        duplicated=duplicated,
        corrupted=summary.corrupted,
        misrouted=summary.misrouted,
        phantom=t.phantom,
    )
    status = FAIL if over else INCONCLUSIVE if reasons else PASS
    reasons = over + reasons if over else reasons
    missing_samples, phantom_samples, phantom = t.missing_samples, t.phantom_samples, t.phantom
    acked_total, recovered, failed, unknown = t.acked, t.recovered, t.failed, t.unknown
    seen_total = sum(len(s) for s in summary.seen.values()) - phantom
    lost_by_topic, named = t.lost_by_topic, gone
    return Verdict(
        status=status,
        run_id=run_id,
        acked=acked_total,
        seen=seen_total,
        lost=lost,
        unseen=unseen,
        duplicated=duplicated,
        corrupted=summary.corrupted,
        misrouted=summary.misrouted,
        recovered=recovered,
        reordered=summary.reordered,
        foreign=summary.foreign,
        failed=failed,
        unknown=unknown,
        producers=len(ledger),
        thresholds=thresholds,
        reasons=tuple(reasons),
        lost_samples=tuple(missing_samples) if reached_end else (),
        duplicated_samples=tuple(i for i in summary.duplicate_samples if i.producer_id not in clashing),
        corrupted_samples=tuple(summary.corrupted_samples),
        misrouted_samples=tuple(summary.misrouted_samples),
        lost_by_topic=lost_by_topic if reached_end else {},
        anomalies_by_topic={t: dict(a) for t, a in summary.anomalies_by_topic.items()},
        seen_by_topic=dict(summary.seen_by_topic),
        latency_ms=dict(latency_ms or {}),
        enriched=summary.enriched,
        enriched_members=dict(summary.enriched_members),
        phantom=phantom,
        phantom_samples=tuple(phantom_samples),
        deleted=named,
        not_visible=hidden,
        watched_s=watched_s,
        read_to={f"{t}[{p}]": o for (t, p), o in sorted((read_to or {}).items())},
    )
