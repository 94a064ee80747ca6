"""What the ingestload tab, the live page and the HTML report show: sections of text rows.

A :class:`Section` is a small table — a title, the titles of its value columns, rows of
``(name, values…)`` — with every value already formatted, so that the tab, the page and the
report show the same text. The sections of a test:

=============  ===============================================================================
verdict        after the stop: status, exit code, reasons, first ids of each anomaly, files
rate           per path and in all: target / offered / acked msg/s, in flight, lateness p50 /
               p99, late, dropped (rates over the latest report span)
pacing         the whole run so far per path: target and offered counts, lateness, late,
               dropped, still due at stop — the pacing account the log prints at the stop
verification   per topic and in all: acked, seen, unseen, lost, duplicated, corrupted,
               misrouted, recovered, e2e latency p50 / p95 / p99 (live while running, the
               verifier's final counts after the stop)
=============  ===============================================================================

A conclusion that wants a block of its own (say, a fan-out verdict) adds it to its verdict
mapping as ``"sections": [{"title": …, "columns": […], "rows": [[name, value, …], …]}]``; it is
shown after the verdict, as it is (:func:`extra_sections`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from ingestload.rate.lateness import LATE_AFTER, PaceSnapshot, format_seconds
from ingestload.webui.live import PathRates

#: Value columns of the tab's one table (Locust's extended tables have a fixed structure).
TAB_COLUMNS = 11
DASH = "–"

RATE_COLUMNS = (
    "target msg/s",
    "offered msg/s",
    "acked msg/s",
    "in flight",
    "lateness p50",
    "lateness p99",
    f"late (>{format_seconds(LATE_AFTER)})",
    "dropped",
)
PACING_COLUMNS = (
    "target",
    "offered",
    "offered %",
    "lateness p50",
    "lateness p99",
    "lateness max",
    "late",
    "dropped",
    "still due at stop",
)
#: The verdict's counts in all topics, in the order shown.
COUNT_KEYS = ("acked", "seen", "unseen", "lost", "duplicated", "corrupted", "misrouted", "recovered")
VERIFICATION_COLUMNS = (
    *COUNT_KEYS,
    "e2e p50",
    "e2e p95",
    "e2e p99",
)
SAMPLE_KINDS = ("lost", "duplicated", "corrupted", "misrouted")
#: First ids of each anomaly shown (the verdict file has up to 20).
SAMPLES_SHOWN = 5


class Section(NamedTuple):
    """One titled table of formatted values."""

    key: str
    """Stable id (``rate``, ``verdict``, …)."""
    title: str
    """Shown above (or, in the tab, in the first cell of) the section."""
    columns: tuple[str, ...]
    """Titles of the value columns (a key/value section has one, ``""``)."""
    rows: tuple[tuple[str, ...], ...]
    """Each row: its name, then one value per column."""

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "columns": list(self.columns), "rows": self.rows}


def count(value: Any) -> str:
    """``1234`` → ``1,234``; ``None`` → ``–``."""
    return DASH if value is None else f"{int(value):,}"


def rate(value: float) -> str:
    """msg/s as a whole number with thousands separators."""
    return f"{value:,.0f}"


def millis(value: Any) -> str:
    """Milliseconds as the verifier reports them; ``None`` → ``–``."""
    if value is None:
        return DASH
    number = float(value)
    return f"{number:,.0f} ms" if number >= 10 else f"{number:.3g} ms"


def rate_section(per_path: Mapping[str, PathRates], total: PathRates) -> Section:
    """Target / offered / acked msg/s and lateness per path (and in all when there are several)."""

    def row(name: str, r: PathRates) -> tuple[str, ...]:
        return (
            name,
            rate(r.target),
            rate(r.offered),
            rate(r.acked),
            count(r.in_flight),
            format_seconds(r.lateness_p50),
            format_seconds(r.lateness_p99),
            count(r.late),
            count(r.dropped),
        )

    rows = [row(path, r) for path, r in per_path.items()]
    if len(per_path) != 1:
        rows.append(row("all paths", total))
    return Section("rate", "rate (latest report span)", RATE_COLUMNS, tuple(rows))


def pacing_section(per_path: Mapping[str, PaceSnapshot], total: PaceSnapshot) -> Section:
    """The run's pacing account so far: counts since the start, per path and in all."""

    def row(name: str, s: PaceSnapshot) -> tuple[str, ...]:
        h = s.lateness
        worst = s.max_lateness
        p50, p99 = (min(h.percentile(q), worst) if worst > 0 else h.percentile(q) for q in (0.5, 0.99))
        unsent = max(0, math.floor(s.intended + 1e-6) - s.offered - s.dropped)
        return (
            name,
            count(math.floor(s.intended + 1e-6)),
            count(s.offered),
            f"{s.ratio:.2%}",
            format_seconds(p50),
            format_seconds(p99),
            format_seconds(worst),
            count(s.late),
            count(s.dropped),
            count(unsent),
        )

    rows = [row(path, s) for path, s in per_path.items()]
    if len(per_path) != 1:
        rows.append(row("all paths", total))
    return Section("pacing", "pacing account (whole run)", PACING_COLUMNS, tuple(rows))


class TopicLive(NamedTuple):
    """What is known of one topic while the run goes on (from Locust's ``E2E`` rows)."""

    seen: int
    """Records of the run read there (copies included)."""
    p50: float | None
    p95: float | None
    p99: float | None
    """End-to-end latency percentiles, ms."""


def verification_section(
    topics: Sequence[str],
    acked: int,
    live: Mapping[str, int] | None,
    per_topic: Mapping[str, TopicLive],
    verdict: Mapping[str, Any] | None,
) -> Section:
    """Per topic and in all. Before the verdict: ``live`` counts (the verifier's progress) and
    ``per_topic`` seen / latency; after it: the verdict's final counts. Per-topic acked, unseen
    and recovered are known only in all (acknowledgements are kept per producer)."""
    rows: list[tuple[str, ...]] = []
    if verdict is not None and "seen" in verdict:
        lost = verdict.get("lost_by_topic") or {}
        anomalies = verdict.get("anomalies_by_topic") or {}
        seen = verdict.get("seen_by_topic") or {}
        latency = verdict.get("latency_ms") or {}
        for topic in sorted(set(topics) | set(seen) | set(lost) | set(anomalies)):
            a = anomalies.get(topic) or {}
            lat = latency.get(topic) or {}
            rows.append(
                (
                    topic,
                    DASH,
                    count(seen.get(topic, 0)),
                    DASH,
                    count(lost.get(topic, 0)),
                    count(a.get("duplicated", 0)),
                    count(a.get("corrupted", 0)),
                    count(a.get("misrouted", 0)),
                    DASH,
                    millis(lat.get("p50")),
                    millis(lat.get("p95")),
                    millis(lat.get("p99")),
                )
            )
        rows.append(
            (
                "all topics",
                *(count(verdict.get(key)) for key in COUNT_KEYS),
                DASH,
                DASH,
                DASH,
            )
        )
        return Section("verification", "verification (final)", VERIFICATION_COLUMNS, tuple(rows))
    for topic in topics:
        t = per_topic.get(topic)
        rows.append(
            (
                topic,
                DASH,
                count(t.seen if t else 0),
                DASH,
                DASH,
                DASH,
                DASH,
                DASH,
                DASH,
                millis(t.p50 if t else None),
                millis(t.p95 if t else None),
                millis(t.p99 if t else None),
            )
        )
    live = live or {}
    rows.append(
        (
            "all topics",
            count(acked),
            count(live.get("seen")),
            count(live.get("unseen")),
            "at the end",
            count(live.get("duplicated")),
            count(live.get("corrupted")),
            count(live.get("misrouted")),
            "at the end",
            DASH,
            DASH,
            DASH,
        )
    )
    return Section("verification", "verification (live)", VERIFICATION_COLUMNS, tuple(rows))


def describe_id(sample: Mapping[str, Any]) -> str:
    """A message id from a verdict file: ``producer#seq topic[partition]@offset``."""
    where = f" {sample['topic']}" if sample.get("topic") else ""
    if sample.get("partition") is not None:
        where += f"[{sample['partition']}]"
    if sample.get("offset") is not None:
        where += f"@{sample['offset']}"
    return f"{sample.get('producer_id')}#{sample.get('seq')}{where}"


def verdict_section(verdict: Mapping[str, Any], files: Mapping[str, str]) -> Section:
    """The verdict as key/value rows: status, exit code, run id, reasons, first ids, files.

    The status, exit code and reasons are the run's (``overall``: every hop's verdict, the load
    verdict included), as the console's last line says them; the Kafka verdict's own status
    follows when it differs."""
    status, exit_code, reasons = run_status(verdict)
    rows: list[tuple[str, ...]] = [
        ("status", status),
        ("exit code", exit_code),
        ("run id", str(verdict.get("run_id"))),
    ]
    if str(verdict.get("status")) != status:
        rows.append(("kafka verdict", str(verdict.get("status"))))
    if "seen" in verdict:
        rows.append(
            (
                "counts",
                " ".join(f"{key}={count(verdict.get(key))}" for key in COUNT_KEYS if key != "unseen"),
            )
        )
    rows += [("reason", str(reason)) for reason in reasons]
    for kind in SAMPLE_KINDS:
        samples = verdict.get(f"{kind}_samples") or ()
        if samples:
            shown = ", ".join(describe_id(s) for s in samples[:SAMPLES_SHOWN])
            more = f" (+{len(samples) - SAMPLES_SHOWN} more in the verdict file)"
            if len(samples) <= SAMPLES_SHOWN:
                more = ""
            rows.append((f"first {kind}", shown + more))
    rows += [(f"{name} file", path) for name, path in files.items()]
    return Section("verdict", f"verdict: {status}", ("",), tuple(rows))


def run_status(verdict: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """The run's status, exit code and reasons: ``overall`` (every hop) when the document has it,
    else the Kafka verdict's own (a document written before hops were combined)."""
    overall = verdict.get("overall")
    source = overall if isinstance(overall, Mapping) else verdict
    return (
        str(source.get("status")),
        str(source.get("exit_code")),
        [str(r) for r in source.get("reasons") or ()],
    )


def fanout_section(verdict: Mapping[str, Any]) -> Section | None:
    """The fan-out verdict of a run with live views (``"fanout"`` in the verdict): its status, the
    overall status and exit code covering both verdicts, the deliveries, reasons and per-topic
    counts; ``None`` without one."""
    fanout = verdict.get("fanout")
    if not isinstance(fanout, Mapping):
        return None
    overall = verdict.get("overall") or {}
    totals = fanout.get("totals") or {}
    latency = fanout.get("latency") or {}
    rows: list[tuple[str, ...]] = [
        ("status", str(fanout.get("status"))),
        ("overall", f"{overall.get('status')} (exit code {overall.get('exit_code')})"),
        ("subscribers", count(fanout.get("subscribers"))),
        (
            "deliveries",
            " ".join(
                f"{key}={count(totals.get(key))}"
                for key in ("expected", "received", "missed", "dropped", "duplicated", "out_of_order")
                if key in totals
            ),
        ),
        (
            "latency",
            f"p50 {millis(latency.get('p50_ms'))} · p99 {millis(latency.get('p99_ms'))} · "
            f"max {millis(latency.get('max_ms'))}",
        ),
    ]
    rows += [("reason", str(reason)) for reason in fanout.get("reasons") or ()]
    for topic, counts in sorted((fanout.get("per_topic") or {}).items()):
        rows.append((topic, " ".join(f"{key}={count(value)}" for key, value in sorted(counts.items()))))
    return Section("fanout", f"fan-out: {fanout.get('status')}", ("",), tuple(rows))


def sink_section(verdict: Mapping[str, Any]) -> Section | None:
    """The storage hop's verdict (``"sink"`` in the verdict): the table's status, what it holds of the
    run, Kafka → row latency, how the sink's progress was known, first ids and reasons; ``None``
    without one."""
    sink = verdict.get("sink")
    if not isinstance(sink, Mapping):
        return None
    latency = sink.get("latency") or {}
    rows: list[tuple[str, ...]] = [
        ("status", str(sink.get("status"))),
        ("table", str(sink.get("table"))),
        (
            "rows",
            " ".join(
                f"{key}={count(sink.get(key))}"
                for key in ("acked", "stored", "lost", "duplicated", "corrupted", "dead_lettered")
            ),
        ),
        ("Kafka → row", f"p50 {millis(latency.get('p50_ms'))} · p99 {millis(latency.get('p99_ms'))}"),
        ("sink", str(sink.get("caught_up") or "")),
    ]
    for kind, ids in sorted((sink.get("first_ids") or {}).items()):
        if ids:
            rows.append((f"first {kind}", ", ".join(str(i) for i in ids)))
    for reason, n in sorted((sink.get("dead_reasons") or {}).items()):
        rows.append(("dead-lettered", f"{count(n)}: {reason}"))
    rows += [("reason", str(reason)) for reason in sink.get("reasons") or ()]
    return Section("sink", f"storage: {sink.get('status')}", ("",), tuple(rows))


def extra_sections(verdict: Mapping[str, Any]) -> list[Section]:
    """Blocks a conclusion added to its verdict (``"sections"``), shown as they are."""
    found = []
    for i, block in enumerate(verdict.get("sections") or ()):
        if not isinstance(block, Mapping):
            continue
        columns = tuple(str(c) for c in block.get("columns") or ("",))
        rows = tuple(tuple(str(v) for v in row) for row in block.get("rows") or () if row)
        key, title = str(block.get("key") or f"extra{i}"), str(block.get("title", ""))
        found.append(Section(key, title, columns, rows))
    return found


def tab_rows(sections: Iterable[Section], columns: int = TAB_COLUMNS) -> list[dict[str, str]]:
    """The sections as rows of the tab's one table (``what``, ``c1`` … ``cN``): each section opens
    with a row holding its title and its column titles; a row with more values than the table
    has columns keeps the rest in its last cell. Locust's table sorts its rows by ``name`` (not
    shown here): a sequence number keeps them in order."""
    rows: list[dict[str, str]] = []

    def add(name: str, values: Sequence[str]) -> None:
        values = list(values)
        if len(values) > columns:
            values = [*values[: columns - 1], " · ".join(values[columns - 1 :])]
        cells = {f"c{i + 1}": v for i, v in enumerate(values)}
        rows.append({"name": f"{len(rows):04d}", "what": name, **cells})

    for section in sections:
        add(f"▸ {section.title}", list(section.columns))
        for row in section.rows:
            add(row[0], row[1:])
    return rows
