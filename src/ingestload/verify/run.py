"""Verifying a run: consume its topics, then judge them against the ledger.

:class:`VerificationRun` assigns every partition of the run's topics from the offsets taken
at run start (no consumer-group join, no commits), feeds batches to a
:class:`~ingestload.verify.verifier.Verifier`, keeps end-to-end latency histograms, and at the end
takes the merged :class:`~ingestload.messages.ledger.AckLedger` and decides (:meth:`finish`):

1. keep consuming until every acknowledged message has been seen, or until the end of
   every partition has been reached (position ≥ the high watermark of the latest fetch,
   after a settle time longer than a fetch wait), or until the drain window runs out;
2. read again, from the start, every partition that was *suspect* — an error was reported
   for it, or its offsets went backwards (a broker that lost its log) — so the verdict
   describes what is in Kafka at the end;
3. classify (:func:`~ingestload.verify.verdict.classify`).

Live, it runs in a process of its own (:mod:`ingestload.verify.process`); after the fact,
``ingestload verify`` runs it in-process.

Example (post-hoc, in-process)::

    run = VerificationRun(config, topics, run_id, start=offsets)
    verdict = run.finish(ledger, drain_timeout=30)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ingestload.errors import IngestloadError
from ingestload.kafka.admin import Offsets, assign_from, high_watermarks, read_to_end, reader
from ingestload.kafka.config import scrub
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger
from ingestload.verify.verdict import Thresholds, Verdict, classify
from ingestload.verify.verifier import Verifier

log = logging.getLogger("ingestload.verify")

#: Seconds after the end of a run before "position ≥ high watermark" counts as the end:
#: longer than librdkafka's fetch wait (500 ms) so that the watermark reflects the last writes.
SETTLE = 1.5
#: Latency histograms cover 0 ms … 1 hour at 3 significant digits.
_HIST_MAX_MS = 3_600_000


def _histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, _HIST_MAX_MS, 3)


def percentiles(histogram: Any) -> dict[str, float]:
    """p50/p95/p99/max/count of an HdrHistogram in ms."""
    return {
        "p50": float(histogram.get_value_at_percentile(50)),
        "p95": float(histogram.get_value_at_percentile(95)),
        "p99": float(histogram.get_value_at_percentile(99)),
        "max": float(histogram.get_max_value()),
        "count": float(histogram.get_total_count()),
    }


class TopicNamer:
    """Names the topic of a (producer, seq) that was never seen, from the producer's factory description."""

    def __init__(self, ledger: AckLedger) -> None:
        self._factories: dict[int, MessageFactory | None] = {}
        self._cache: dict[tuple[Any, ...], MessageFactory | None] = {}
        for producer in ledger:
            self._factories[producer.producer_id] = self._factory(producer.meta)

    def _factory(self, meta: Mapping[str, Any]) -> MessageFactory | None:
        if "seed" not in meta:
            return None
        key = (meta.get("seed"), meta.get("catalogue"), meta.get("topic_prefix"), meta.get("block"))
        if key not in self._cache:
            try:
                self._cache[key] = MessageFactory.rebuild(meta)
            except IngestloadError:
                self._cache[key] = None
        return self._cache[key]

    def __call__(self, producer_id: int, seq: int) -> str | None:
        factory = self._factories.get(producer_id)
        return factory.topic_at(seq) if factory is not None else None


class VerificationRun:
    """Consumes a run's topics and judges them against the ledger."""

    def __init__(
        self,
        config: Mapping[str, str],
        topics: Iterable[str],
        run_id: str,
        *,
        start: Offsets | None = None,
        envelope_field: str = "_ingestload",
        thresholds: Thresholds | None = None,
        batch: int = 10_000,
        record_latency: bool = True,
    ) -> None:
        self.config = dict(config)
        self.topics = sorted(set(topics))
        self.run_id = run_id
        self.thresholds = thresholds or Thresholds()
        self.batch = batch
        self.record_latency = record_latency
        """False when judging after the fact: "sent → consumed" would then measure our delay."""
        self.verifier = Verifier(run_id, envelope_field=envelope_field)
        self.start: Offsets = dict(start) if start is not None else high_watermarks(self.config, self.topics)
        self.errors: list[str] = []
        self.suspect: set[tuple[str, int]] = set()
        self.histograms: dict[str, Any] = {}
        self._pending_latency: dict[str, dict[int, int]] = {}
        self.consumer = reader(
            self.config,
            "verifier",
            logger=logging.getLogger("ingestload.librdkafka"),
            # Client-wide trouble (all brokers down, transport errors) arrives here, not as
            # message errors: any partition may have lost data meanwhile.
            error_cb=self._on_client_error,
        )
        self.assignment = assign_from(self.consumer, self.topics, self.start, timeout=10)

    # -- consuming ---------------------------------------------------------------------

    def poll_once(self, timeout: float = 0.02) -> int:
        """Consume and record one batch; returns how many messages (not events) it held.

        ``consume`` returns when the batch is full *or* the timeout passes; the latency of a
        message includes that wait, so it stays short (20 ms) for a truthful end-to-end figure.
        """
        from confluent_kafka import KafkaError

        messages = self.consumer.consume(self.batch, timeout)
        good = []
        for message in messages:
            error = message.error()
            if error is None:
                good.append(message)
            elif error.code() != KafkaError._PARTITION_EOF:
                self._suspect(message.topic(), message.partition(), str(error))
        if good:
            self.verifier.process(good, record_latency=self.record_latency)
            for state in self.verifier.partitions.values():
                if state.log_reset and (state.topic, state.partition) not in self.suspect:
                    self._suspect(
                        state.topic, state.partition, "offsets went backwards (log truncated or recreated)"
                    )
        return len(good)

    def _suspect(self, topic: str | None, partition: int | None, why: str) -> None:
        if topic and partition is not None and partition >= 0:
            self.suspect.add((topic, partition))
        else:  # a client-wide error (all brokers down, …): any partition may have lost data
            self.suspect.update((tp.topic, tp.partition) for tp in self.assignment)
        log.debug("suspect %s[%s]: %s", topic, partition, scrub(why, self.config))

    def _on_client_error(self, error: Any) -> None:
        self._suspect(None, None, str(error))

    def at_end(self) -> bool:
        """Every partition's position is at the high watermark of the latest fetch.

        A position *beyond* the watermark means the log shrank under us (a broker that lost
        data, as the embedded one does on restart, answers fetches past its end with nothing
        and no error): that partition becomes suspect and will be read again.
        """
        from confluent_kafka import OFFSET_INVALID

        try:
            positions = self.consumer.position(self.assignment)
        except Exception:
            return False
        at_end = True
        for tp in positions:
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                at_end = False
                continue
            key = (tp.topic, tp.partition)
            position = tp.offset if tp.offset != OFFSET_INVALID else self.start.get(key, 0)
            if position > high:
                self._suspect(
                    tp.topic, tp.partition, f"position {position} is past the end of the log ({high})"
                )
            elif position < high:
                at_end = False
        return at_end

    def take_progress(self) -> dict[str, Any]:
        """Latency buckets since the last call (also folded into the histograms) and totals."""
        latency = self.verifier.take_latency()
        for topic, buckets in latency.items():
            histogram = self.histograms.get(topic)
            if histogram is None:
                histogram = self.histograms[topic] = _histogram()
            for ms, count in buckets.items():
                histogram.record_value(min(max(ms, 0), _HIST_MAX_MS), count)
        states = self.verifier.partitions.values()
        return {
            "records": self.verifier.seen_records,
            "duplicated_in_partition": sum(s.duplicates for s in states),
            "corrupted": sum(s.corrupted for s in states),
            "foreign": sum(s.foreign for s in states),
            "latency": {topic: {str(k): v for k, v in b.items()} for topic, b in latency.items()},
        }

    # -- the end -------------------------------------------------------------------------

    def finish(
        self,
        ledger: AckLedger,
        *,
        drain_timeout: float,
        missing_workers: Iterable[str] = (),
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        settle: float = SETTLE,
    ) -> Verdict:
        """Consume until everything acknowledged is seen or the end is reached, then judge.

        "The end" — which turns a missing message into a *lost* one — needs both the
        partitions quiet (nothing read for ``settle`` seconds; every producer had drained
        before the ledger arrived, so nothing more is coming) and every position at the
        high watermark. The watermark alone comes from the latest fetch response, which on
        a loaded machine can predate the last writes.
        """
        started = last_read = time.monotonic()
        deadline = started + drain_timeout
        acked = {p.producer_id: p.acked() for p in ledger}
        reached_end = False
        next_check = started
        while True:
            try:
                if self.poll_once():
                    last_read = time.monotonic()
            except Exception as e:  # a consumer that cannot go on
                self.errors.append(scrub(str(e), self.config))
                break
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.5
                if on_progress is not None:
                    on_progress(self.take_progress())
                if self._all_seen(acked) or (now - last_read >= settle and self.at_end()):
                    reached_end = True
                    break
            if now >= deadline:
                reached_end = now - last_read >= settle and self.at_end()
                break
        if self.suspect and reached_end:
            self._reread_suspects()
        if reached_end:
            self._confirm_missing(acked)
        final = self.take_progress()
        if on_progress is not None:
            on_progress(final)
        self.consumer.close()
        summary = self.verifier.summary()
        return classify(
            self.run_id,
            ledger,
            summary,
            reached_end=reached_end,
            thresholds=self.thresholds,
            missing_workers=missing_workers,
            errors=self.errors,
            latency_ms={topic: percentiles(h) for topic, h in self.histograms.items()},
            topic_of=TopicNamer(ledger),
        )

    def _missing(self, acked: Mapping[int, Any]) -> dict[int, Any]:
        seen = self.verifier.summary().seen
        return {p: bits - seen[p] if p in seen else bits for p, bits in acked.items()}

    def _confirm_missing(self, acked: Mapping[int, Any]) -> None:
        """Before anything is called lost, read every partition again from the start of the run.

        "Lost" must never be a false alarm: a message the live read did not see is looked
        for once more by a fresh consumer. This costs time only when something is missing.
        """
        missing = {p: bits for p, bits in self._missing(acked).items() if bits}
        count = sum(len(bits) for bits in missing.values())
        if not count:
            return
        log.warning("%d acknowledged messages not seen; reading every partition again to confirm", count)
        self.suspect.update((tp.topic, tp.partition) for tp in self.assignment)
        self._reread_suspects()
        still = sum(len(bits) for bits in self._missing(acked).values())
        if still < count:
            found = {p: len(bits - self._missing(acked)[p]) for p, bits in missing.items()}
            log.warning(
                "the confirmation read found %d of them (per producer: %s); the live read had missed them",
                count - still,
                ", ".join(f"{p:016x}={n}" for p, n in found.items() if n),
            )

    def _all_seen(self, acked: Mapping[int, Any]) -> bool:
        if not acked or self.suspect:
            return False
        seen = self.verifier.summary().seen
        return all(not (bits - seen.get(p, bits.__class__())) for p, bits in acked.items())

    def _reread_suspects(self) -> None:
        """Forget every suspect partition and read it again from the start of the run."""
        suspects = sorted(self.suspect)
        log.info("reading %d partition(s) again after errors or a log reset", len(suspects))
        ends = high_watermarks(self.config, {t for t, _ in suspects})
        start: Offsets = {}
        for key in suspects:
            self.verifier.forget(*key)
            offset = self.start.get(key, 0)
            # A log that was recreated starts again at 0, below our start offset: read it all.
            start[key] = offset if offset <= ends.get(key, 0) else 0
        wanted = set(suspects)
        try:
            for batch in read_to_end(self.config, {t for t, _ in suspects}, start):
                self.verifier.process(
                    [m for m in batch if (m.topic(), m.partition()) in wanted], record_latency=False
                )
        except IngestloadError as e:
            self.errors.append(f"could not read suspect partitions again: {e}")
