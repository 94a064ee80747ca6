"""Verifying a run: the consuming engine, its own process, and the handle the master holds.

:class:`VerificationRun` assigns every partition of the run's topics from the offsets taken
at run start (no consumer-group join, no commits), feeds batches to a
:class:`~ingestload.verifier.Verifier`, keeps end-to-end latency histograms, and at the end
takes the merged :class:`~ingestload.ledger.AckLedger` and decides (:meth:`finish`):

1. keep consuming until every acknowledged message has been seen, or until the end of
   every partition has been reached (position ≥ the high watermark of the latest fetch,
   after a settle time longer than a fetch wait), or until the drain window runs out;
2. read again, from the start, every partition that was *suspect* — an error was reported
   for it, or its offsets went backwards (a broker that lost its log) — so the verdict
   describes what is in Kafka at the end;
3. classify (:func:`~ingestload.verdict.classify`).

Live, the engine runs in its own process (``python -m ingestload.verification``) so that
consuming hundreds of thousands of messages per second does not steal the Locust master's
event loop. It speaks JSON lines: the first stdin line configures it (secrets travel there,
never in argv), then ``{"cmd": "finish", …}``; on stdout it answers ``ready``, periodic
``progress`` and a final ``verdict``. :class:`VerifierProcess` is the master's side.

Example (post-hoc, in-process)::

    run = VerificationRun(config, topics, run_id, start=offsets)
    verdict = run.finish(ledger, drain_timeout=30)
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import orjson

from ingestload.errors import IngestloadError
from ingestload.factory import MessageFactory
from ingestload.kafka import Offsets, read_to_end
from ingestload.ledger import AckLedger
from ingestload.settings import CONSUMER_DEFAULTS, scrub
from ingestload.verdict import Thresholds, Verdict, classify
from ingestload.verifier import Verifier

log = logging.getLogger("ingestload.verification")

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
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from ingestload.kafka import high_watermarks

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
        self.consumer = Consumer(
            {
                **CONSUMER_DEFAULTS,
                **self.config,
                "group.id": f"ingestload-verifier-{uuid.uuid4().hex}",
                "enable.auto.commit": "false",
                "enable.partition.eof": "true",
                "auto.offset.reset": "earliest",
                "logger": logging.getLogger("ingestload.librdkafka"),
                # Client-wide trouble (all brokers down, transport errors) arrives here, not as
                # message errors: any partition may have lost data meanwhile.
                "error_cb": self._on_client_error,
            }
        )
        metadata = self.consumer.list_topics(timeout=10)
        self.assignment = []
        for topic in self.topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for partition in sorted(info.partitions):
                offset = self.start.get((topic, partition), OFFSET_BEGINNING)
                self.assignment.append(TopicPartition(topic, partition, offset))
        self.consumer.assign(self.assignment)

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
        from ingestload.kafka import high_watermarks

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


# -- the verifier process -----------------------------------------------------------------


def _emit(out: IO[bytes], message: Mapping[str, Any]) -> None:
    out.write(orjson.dumps(message) + b"\n")
    out.flush()


def main() -> int:
    """``python -m ingestload.verification``: the live verifier (see the module docstring)."""
    logging.basicConfig(level=logging.WARNING, format="[verifier] %(levelname)s %(message)s")
    out = sys.stdout.buffer
    first = sys.stdin.buffer.readline()
    if not first:
        return 2
    setup = orjson.loads(first)
    try:
        run = VerificationRun(
            setup["config"],
            setup["topics"],
            setup["run_id"],
            envelope_field=setup.get("envelope_field", "_ingestload"),
            thresholds=Thresholds(**setup.get("thresholds", {})),
        )
    except Exception as e:
        _emit(out, {"type": "error", "message": scrub(str(e), setup.get("config", {}))})
        return 1
    _emit(out, {"type": "ready", "start": [[t, p, o] for (t, p), o in sorted(run.start.items())]})

    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read_commands() -> None:
        for line in sys.stdin.buffer:
            commands.put(orjson.loads(line))
        commands.put(None)  # the master went away

    threading.Thread(target=read_commands, daemon=True).start()
    interval = float(setup.get("interval", 1.0))
    next_report = time.monotonic() + interval
    while True:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = {}
        if command is None or command.get("cmd") == "stop":
            return 0
        if command.get("cmd") == "finish":
            verdict = run.finish(
                AckLedger.from_json(command["ledger"]),
                drain_timeout=float(command["drain_timeout"]),
                missing_workers=command.get("missing_workers", []),
                on_progress=lambda p: _emit(out, {"type": "progress", **p}),
            )
            _emit(out, {"type": "verdict", "verdict": verdict.to_dict(), "report": verdict.report()})
            return 0
        try:
            run.poll_once()
        except Exception as e:
            run.errors.append(scrub(str(e), run.config))
            time.sleep(0.2)
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + interval
            _emit(out, {"type": "progress", **run.take_progress()})


class VerifierProcess:
    """The master's handle on the live verifier process (gevent-friendly when Locust is loaded)."""

    def __init__(
        self,
        config: Mapping[str, str],
        topics: Iterable[str],
        run_id: str,
        *,
        envelope_field: str,
        thresholds: Thresholds,
        on_progress: Callable[[dict[str, Any]], None],
        interval: float = 1.0,
    ) -> None:
        self.run_id = run_id
        self.on_progress = on_progress
        self.start: Offsets = {}
        self.error: str | None = None
        self.verdict: dict[str, Any] | None = None
        self.report: str | None = None
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ingestload.verification"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        setup = {
            "config": dict(config),
            "topics": sorted(set(topics)),
            "run_id": run_id,
            "envelope_field": envelope_field,
            "thresholds": thresholds.__dict__,
            "interval": interval,
        }
        self._send(setup)
        self._reader: Any = None

    def _send(self, message: Mapping[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps(message) + b"\n")
        self._proc.stdin.flush()

    def _read(self) -> dict[str, Any] | None:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        return orjson.loads(line) if line else None

    def wait_ready(self) -> bool:
        """Block (cooperatively under gevent) until the verifier has its start offsets."""
        message = self._read()
        if message is None or message.get("type") != "ready":
            self.error = (message or {}).get("message", "the verifier process exited during startup")
            return False
        self.start = {(t, p): o for t, p, o in message["start"]}
        return True

    def follow(self) -> None:
        """Read progress until the verdict arrives (run it in a greenlet)."""
        while True:
            message = self._read()
            if message is None:
                if self.verdict is None and self.error is None:
                    self.error = "the verifier process ended without a verdict"
                return
            if message.get("type") == "progress":
                self.on_progress(message)
            elif message.get("type") == "verdict":
                self.verdict, self.report = message["verdict"], message["report"]
                return
            elif message.get("type") == "error":
                self.error = message.get("message")

    def finish(self, ledger: AckLedger, drain_timeout: float, missing_workers: Iterable[str]) -> None:
        """Hand over the final ledger; :meth:`follow` then receives the verdict."""
        try:
            self._send(
                {
                    "cmd": "finish",
                    "ledger": ledger.to_json(),
                    "drain_timeout": drain_timeout,
                    "missing_workers": sorted(missing_workers),
                }
            )
        except (BrokenPipeError, OSError) as e:
            self.error = f"the verifier process is gone ({e})"

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._send({"cmd": "stop"})
        with contextlib.suppress(Exception):
            self._proc.wait(5)
        if self._proc.poll() is None:
            self._proc.kill()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The stdin reader thread may sit in a blocking read; leave without waiting for it.
    os._exit(code)
