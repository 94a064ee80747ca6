"""Verifying a run: consume its topics, then judge them against the ledger.

:class:`Readback` assigns every partition of the run's topics from the offsets taken
at run start (no consumer-group join, no commits) — and, as they appear, partitions and topics
that did not exist then, from their beginning — feeds batches to a
:class:`~ingestload.verify.verifier.Verifier`, keeps end-to-end latency histograms, and at the end
takes the merged :class:`~ingestload.messages.ledger.AckLedger` and decides (:meth:`finish`):

1. keep reading for ``late_grace`` seconds after the drain (late copies: retries, duplicates),
   then take every partition's end offset and read to it — never stopping early because every
   acknowledged message was seen: duplicates and corrupted copies after the last acknowledgement
   count as they would in a later ``ingestload verify``. Not there when the drain window runs
   out: the missing messages are *unseen* and the verdict INCONCLUSIVE, not FAIL;
2. make sure every partition still holds, at their offsets, the first record read from it (the
   one just before the run's start, where there is one) and the last: a partition whose log was
   replaced under the reader (a broker that lost its data — its new log may even have grown past
   the old read position, so that reading simply went on in it) is forgotten and read again from
   the beginning of its log, alone; so is one whose offsets went backwards or whose position is
   past its end. A check or re-read that fails makes the verdict INCONCLUSIVE: what cannot be
   read is never called lost;
3. compare each partition's log start with the run's start (records deleted by retention, compaction
   or DeleteRecords before they were read) and its last stable offset with its high watermark
   (records of an open transaction, not yet visible to a committed reader: waited for within the
   late grace); missing messages on such topics are unseen, and the verdict INCONCLUSIVE;
4. classify (:func:`~ingestload.verify.verdict.classify`); when that finds messages lost, read the
   partitions of the topics they were meant for once more, alone, from the run's start, and classify
   again (a record the live read skipped is never called lost; a second read that fails makes the
   verdict INCONCLUSIVE).

Every read is of committed records only (``isolation.level=read_committed``, whatever the run's
Kafka properties say — :func:`~ingestload.kafka.admin.reader`); a different setting is overridden
and logged.

Live, it runs in a process of its own (:mod:`ingestload.verify.process`); after the fact,
``ingestload verify`` runs it in-process.

Example (post-hoc, in-process)::

    run = Readback(config, topics, run_id, start=offsets)
    verdict = run.finish(ledger, drain_timeout=30)
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ingestload.errors import IngestloadError
from ingestload.kafka.admin import (
    Offsets,
    end_offsets,
    high_watermarks,
    read_partitions,
    reader,
    records_at,
    topic_partitions,
)
from ingestload.kafka.config import COMMITTED_ONLY, CONSUMER_DEFAULTS, scrub
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger
from ingestload.verify.body import BodySpec
from ingestload.verify.explain import Explainer
from ingestload.verify.shards import Shard, export_partitions, import_partitions, shard_of
from ingestload.verify.verdict import Thresholds, Verdict, classify
from ingestload.verify.verifier import Verifier

log = logging.getLogger("ingestload.verify")

#: Seconds the verifier keeps reading after the drain before it takes the end offsets, so that
#: late copies (a pipeline's retries and duplicates) count in the live verdict (``--late-grace``).
LATE_GRACE = 5.0
#: Seconds between looks for partitions and topics that appeared since the last look.
REFRESH_INTERVAL = 1.0
#: Consumer properties of ours that an AdminClient would only warn about.
_CONSUMER_ONLY = frozenset(CONSUMER_DEFAULTS) | frozenset(COMMITTED_ONLY)
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
    """Names the topic of a (producer, seq) that was never seen, from the producer's factory description
    and where its sender meant the factory's topics to go (``meant_for`` in the ledger's meta: an ingest
    API's ``--api-topic-map``): the topic the message was meant for, which is the one read again."""

    def __init__(self, ledger: AckLedger) -> None:
        self._factories: dict[int, MessageFactory | None] = {}
        self._routes: dict[int, Mapping[str, str]] = {}
        self._cache: dict[tuple[Any, ...], MessageFactory | None] = {}
        for producer in ledger:
            self._factories[producer.producer_id] = self._factory(producer.meta)
            routes = producer.meta.get("meant_for")
            if isinstance(routes, Mapping) and routes:
                self._routes[producer.producer_id] = {str(k): str(v) for k, v in routes.items()}

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
        if factory is None:
            return None
        topic = factory.topic_at(seq)
        routes = self._routes.get(producer_id)
        return routes.get(topic, topic) if routes else topic


def deleted_before_read(start: int, first_read: int | None, log_start: int) -> int:
    """How many of a partition's run offsets ``[start, …)`` were deleted before the verifier read them.

    0 when the log still starts at or before the run's start, or when the verifier's first record
    there was at or before it (it read on from there: a later deletion takes nothing from the
    verdict). Otherwise the offsets from the run's start to the first record read (or to the log's
    start, when nothing was read): a gap that the log's start proves deleted, not skipped over
    transaction markers.

    Example::

        >>> deleted_before_read(100, 140, 140), deleted_before_read(100, 99, 140)
        (40, 0)
        >>> deleted_before_read(0, 3, 0)  # a gap with the log still whole: transaction markers
        0
    """
    if log_start <= start:
        return 0
    if first_read is None:
        return log_start - start
    if first_read <= start:
        return 0
    return min(first_read, log_start) - start


def committed_only(config: Mapping[str, str]) -> dict[str, str]:
    """``config`` for a reader that judges: committed records only, and a warning when the user asked
    for something else (a run's ``isolation.level`` is the producer side's business, not the judge's)."""
    asked = config.get("isolation.level")
    if asked is not None and asked != COMMITTED_ONLY["isolation.level"]:
        log.warning(
            "the verifier reads committed records only (isolation.level=read_committed), not %s as the "
            "Kafka properties say: a record of an aborted or open transaction is not delivered",
            asked,
        )
    return {**config, **COMMITTED_ONLY}


class Readback:
    """Consumes a run's topics and judges them against the ledger."""

    def __init__(
        self,
        config: Mapping[str, str],
        topics: Iterable[str],
        run_id: str,
        *,
        start: Offsets | None = None,
        envelope_field: str = "_ingestload",
        body: BodySpec | Mapping[str, Any] | None = None,
        thresholds: Thresholds | None = None,
        batch: int = 10_000,
        record_latency: bool = True,
        shard: Shard | None = None,
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self.shard = shard
        """Which of several readers this is: it reads only the partitions :func:`shard_of` gives it."""
        self.reached_end = False
        """Every partition of this reader was read to its end (set by :meth:`finish`)."""
        self._end_highs: dict[tuple[str, int], int] = {}
        """The high watermarks the last look at the end offsets saw (see :meth:`_not_visible`)."""
        self.config = committed_only(config)
        self.topics = sorted(set(topics))
        self.run_id = run_id
        self.thresholds = thresholds or Thresholds()
        self.batch = batch
        self.record_latency = record_latency
        """False when judging after the fact: "sent → consumed" would then measure our delay."""
        self.body = body if isinstance(body, BodySpec) else BodySpec.from_dict(body, envelope_field)
        """How messages travel on the HTTP path (``--envelope-in``, ``--message-path``, members)."""
        self.verifier = Verifier(run_id, envelope_field=envelope_field, body=self.body)
        self.start: Offsets = dict(start) if start is not None else high_watermarks(self.config, self.topics)
        """Where the run begins in each partition; 0 for a partition that appeared during the run."""
        self.errors: list[str] = []
        """Why the verdict cannot be sure (each becomes a reason for INCONCLUSIVE)."""
        self.read_errors: dict[tuple[str, int], str] = {}
        """The last error reported while reading each partition (reasons only if its end is not reached)."""
        self.replaced: dict[tuple[str, int], str] = {}
        """Partitions whose log was certainly replaced (read again from its beginning at the end)."""
        self.histograms: dict[str, Any] = {}
        self.deleted: dict[tuple[str, int], int] = {}
        """Partitions whose run offsets were deleted before they were read, and how many offsets."""
        self.not_visible: dict[tuple[str, int], int] = {}
        """Partitions whose last stable offset stayed below their high watermark, and by how much."""
        self.watched_s: float | None = None
        """Seconds after the final ledger until the end offsets were taken (what the verdict covers)."""
        self.compacted: set[str] = set()
        """Topics of the missing messages whose cleanup policy compacts (looked up when messages are
        missing)."""
        self.consumer = reader(self.config, "verifier", logger=logging.getLogger("ingestload.librdkafka"))
        # Each partition is read from one record before the run's start where there is one: that
        # record (not processed) is the first the log must still hold at the end.
        self._fingerprints: Offsets = {}
        self.assigned: set[tuple[str, int]] = set()
        assignment = []
        for key in topic_partitions(self.consumer, self.topics, 10.0):
            if not self._mine(key):
                continue
            offset = self.start.get(key)
            if offset is None:  # created after the start offsets were taken: all of it is the run's
                offset = self.start[key] = 0
            if offset > 0:
                self._fingerprints[key] = offset - 1
            assignment.append(TopicPartition(*key, offset - 1 if offset > 0 else OFFSET_BEGINNING))
            self.assigned.add(key)
        if assignment:
            self.consumer.assign(assignment)
        self._next_refresh = time.monotonic() + REFRESH_INTERVAL

    def _mine(self, key: tuple[str, int]) -> bool:
        return self.shard is None or shard_of(*key, self.shard.of) == self.shard.number

    # -- shards --------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """What this shard learnt, after :meth:`finish`, for :meth:`merge` (JSON-able)."""
        return {
            "partitions": export_partitions(self.verifier),
            "seen_records": self.verifier.seen_records,
            "reached_end": self.reached_end,
            "errors": self.errors,
            "replaced": [[t, p, why] for (t, p), why in sorted(self.replaced.items())],
            "deleted": [[t, p, n] for (t, p), n in sorted(self.deleted.items())],
            "not_visible": [[t, p, n] for (t, p), n in sorted(self.not_visible.items())],
            "start": [[t, p, o] for (t, p), o in sorted(self.start.items()) if self._mine((t, p))],
            "watched_s": self.watched_s,
            "histograms": {topic: h.encode().decode() for topic, h in self.histograms.items()},
        }

    def merge(self, shard: Mapping[str, Any]) -> None:
        """Take in another shard's :meth:`export` (its partitions are not this reader's): the verdict
        then covers both, exactly as one reader of all their partitions would have judged them."""
        from hdrh.histogram import HdrHistogram

        import_partitions(self.verifier, shard["partitions"])
        self.verifier.seen_records += int(shard["seen_records"])
        self.reached_end = self.reached_end and bool(shard["reached_end"])
        self.errors += [e for e in shard["errors"] if e not in self.errors]
        self.replaced.update(((t, p), why) for t, p, why in shard["replaced"])
        self.deleted.update(((t, p), n) for t, p, n in shard["deleted"])
        self.not_visible.update(((t, p), n) for t, p, n in shard["not_visible"])
        self.start.update(((t, p), o) for t, p, o in shard["start"])
        self.assigned.update((t, p) for t, p, _ in shard["start"])
        if shard["watched_s"] is not None:
            self.watched_s = max(self.watched_s or 0.0, float(shard["watched_s"]))
        for topic, encoded in shard["histograms"].items():
            histogram = self.histograms.get(topic)
            if histogram is None:
                histogram = self.histograms[topic] = _histogram()
            histogram.add(HdrHistogram.decode(encoded))

    # -- consuming ---------------------------------------------------------------------

    def poll_once(self, timeout: float = 0.02) -> int:
        """Consume and record one batch; returns how many messages (not events) it held.

        It waits (up to ``timeout``) for the first message only, then takes what librdkafka has
        already fetched, without waiting: a batch is whatever arrived meanwhile. Each message's
        end-to-end latency is stamped when its batch is taken, so a wait to fill a batch
        (``consume(n, timeout)`` waits for ``n`` messages or the timeout) would count in it: at a
        few thousand msg/s, the whole timeout.
        """
        from confluent_kafka import KafkaError

        if time.monotonic() >= self._next_refresh:
            self.refresh()
        messages = self.consumer.consume(1, timeout)
        if not messages:
            return 0
        messages += self.consumer.consume(self.batch - 1, 0)
        good = messages
        # Any event (end of partition, an error) among them? One pass in C; not list.count(None):
        # confluent-kafka's KafkaError compared with None leaves an exception set.
        if any(map(type(messages[0]).error, messages)):
            good = []
            for message in messages:
                error = message.error()
                if error is None:
                    good.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    self._fingerprints.pop((message.topic(), message.partition()), None)
                else:
                    self.read_errors[(message.topic(), message.partition())] = scrub(str(error), self.config)
        if good and self._fingerprints:
            good = self._take_fingerprints(good)
        if good:
            self.verifier.process(good, record_latency=self.record_latency)
            for state in self.verifier.partitions.values():
                key = (state.topic, state.partition)
                if state.log_reset and key not in self.replaced:
                    self.replaced[key] = "offsets went backwards (log truncated or recreated)"
        return len(good)

    def _take_fingerprints(self, messages: list[Any]) -> list[Any]:
        """Keep each partition's record before the run's start as its last record read, unprocessed."""
        rest = []
        for message in messages:
            key = (message.topic(), message.partition())
            wanted = self._fingerprints.get(key)
            if wanted is None:
                rest.append(message)
                continue
            del self._fingerprints[key]
            if message.offset() == wanted:
                state = self.verifier._partition(*key)
                state.first_message = state.last_message = message
                state.last_offset = message.offset()
            else:  # that record is gone (retention): there is no fingerprint, the message is the run's
                rest.append(message)
        return rest

    def refresh(self) -> None:
        """Assign, from their beginning, partitions and topics of the run that appeared since the start."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self._next_refresh = time.monotonic() + REFRESH_INTERVAL
        try:
            found = topic_partitions(self.consumer, self.topics, 5.0)
        except Exception as e:  # Kafka unreachable: try again at the next refresh
            log.debug("metadata refresh failed: %s", scrub(str(e), self.config))
            return
        new = [key for key in found if key not in self.assigned and self._mine(key)]
        if not new:
            return
        self.consumer.incremental_assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in new])
        for key in new:
            self.start[key] = 0
            self.assigned.add(key)
        log.info("reading %d new partition(s): %s", len(new), ", ".join(f"{t}[{p}]" for t, p in new))

    def _positions(self) -> Offsets:
        """The next offset to read in each assigned partition."""
        from confluent_kafka import OFFSET_INVALID, TopicPartition

        positions = self.consumer.position([TopicPartition(t, p) for t, p in sorted(self.assigned)])
        return {
            (tp.topic, tp.partition): tp.offset
            if tp.offset != OFFSET_INVALID
            else self.start.get((tp.topic, tp.partition), 0)
            for tp in positions
        }

    def end_offsets(self, partitions: Iterable[tuple[str, int]] | None = None) -> Offsets | None:
        """Each assigned partition's end now (see :func:`~ingestload.kafka.admin.end_offsets`: a
        fetch at the end, made now), or ``None`` when Kafka did not tell (the next look will).
        ``partitions``: those instead (a copy of the assigned ones, for a look from another thread)."""
        highs: dict[tuple[str, int], int] = {}
        try:
            ends = end_offsets(self.config, self.assigned if partitions is None else partitions, highs=highs)
        except IngestloadError as e:
            log.debug("end offsets not known yet: %s", e)
            return None
        self._end_highs = highs
        return ends

    def reached(self, ends: Offsets) -> bool:
        """Every partition has been read to its end in ``ends``. A position past the high watermark of
        the latest fetch response means the log shrank under us (the embedded broker, restarted,
        answers fetches past its end with nothing and no error): that partition was replaced and will
        be read again."""
        from confluent_kafka import TopicPartition

        done = True
        for key, position in self._positions().items():
            _, fetched = self.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            if 0 <= fetched < position:
                self.replaced.setdefault(key, f"position {position} is past the end of the log ({fetched})")
            elif position < ends.get(key, 0):
                done = False
        return done

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
            "misrouted": sum(s.misrouted for s in states),
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
        late_grace: float = LATE_GRACE,
    ) -> Verdict:
        """Read on for ``late_grace`` seconds, then to the end offsets of that moment, then judge.

        Called once every producer has drained (the ledger is final). Bounded by ``drain_timeout``
        seconds: when the end is not reached by then, what is missing is unseen, not lost.
        """
        self.read_to_end(drain_timeout=drain_timeout, on_progress=on_progress, late_grace=late_grace)
        return self.judge(ledger, missing_workers)

    def read_to_end(
        self,
        *,
        drain_timeout: float,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        late_grace: float = LATE_GRACE,
    ) -> bool:
        r""":meth:`finish` without the verdict: read on for ``late_grace`` seconds, then to the end offsets
        of that moment, check the logs still hold what was read; True when the end was reached. A
        shard of several stops here: its :meth:`export` goes to the reader that :meth:`merge`\ s
        every shard and judges."""
        started = time.monotonic()
        deadline = started + drain_timeout
        grace_over = started + min(late_grace, drain_timeout)
        # Records not yet visible (an open transaction) are waited for until a grace after the ends
        # were first reached, within the drain window.
        visible_by = min(deadline, grace_over + max(late_grace, 1.0))
        next_look = started
        ends: Offsets | None = None
        reached_end = False
        next_check = started
        # The first look at the end offsets runs beside the reading (a consumer of its own: ~0.15 s
        # that the reader would otherwise stand still for).
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="end-offsets")
        looking: concurrent.futures.Future[Offsets | None] | None = None
        while True:
            try:
                got = self.poll_once()
            except Exception as e:  # a consumer that cannot go on
                self.errors.append(scrub(str(e), self.config))
                break
            now = time.monotonic()
            tick = now >= next_check
            if tick:
                next_check = now + 0.5
                if on_progress is not None:
                    on_progress(self.take_progress())
                if ends is None and looking is None and now >= grace_over:
                    self.refresh()  # partitions that appeared until now are part of the end
                    looking = pool.submit(self.end_offsets, sorted(self.assigned))
            if looking is not None and looking.done():
                ends, looking = looking.result(), None  # None: Kafka did not tell, the next tick asks
                if ends is not None:
                    self.watched_s = time.monotonic() - started
            # Caught up (a short batch) or on the tick: are we there?
            if ends is not None and (tick or got < self.batch) and self.reached(ends) and now >= next_look:
                behind = self._not_visible(ends)
                if not behind or now >= visible_by:
                    self.not_visible = behind
                    reached_end = True
                    break
                # An open transaction holds the last stable offset back: wait (within the grace) for
                # it to end, reading on to the new ends.
                next_look = time.monotonic() + 0.5
                ends = self.end_offsets() or ends
                self.watched_s = time.monotonic() - started
            if now >= deadline:
                break
        pool.shutdown(wait=False, cancel_futures=True)
        if reached_end:
            reached_end = self._check_logs()
            self.deleted = self._deleted()
        else:
            self.errors += [f"reading {t}[{p}]: {why}" for (t, p), why in sorted(self.read_errors.items())][
                :5
            ]
        final = self.take_progress()
        if on_progress is not None:
            on_progress(final)
        self.consumer.close()
        self.reached_end = reached_end
        return reached_end

    def judge(self, ledger: AckLedger, missing_workers: Iterable[str] = ()) -> Verdict:
        """The verdict on what was read (after :meth:`finish`, or after :meth:`merge` of every shard):
        classified, and when messages look lost, the partitions of their topics read again first."""
        reached_end = self.reached_end
        missing_workers = list(missing_workers)
        verdict = self._judge(ledger, reached_end, missing_workers)
        if reached_end and verdict.lost:
            self.compacted = self._compacted(set(verdict.lost_by_topic) - {"?"} or set(self.topics))
            if self.compacted:
                verdict = self._judge(ledger, reached_end, missing_workers)
        if reached_end and verdict.lost and self._confirm_losses(verdict.lost_by_topic, verdict.seen):
            verdict = self._judge(ledger, True, missing_workers)
        elif reached_end and verdict.lost:
            verdict = self._judge(ledger, False, missing_workers)
        return verdict

    def _not_visible(self, ends: Offsets) -> dict[tuple[str, int], int]:
        """Partitions whose high watermark is above the end a committed reader gets (its last stable
        offset): records of an open transaction there are not visible yet. Empty when Kafka does not
        tell (nothing is claimed on missing information).

        The look that took ``ends`` answers first: where the high watermark it saw at (or after) each
        end is that end, nothing was above it then, and what is written later lands past it — no other
        consumer is needed (one costs ~0.1 s). Otherwise a read-uncommitted consumer looks."""
        seen = self._end_highs
        if ends and all(0 <= seen.get(key, -1) <= end for key, end in ends.items()):
            return {}
        try:
            highs = end_offsets(self.config, ends, committed=False)
        except IngestloadError as e:
            log.debug("high watermarks not known: %s", e)
            return {}
        return {key: high - ends[key] for key, high in highs.items() if high > ends.get(key, high)}

    def _deleted(self) -> dict[tuple[str, int], int]:
        """Partitions whose log now starts after the run's start while the first record read there came
        after it too: those offsets were deleted before they were read (:func:`deleted_before_read`)."""
        from confluent_kafka import TopicPartition

        deleted: dict[tuple[str, int], int] = {}
        try:
            probe = reader(self.config, "log-start")
        except Exception as e:  # pragma: no cover - a consumer that cannot be created
            log.debug("log starts not known: %s", e)
            return deleted
        deadline = time.monotonic() + 10.0  # a broker that does not answer costs 10 s, not 5 s a partition
        try:
            for key in sorted(self.assigned):
                left = deadline - time.monotonic()
                if left <= 0:
                    log.debug("log starts not known for every partition: Kafka too slow to answer")
                    break
                try:
                    low, _ = probe.get_watermark_offsets(
                        TopicPartition(*key), timeout=min(5.0, left), cached=False
                    )
                except Exception as e:  # Kafka did not say: nothing is claimed
                    log.debug("log start of %s[%d] not known: %s", key[0], key[1], e)
                    continue
                state = self.verifier.partitions.get(key)
                first = None
                if state is not None and state.first_message is not None:
                    first = int(state.first_message.offset())
                gone = deleted_before_read(self.start.get(key, 0), first, int(low))
                if gone:
                    deleted[key] = gone
        finally:
            probe.close()
        if deleted:
            log.warning(
                "records deleted before the verifier read them: %s",
                ", ".join(f"{t}[{p}] {n} offsets" for (t, p), n in sorted(deleted.items())),
            )
        return deleted

    def _compacted(self, topics: Iterable[str]) -> set[str]:
        """Those of ``topics`` whose ``cleanup.policy`` includes ``compact`` (compaction removes records
        anywhere in the log, not only at its start). Empty when Kafka does not tell."""
        from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

        wanted = sorted(t for t in topics if t in self.topics)
        if not wanted:
            return set()
        admin_config: dict[str, str | int | float | bool] = {
            k: v for k, v in self.config.items() if k not in _CONSUMER_ONLY
        }
        try:
            admin = AdminClient(admin_config)
            futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in wanted])
            found = set()
            for resource, future in futures.items():
                entry = future.result(10).get("cleanup.policy")
                if entry is not None and "compact" in str(entry.value):
                    found.add(resource.name)
        except Exception as e:  # Kafka did not say: nothing is claimed
            log.debug("cleanup policies not known: %s", scrub(str(e), self.config))
            return set()
        if found:
            log.warning("compacted topics among those of the missing messages: %s", ", ".join(sorted(found)))
        return found

    def _judge(self, ledger: AckLedger, reached_end: bool, missing_workers: list[str]) -> Verdict:
        summary = self.verifier.summary()
        if summary.corrupted_bodies:  # name what changed in the first corrupted messages shown
            explainer = Explainer(ledger, self.body)
            summary.corrupted_samples = [
                i._replace(detail=explainer.explain(i.producer_id, i.seq, *summary.corrupted_bodies[i]))
                if i in summary.corrupted_bodies
                else i
                for i in summary.corrupted_samples
            ]
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
            deleted=self.deleted,
            not_visible=self.not_visible,
            watched_s=self.watched_s,
            compacted=self.compacted,
            read_to={
                (state.topic, state.partition): state.last_offset + 1
                for state in self.verifier.partitions.values()
                if state.last_offset >= 0
            },
        )

    def _confirm_losses(self, lost_by_topic: Mapping[str, int], seen_before: int) -> bool:
        """Before calling messages lost, read the partitions of the topics they were meant for once
        more, alone, from the run's start to their end (a second reader: a record the live read
        skipped would otherwise be called lost). False (with a reason) when that read fails: what
        cannot be read is never called lost."""
        topics = set(lost_by_topic)
        keys = sorted(k for k in self.assigned if k[0] in topics)
        if not keys:
            return True
        from confluent_kafka import OFFSET_BEGINNING

        where = {key: self.start.get(key, 0) or OFFSET_BEGINNING for key in keys}
        where.update((key, OFFSET_BEGINNING) for key in keys if key in self.replaced)
        if not self._read_again(where, "the partitions of the lost messages again to confirm"):
            return False
        seen_after = sum(len(s) for s in self.verifier.summary().seen.values())
        if seen_after != seen_before:
            log.warning(
                "a second read of %s found %+d message(s) the live read had not seen",
                ", ".join(sorted(topics)),
                seen_after - seen_before,
            )
        return True

    def _check_logs(self) -> bool:
        """Check that every partition still holds the first and the last record read from it; read
        every replaced log again from its beginning. False (with a reason) when that could not be done."""
        checks: list[tuple[tuple[str, int], Any]] = []
        for state in self.verifier.partitions.values():
            key = (state.topic, state.partition)
            if key not in self.replaced and state.first_message is not None:
                checks.append((key, state.first_message))
                if state.last_message is not state.first_message:
                    checks.append((key, state.last_message))
        try:
            found = records_at(self.config, [(key, message.offset()) for key, message in checks])
        except IngestloadError as e:
            self.errors.append(f"could not check that the partitions still hold what was read: {e}")
            return False
        for key, message in checks:
            now = found.get((key, message.offset()))
            if now is None or not _same_record(now, message):
                self.replaced.setdefault(
                    key, f"the record read at offset {message.offset()} is no longer in the log"
                )
        if not self.replaced:
            return True
        from confluent_kafka import OFFSET_BEGINNING

        keys = sorted(self.replaced)
        log.warning(
            "reading %d partition(s) again from the beginning of their log: %s",
            len(keys),
            "; ".join(f"{t}[{p}]: {self.replaced[(t, p)]}" for t, p in keys),
        )
        what = f"{len(keys)} partition(s) again after their log was replaced"
        return self._read_again(dict.fromkeys(keys, OFFSET_BEGINNING), what)

    def _read_again(self, where: Offsets, what: str) -> bool:
        """Forget what was learnt from the partitions in ``where`` and read them again, alone, from
        those offsets to their end. False (with the reason "could not read ``what``") when that fails."""
        for key in where:
            self.verifier.forget(*key)
        try:
            for batch in read_partitions(self.config, where):
                self.verifier.process(batch, record_latency=False)
        except IngestloadError as e:
            self.errors.append(f"could not read {what}: {e}")
            return False
        return True


def _same_record(a: Any, b: Any) -> bool:
    """The same Kafka record: same value, headers and timestamp."""
    return bool(a.value() == b.value() and a.headers() == b.headers() and a.timestamp() == b.timestamp())
