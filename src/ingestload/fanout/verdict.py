"""The fan-out verdict: for every subscriber, what it should have received against what it did.

=============  ====================================================================================
expected       messages of the subscription (topics + filter) in Kafka inside its window
received       distinct expected messages it received
**missed**     expected and not received (dropped by a slow-subscriber policy included)
dropped        of the missed, how many the gateway announced in ``dropped`` frames
duplicated     extra copies beyond the first
out of order   first arrivals below an offset already received in the same partition
unexpected     received in its window range but not a message of its subscription (wrong filter,
               wrong topic, before its start or after a clean end)
**altered**    partitions of a subscriber whose received values differ from what Kafka holds at
               those offsets (a content digest per partition: garbage at the right offsets)
=============  ====================================================================================

The window of a subscriber is ``[from, end)`` per partition, where ``end`` is the confirmed
``unsubscribed.to`` (closed), Kafka's end offsets read after the drain (still open), or — for
a connection that ended without a clean end (broken) — only the last ``progress`` it was
given: misses inside that part are real and counted, but what came after is unknown. A gateway
cannot shrink a window it vouched for: an ``unsubscribed.to`` below an earlier ``progress`` ends
the window at the ``progress`` (and the contradiction is named). A partition of a subscribed
topic that the gateway left out of the window (never in ``subscribed.from`` nor a ``partitions``
frame) while Kafka holds matching messages there makes the window not known whole.

**Latency and clocks.** Fan-out latency is the subscriber's clock minus the sender's (the
envelope's send time). When every subscriber and every sender ran on one host, the clocks are
one and ``max_p99_ms`` is judged as measured. Otherwise the skew is unknown, bounded only from
above by the lowest latency measured (a message cannot arrive before it was sent): the p99 FAILs
only when it exceeds the threshold even after taking that bound off, and a p99 that would pass
or fail on skew alone is INCONCLUSIVE, with the bound reported.

Status: **FAIL** when a total exceeds its threshold (``max_missed`` and friends, all 0 by
default; definite anomalies win over missing information); otherwise **INCONCLUSIVE** when a
window cannot be known — a broken or never-confirmed subscription, a worker whose ledgers
never arrived, a partition the read could not finish, a received offset outside what was
read — or when nothing was expected at all; otherwise **PASS**. Never PASS on missing data,
and never a miss that was not in a known window.

Example::

    verdict = judge(ledgers, read_expected(config, ledgers), FanoutThresholds(max_missed=0))
    print(verdict.report())
    sys.exit(verdict.exit_code)
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pyroaring import BitMap64

from ingestload.fanout.expected import Expected
from ingestload.fanout.ledger import BROKEN, CLOSED, OPEN, PENDING, SubscriberLedger
from ingestload.verdicts import EXIT_CODES, FAIL, INCONCLUSIVE, PASS

_TOP = 2**64 - 1
COUNTS = (
    "expected",
    "received",
    "missed",
    "dropped",
    "duplicated",
    "out_of_order",
    "unexpected",
    "altered",
)


@dataclass(frozen=True)
class FanoutThresholds:
    """How many anomalies (summed over subscribers) a test may have and still pass."""

    max_missed: int = 0
    """Missed deliveries tolerated."""
    max_duplicated: int = 0
    """Duplicate copies tolerated."""
    max_out_of_order: int = 0
    """Out-of-order first arrivals tolerated."""
    max_unexpected: int = 0
    """Messages outside a subscription tolerated."""
    max_p99_ms: float | None = None
    """Highest acceptable fan-out latency p99 over all subscribers (``None``: not judged)."""
    max_altered: int = 0
    """Subscriber partitions whose received content differs from Kafka tolerated (none)."""


@dataclass(frozen=True)
class Latency:
    """Latency figures from merged buckets (ms)."""

    count: int = 0
    """Messages with an envelope that were measured."""
    p50_ms: float | None = None
    """Median."""
    p99_ms: float | None = None
    """99th percentile."""
    max_ms: float | None = None
    """Highest bucket."""
    min_ms: float | None = None
    """The lowest latency measured, unclamped (may be negative): the subscriber's clock is ahead of
    the sender's by at most this much."""

    @classmethod
    def of(cls, buckets: Mapping[int, int], min_us: int | None = None) -> Latency:
        total = sum(buckets.values())
        if not total:
            return cls()
        minimum = None if min_us is None else min_us / 1000
        ordered = sorted(buckets.items())

        def at(q: float) -> float:
            rank = max(1, int(q * total + 0.999999))
            seen = 0
            for bucket, n in ordered:
                seen += n
                if seen >= rank:
                    return bucket / 1000
            return ordered[-1][0] / 1000

        return cls(total, at(0.50), at(0.99), ordered[-1][0] / 1000, minimum)

    def describe(self) -> str:
        if not self.count:
            return "no latency measured"
        return (
            f"p50={self.p50_ms:.1f} ms p99={self.p99_ms:.1f} ms max={self.max_ms:.1f} ms (n={self.count:,})"
        )


@dataclass(frozen=True)
class SubscriberResult:
    """One subscriber's account."""

    subscriber: str
    """Its unique name."""
    window: str
    """closed, open, broken or pending (see :mod:`ingestload.fanout.ledger`)."""
    topics: tuple[str, ...]
    """Its topics."""
    filter: dict[str, Any] | None
    """Its filter, as on the wire."""
    expected: int
    received: int
    missed: int
    dropped: int
    """Drops the gateway announced (part of missed)."""
    duplicated: int
    out_of_order: int
    unexpected: int
    latency: Latency
    unknown: tuple[str, ...] = ()
    """Why its window (or part of it) cannot be judged; empty when it can."""
    altered: int = 0
    """Partitions whose received values differ from Kafka's at the same offsets."""
    contradictions: tuple[str, ...] = ()
    """What the gateway said that contradicted what it had vouched for (the window was not shrunk)."""


@dataclass(frozen=True)
class FanoutVerdict:
    """The fan-out verdict of one test."""

    status: str
    """PASS, FAIL or INCONCLUSIVE."""
    subscribers: int
    """Subscriber ledgers judged."""
    totals: dict[str, int]
    """expected, received, missed, dropped, duplicated, out_of_order, unexpected over all subscribers."""
    windows: dict[str, int]
    """How many subscribers ended closed, open, broken, pending."""
    per_topic: dict[str, dict[str, int]]
    """The same counts per topic."""
    latency: Latency
    """Over every measured delivery."""
    latency_per_topic: dict[str, Latency]
    results: tuple[SubscriberResult, ...]
    thresholds: FanoutThresholds
    reasons: tuple[str, ...] = ()
    """Why the status is what it is (empty for a clean PASS)."""
    missing_reports: tuple[str, ...] = ()
    """Who should have sent ledgers and did not (e.g. Locust workers)."""
    clock_skew: str = "unknown"
    """``one host`` (senders and subscribers share a clock: latency exact), else what bounds the
    skew: ``subscriber clock − sender clock ≤ X ms`` (the lowest latency measured)."""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def line(self) -> str:
        t = self.totals
        return (
            f"FANOUT VERDICT: {self.status}  subscribers={self.subscribers:,} expected={t['expected']:,} "
            f"delivered={t['received']:,} missed={t['missed']:,} (dropped {t['dropped']:,}) "
            f"duplicated={t['duplicated']:,} out_of_order={t['out_of_order']:,} "
            f"unexpected={t['unexpected']:,}" + (f" altered={t['altered']:,}" if t.get("altered") else "")
        )

    def report(self, worst: int = 5) -> str:
        lines = [self.line()]
        lines += [f"  reason: {r}" for r in self.reasons]
        w = self.windows
        lines.append(
            f"  windows: closed={w.get(CLOSED, 0):,} open={w.get(OPEN, 0):,} broken={w.get(BROKEN, 0):,} "
            f"unconfirmed={w.get(PENDING, 0):,}"
        )
        lines.append(f"  fan-out latency: {self.latency.describe()}; clocks: {self.clock_skew}")
        for topic, counts in sorted(self.per_topic.items()):
            lines.append(
                f"  {topic}: expected={counts['expected']:,} delivered={counts['received']:,} "
                f"missed={counts['missed']:,} duplicated={counts['duplicated']:,} "
                f"out_of_order={counts['out_of_order']:,} latency {self.latency_per_topic[topic].describe()}"
            )
        bad = sorted(
            (
                r
                for r in self.results
                if r.missed or r.duplicated or r.out_of_order or r.unexpected or r.unknown or r.altered
            ),
            key=lambda r: (-r.missed, r.subscriber),
        )
        for r in bad[:worst]:
            unknown = f" unknown: {'; '.join(r.unknown)}" if r.unknown else ""
            lines.append(
                f"  subscriber {r.subscriber} ({r.window}): expected={r.expected:,} missed={r.missed:,} "
                f"(dropped {r.dropped:,}) duplicated={r.duplicated:,} out_of_order={r.out_of_order:,} "
                f"unexpected={r.unexpected:,} altered={r.altered:,}{unknown}"
            )
        if len(bad) > worst:
            lines.append(f"  … and {len(bad) - worst:,} more subscribers with anomalies or unknown windows")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        return data


def _range(start: int, end: int) -> BitMap64:
    bitmap = BitMap64()
    if end > start:
        bitmap.add_range(start, end)
    return bitmap


def judge_one(
    ledger: SubscriberLedger, expected: Expected
) -> tuple[SubscriberResult, dict[str, collections.Counter[str]]]:
    """One subscriber's account, and its counts per topic."""
    per_topic: dict[str, collections.Counter[str]] = {}
    unknown: list[str] = []
    if ledger.state == PENDING:
        unknown.append("its subscription was never confirmed")
    elif ledger.state == BROKEN:
        why = ledger.end_reason or "its connection ended without a clean unsubscribe"
        unknown.append(f"{why}; judged up to its last progress")
    matches = expected.matches.get(ledger.key, {})
    if ledger.state != PENDING:
        for topic in ledger.topics:
            for partition in sorted(expected.partitions.get(topic, ())):
                tp = (topic, partition)
                if tp in ledger.start:
                    continue
                on_it = matches.get(tp)
                if on_it:
                    unknown.append(
                        f"{topic}[{partition}]: left out of its window by the gateway (never in "
                        f"subscribed.from or a partitions frame) while Kafka holds {len(on_it):,} "
                        "matching messages there"
                    )
    for tp, start in sorted(ledger.start.items()):
        topic = tp[0]
        counts = per_topic.setdefault(topic, collections.Counter())
        kafka_end = expected.end.get(tp)
        read_from = expected.read_from.get(tp)
        if ledger.state == CLOSED:
            assert ledger.end is not None
            end = ledger.end.get(tp)
            if end is None:
                unknown.append(f"{topic}[{tp[1]}]: no end in its unsubscribe confirmation")
                continue
            judge_end = end
        elif ledger.state == OPEN:
            end = judge_end = kafka_end if kafka_end is not None else -1
        else:  # broken: only what the gateway vouched for
            end = ledger.vouched.get(tp, start)
            judge_end = kafka_end if kafka_end is not None else end
        if kafka_end is None or read_from is None or read_from > start or kafka_end < max(end, judge_end):
            unknown.append(f"{topic}[{tp[1]}]: Kafka was not read over its window")
            continue
        window = _range(start, end)
        wanted = matches.get(tp, BitMap64()) & window
        got = ledger.received.get(tp, BitMap64())
        # Everything received within what was read is judged; only the subscription's own
        # messages up to its end (a clean end, else Kafka's) are allowed.
        judged = _range(read_from, kafka_end)
        beyond = len(got) - got.intersection_cardinality(judged)
        if beyond:
            unknown.append(f"{topic}[{tp[1]}]: {beyond:,} received offsets outside what Kafka holds now")
        allowed = matches.get(tp, BitMap64()) & _range(start, judge_end)
        counts["expected"] += len(wanted)
        counts["received"] += wanted.intersection_cardinality(got)
        counts["missed"] += wanted.difference_cardinality(got)
        counts["unexpected"] += (got & judged).difference_cardinality(allowed)
        counts["duplicated"] += ledger.duplicates.get(tp, 0)
        counts["out_of_order"] += ledger.out_of_order.get(tp, 0)
        digest = ledger.content.get(tp)
        if digest is not None and got:
            kafka_digest = expected.content_sum(tp, got)
            if kafka_digest is not None and kafka_digest != digest:
                counts["altered"] += 1
    # Received on partitions outside its window entirely (another topic, say).
    for tp, got in ledger.received.items():
        if tp not in ledger.start:
            per_topic.setdefault(tp[0], collections.Counter())["unexpected"] += len(got)
    total: collections.Counter[str] = collections.Counter()
    for counts in per_topic.values():
        total.update(counts)
    latency_buckets: collections.Counter[int] = collections.Counter()
    for buckets in ledger.latency.values():
        latency_buckets.update(buckets)
    result = SubscriberResult(
        ledger.subscriber,
        ledger.state,
        ledger.topics,
        None if ledger.filter is None else ledger.filter.to_json(),
        total["expected"],
        total["received"],
        total["missed"],
        ledger.announced_dropped,
        total["duplicated"],
        total["out_of_order"],
        total["unexpected"],
        Latency.of(latency_buckets, ledger.min_latency_us),
        tuple(unknown),
        total["altered"],
        tuple(ledger.contradictions),
    )
    return result, per_topic


def judge(
    ledgers: Iterable[SubscriberLedger],
    expected: Expected,
    thresholds: FanoutThresholds | None = None,
    *,
    missing_reports: Sequence[str] = (),
    sender_hosts: Iterable[str] | None = None,
) -> FanoutVerdict:
    """The verdict over every subscriber ledger (see the module doc). ``sender_hosts``: the hosts
    whose clocks stamped the envelopes (from the ack ledgers' meta), to know whether the latency was
    measured on one clock."""
    thresholds = thresholds or FanoutThresholds()
    results: list[SubscriberResult] = []
    per_topic: dict[str, collections.Counter[str]] = {}
    latency_topic: dict[str, collections.Counter[int]] = {}
    windows: collections.Counter[str] = collections.Counter()
    ledgers_seen: list[SubscriberLedger] = []
    for ledger in ledgers:
        ledgers_seen.append(ledger)
        result, topics = judge_one(ledger, expected)
        results.append(result)
        windows[ledger.state] += 1
        for topic, counts in topics.items():
            per_topic.setdefault(topic, collections.Counter()).update(counts)
        for topic, buckets in ledger.latency.items():
            latency_topic.setdefault(topic, collections.Counter()).update(buckets)
            per_topic.setdefault(topic, collections.Counter())
    totals = {name: sum(getattr(r, name) for r in results) for name in COUNTS}
    all_buckets: collections.Counter[int] = collections.Counter()
    for buckets in latency_topic.values():
        all_buckets.update(buckets)
    minimums = [r.latency.min_ms for r in results if r.latency.min_ms is not None]
    min_us = None if not minimums else round(min(minimums) * 1000)
    latency = Latency.of(all_buckets, min_us)
    hosts = {ledger.host for ledger in ledgers_seen}
    senders = None if sender_hosts is None else set(sender_hosts)
    one_clock = bool(senders) and None not in hosts and len(hosts | (senders or set())) == 1
    if one_clock:
        clock_skew = "one host"
    elif latency.min_ms is not None:
        clock_skew = (
            f"not measured; subscriber clock − sender clock ≤ {latency.min_ms:.1f} ms (the lowest latency)"
        )
    else:
        clock_skew = "unknown"

    failures = []
    for name, limit in (
        ("missed", thresholds.max_missed),
        ("duplicated", thresholds.max_duplicated),
        ("out_of_order", thresholds.max_out_of_order),
        ("unexpected", thresholds.max_unexpected),
        ("altered", thresholds.max_altered),
    ):
        if totals[name] > limit:
            extra = " (subscriber partitions whose values differ from Kafka's)" if name == "altered" else ""
            failures.append(f"{name} {totals[name]:,} > max {limit:,}{extra}")
    unknowns = []
    if thresholds.max_p99_ms is not None and latency.p99_ms is not None:
        limit_ms = thresholds.max_p99_ms
        if one_clock:
            if latency.p99_ms > limit_ms:
                failures.append(f"latency p99 {latency.p99_ms:.1f} ms > max {limit_ms:g} ms (one clock)")
        else:
            # skew = subscriber clock − sender clock ≤ the lowest latency measured (nothing arrives
            # before it is sent), so the true p99 is at least the measured p99 minus that; how far the
            # subscriber's clock may lag is not known. Buckets clamp negative latencies to 0: a p99 of
            # 0 may stand for anything down to the lowest measurement.
            low = latency.min_ms if latency.min_ms is not None else latency.p99_ms
            measured = latency.p99_ms if latency.p99_ms > 0 else min(low, 0.0)
            lowest = measured - low
            if lowest > limit_ms:
                failures.append(
                    f"latency p99 {latency.p99_ms:.1f} ms > max {limit_ms:g} ms even with the clock skew "
                    f"bound taken off ({lowest:.1f} ms)"
                )
            else:
                unknowns.append(
                    f"latency p99 {latency.p99_ms:.1f} ms against max {limit_ms:g} ms was measured across "
                    f"clocks of different hosts ({clock_skew}): it would pass or fail on clock skew; run "
                    "subscribers on the senders' host, or judge latency without --max-fanout-p99"
                )
    contradicting = [r for r in results if r.contradictions]
    if contradicting:
        unknowns_note = (
            f"the gateway contradicted itself towards {len(contradicting):,} subscribers (windows kept to "
            f"what it vouched for), e.g. {contradicting[0].subscriber}: {contradicting[0].contradictions[0]}"
        )
    else:
        unknowns_note = None

    if missing_reports:
        unknowns.append(f"no subscriber ledgers from {', '.join(missing_reports)}")
    if not results:
        unknowns.append("no subscriber ledgers at all")
    elif not totals["expected"]:
        unknowns.append("no subscriber expected any message: nothing to judge")
    uncertain = [r for r in results if r.unknown]
    if uncertain:
        by_window = collections.Counter(r.window for r in uncertain)
        unknowns.append(
            f"{len(uncertain):,} subscriber windows cannot be fully known ("
            + ", ".join(f"{n:,} {w}" for w, n in sorted(by_window.items()))
            + f"), e.g. {uncertain[0].subscriber}: {uncertain[0].unknown[0]}"
        )
    if expected.incomplete:
        unknowns.append(f"Kafka could not be read to the end: {'; '.join(expected.incomplete[:3])}")
    status = FAIL if failures else INCONCLUSIVE if unknowns else PASS
    reasons = tuple(failures + unknowns) if status != PASS else ()
    if unknowns_note is not None:
        reasons += (unknowns_note,)
    return FanoutVerdict(
        status,
        len(results),
        totals,
        {state: windows.get(state, 0) for state in (CLOSED, OPEN, BROKEN, PENDING)},
        {
            t: {name: c.get(name, 0) for name in COUNTS if name != "dropped"}
            for t, c in sorted(per_topic.items())
        },
        latency,
        {t: Latency.of(latency_topic.get(t, collections.Counter())) for t in sorted(per_topic)},
        tuple(results),
        thresholds,
        reasons,
        tuple(missing_reports),
        clock_skew,
    )


def summary_counts(verdict: FanoutVerdict) -> dict[str, Any]:
    """The verdict's headline numbers, for a status line or Locust's report."""
    return {"status": verdict.status, "subscribers": verdict.subscribers, **verdict.totals}


__all__ = [
    "FanoutThresholds",
    "FanoutVerdict",
    "Latency",
    "SubscriberResult",
    "judge",
    "judge_one",
]
