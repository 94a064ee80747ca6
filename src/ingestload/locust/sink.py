"""The storage hop as a Locust judging process sees it: after the drain, wait for the sink, read its
table, judge — then publish: ``SINK`` rows in Locust's stats (Kafka → row latency per table, the
anomalies as their failures) and the ``sink`` section of the verdict.

Example (in the judging process, after every sender drained)::

    hops.append(judge_sink_hop(environment, settings, topics, run_id, ledger, missing))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from ingestload.locust.fanout import in_thread
from ingestload.locust.verification import add_anomaly_errors, add_latency_rows
from ingestload.messages.ledger import AckLedger
from ingestload.settings import Settings
from ingestload.sink.progress import judge_table
from ingestload.verdicts import HopVerdict

log = logging.getLogger("ingestload")

SINK = "SINK"


def judge_sink_hop(
    environment: Any,
    settings: Settings,
    topics: Iterable[str],
    run_id: str,
    ledger: AckLedger,
    missing_workers: Iterable[str],
) -> HopVerdict:
    """The storage hop's verdict (blocking work in gevent's thread pool: greenlets keep running)."""
    s = settings.sink
    target = s.target()
    read_topics = sorted(s.topics or set(topics))
    log.info("storage hop: waiting for the sink to write the run into %s (up to %gs)", target.name, s.wait)
    verdict = in_thread(
        lambda: judge_table(
            target,
            settings.kafka.consumer_config(),
            read_topics,
            group=s.group,
            run_id=run_id,
            ledger=ledger,
            spec=settings.body_spec(),
            thresholds=settings.verify.thresholds,
            wait=s.wait,
            missing_workers=sorted(missing_workers),
        )
    )
    stats = getattr(environment, "stats", None)
    if stats is not None:
        now = time.time()
        add_latency_rows(stats, {target.name: verdict.latency_ms}, now, SINK)
        counts = {
            (target.name, "lost: acknowledged, not in the table"): verdict.lost,
            (target.name, "duplicated rows"): verdict.duplicated,
            (target.name, "corrupted rows"): verdict.corrupted,
            (target.name, "dead-lettered by the sink"): verdict.dead_lettered,
        }
        if any(counts.values()):
            stats.entries[(target.name, SINK)]  # the row exists even with no latency recorded
            add_anomaly_errors(stats, counts, now, SINK)
    return HopVerdict("sink", "storage", verdict.status, verdict.reasons, verdict.report(), verdict.to_dict())
