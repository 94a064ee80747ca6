"""The delivery-future pattern: an asyncio server waits for Kafka's acknowledgement without blocking.

One synchronous confluent-kafka ``Producer`` per worker process; ``produce()`` is called on
the event loop (it only enqueues); a **poll thread** serves the delivery reports and hands
every completed request back to the loop with ``loop.call_soon_threadsafe`` — one call per
poll round, not per message, so a busy loop is woken once for hundreds of reports.
Why not confluent-kafka's ``AIOProducer``: it batches produce calls on its own timer, which
adds latency to every request when traffic is low, and a request here waits for its own
delivery report.

A **probe thread** asks Kafka for metadata every second through the same producer: that is
readiness (``/readyz``), and while Kafka does not answer, requests get 503 at once instead
of piling up behind a dead broker. A probe that gets no answer while Kafka acknowledged
messages in the last few seconds does not count: under load a metadata request can wait
behind large produce requests, and a busy Kafka must not be declared gone. When Kafka comes
back, missing topics are created again (a restarted embedded broker has none) and, if the
connection had been lost, the producer is replaced by a fresh one: an idempotent producer
whose broker forgot its producer id (the embedded broker keeps nothing across a restart)
would otherwise retry "unknown producer id" until every message timed out. The old producer
is polled until each of its messages was reported, so no waiting request is left without an
answer.

Example (inside a running event loop)::

    gateway = KafkaGateway(config, on_reachable=create_topics)
    gateway.start()
    submission = gateway.submit("gov-alarm", [body])     # .refused: the client's queue was full
    failures = await submission.ticket.future  # [] once Kafka acknowledged, else [(index, KafkaError)]
    await gateway.aclose(timeout=15)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ingestload.kafka.config import scrub

log = logging.getLogger("ingestload.api")

#: Ticket kinds: the request waits for it / the request was answered already (fault injection:
#: failures are losses) / the second copy of a duplicated message (fault injection).
WAIT, EARLY, DUPLICATE = 0, 1, 2

#: Seconds after an acknowledgement during which a probe that got no answer does not count:
#: under load a metadata request can wait behind large produce requests.
BUSY_GRACE = 5.0

_MSG_TIMED_OUT = -192  # KafkaError._MSG_TIMED_OUT
_ALL_BROKERS_DOWN = -187  # KafkaError._ALL_BROKERS_DOWN


class Ticket:
    """Messages of one request produced together; ``future`` resolves when all were reported."""

    __slots__ = ("failures", "future", "kind", "offset", "remaining", "size", "topic")

    def __init__(
        self, future: asyncio.Future[list[tuple[int, Any]]] | None, size: int, kind: int, topic: str
    ):
        self.future = future
        """Resolves to the failed ``(index, KafkaError)`` pairs (empty: all acknowledged)."""
        self.size = size
        self.remaining = size
        self.failures: list[tuple[int, Any]] = []
        self.kind = kind
        self.topic = topic
        self.offset: tuple[int, int] = (-1, -1)
        """(partition, offset) of the last acknowledged message."""


class Submission:
    """What :meth:`KafkaGateway.submit` did with a request's messages."""

    __slots__ = ("refused", "ticket")

    def __init__(self, ticket: Ticket | None, refused: list[tuple[int, Any]]) -> None:
        self.ticket = ticket
        """Ticket of the messages handed to the Kafka client (``None`` when none were)."""
        self.refused = refused
        """``(index, error)`` of messages the client refused at once: ``BufferError`` (its queue
        is full) or a ``KafkaException`` (e.g. message too large)."""


class KafkaGateway:
    """A producer, its poll thread and a readiness probe, bound to the running event loop."""

    def __init__(
        self,
        config: Mapping[str, str],
        *,
        on_reachable: Callable[[], None] | None = None,
        probe_topic: str | None = None,
        probe_interval: float = 1.0,
        on_early_loss: Callable[[str, int], None] | None = None,
        on_duplicate_loss: Callable[[str, int], None] | None = None,
    ) -> None:
        self.config = dict(config)
        self.on_reachable = on_reachable
        self.on_early_loss = on_early_loss
        self.on_duplicate_loss = on_duplicate_loss
        self.probe_interval = probe_interval
        self.probe_topic = probe_topic
        self.in_flight = 0
        """Messages handed to the client and not yet reported (event loop thread only)."""
        self.reachable = False
        """Kafka answered the last metadata probe."""
        self.last_error = "not probed yet"
        """Why Kafka is unreachable (secret-free)."""
        self.delivered = 0
        """Messages Kafka acknowledged."""
        self.failed = 0
        """Messages whose delivery failed."""
        self.last_acknowledged = 0.0
        """``time.monotonic()`` when Kafka last acknowledged a message."""
        self.replaced = 0
        """How often the producer was replaced (after a lost connection, a fatal error or timeouts)."""
        self._replace_reason = ""
        self._retiring: list[tuple[Any, float]] = []
        """Replaced producers still holding messages, with the time they get purged."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.probed = threading.Event()
        """Set once the first readiness probe has finished (either way)."""
        self._events: list[tuple[Ticket, int, Any]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: Any = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Create the producer and start the poll and probe threads (call from the event loop)."""
        self._loop = asyncio.get_running_loop()
        self._producer = self._new_producer()
        for name, target in (("poll", self._poll_loop), ("probe", self._probe_loop)):
            thread = threading.Thread(target=target, name=f"ingestload-api-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        config: dict[str, Any] = dict(self.config)
        config["error_cb"] = self._on_error
        return Producer(config)

    async def aclose(self, timeout: float) -> int:
        """Wait (up to ``timeout`` s) until every message was reported, then stop; returns how many
        were still unreported (0 after a clean shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.02)
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        left = 0
        if self._producer is not None:
            # Reports served by flush() land in _events; resolve them here, on the loop.
            for producer in [*(old for old, _ in self._retiring), self._producer]:
                left += await asyncio.to_thread(producer.flush, max(0.0, deadline - loop.time()))
            events, self._events = self._events, []
            self._resolve(events)
        return int(left)

    # -- the hot path --------------------------------------------------------------------

    def submit(
        self, topic: str, values: Sequence[bytes], kind: int = WAIT, want_offset: bool = False
    ) -> Submission:
        """Hand ``values`` to the Kafka client (event loop thread only). ``kind=WAIT`` tickets
        carry a future; the others are tracked for counting only."""
        assert self._loop is not None, "call start() first"
        future = self._loop.create_future() if kind == WAIT else None
        ticket = Ticket(future, len(values), kind, topic)
        produce = self._producer.produce
        refused: list[tuple[int, Any]] = []
        for index, value in enumerate(values):
            try:
                produce(topic, value, on_delivery=self._callback(ticket, index, want_offset))
            except BufferError as e:
                refused.extend((i, e) for i in range(index, len(values)))
                break
            except Exception as e:  # KafkaException: e.g. message larger than message.max.bytes
                refused.append((index, e))
        produced = len(values) - len(refused)
        if not produced:
            return Submission(None, refused)
        # No report of this ticket has been counted yet: that happens on this thread, later.
        ticket.size = ticket.remaining = produced
        self.in_flight += produced
        return Submission(ticket, refused)

    def _callback(self, ticket: Ticket, index: int, want_offset: bool) -> Callable[[Any, Any], None]:
        # Runs in the poll thread, inside Producer.poll(). It only records the report: tickets
        # are counted down on the event loop (in _resolve), the one thread that touches them,
        # because the loop may still be producing a batch while its first reports come in.
        # _events is looked up at call time: the poll thread swaps the list after every round.
        if want_offset:

            def delivered_with_offset(err: Any, msg: Any) -> None:
                if err is None:
                    ticket.offset = (msg.partition(), msg.offset())
                self._events.append((ticket, index, err))

            return delivered_with_offset

        def delivered(err: Any, msg: Any) -> None:
            self._events.append((ticket, index, err))

        return delivered

    def _poll_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            try:
                self._producer.poll(0.05)
            except Exception as e:  # poll() raises a fatal error: the probe replaces the producer
                if not self._replace_reason.startswith("fatal"):
                    self._replace_reason = f"fatal error: {self._scrub(e)}"
                    log.error("the Kafka producer hit a fatal error: %s", self._scrub(e))
                    self._wake.set()
                self._stop.wait(0.05)
            if self._retiring:
                self._serve_retiring()
            if self._events:
                events, self._events = self._events, []
                try:
                    loop.call_soon_threadsafe(self._resolve, events)
                except RuntimeError:  # the loop is closed: the process is going away
                    return

    def _serve_retiring(self) -> None:
        """Poll replaced producers until every message they hold was reported; one that still
        holds messages long after message.timeout.ms is purged (its messages fail, reported)."""
        now = time.monotonic()
        for old, deadline in list(self._retiring):
            with contextlib.suppress(Exception):
                if now > deadline:
                    old.purge()
                old.poll(0)
            if len(old) == 0:
                with self._lock:
                    self._retiring.remove((old, deadline))

    def _resolve(self, events: list[tuple[Ticket, int, Any]]) -> None:
        acknowledged = False
        for ticket, index, err in events:
            if err is None:
                acknowledged = True
            else:
                ticket.failures.append((index, err))
                if self.reachable and err.code() == _MSG_TIMED_OUT:
                    # Kafka answers metadata but this message never got through: the producer
                    # may be wedged (e.g. the broker lost its producer-id state); replace it.
                    self._replace_reason = (
                        self._replace_reason or "messages time out while Kafka is reachable"
                    )
            ticket.remaining -= 1
            if ticket.remaining == 0:
                self._finish(ticket)
        if acknowledged:
            self.last_acknowledged = time.monotonic()

    def _finish(self, ticket: Ticket) -> None:
        self.in_flight -= ticket.size
        failed = len(ticket.failures)
        self.failed += failed
        self.delivered += ticket.size - failed
        if ticket.kind == WAIT:
            future = ticket.future
            if future is not None and not future.done():
                future.set_result(ticket.failures)
        elif failed and ticket.kind == EARLY and self.on_early_loss is not None:
            self.on_early_loss(ticket.topic, failed)
        elif failed and ticket.kind == DUPLICATE and self.on_duplicate_loss is not None:
            self.on_duplicate_loss(ticket.topic, failed)

    # -- readiness -----------------------------------------------------------------------

    def _probe_loop(self) -> None:
        from confluent_kafka import KafkaException

        while not self._stop.is_set():
            if self._replace_reason.startswith("fatal"):
                # A producer with a fatal error cannot even ask for metadata: replace it first.
                try:
                    self._replace_producer()
                except Exception as e:
                    log.error("cannot create a new Kafka producer: %s", self._scrub(e))
            try:
                # One topic's metadata, not the whole cluster's: cheap on a cluster with many topics.
                self._producer.list_topics(self.probe_topic, timeout=max(2.0, self.probe_interval))
            except KafkaException as e:
                if time.monotonic() - self.last_acknowledged < BUSY_GRACE:
                    # No metadata answer in time, yet Kafka acknowledged messages a moment ago:
                    # busy, not gone (a metadata request waits behind large produce requests).
                    self._wake.wait(self.probe_interval)
                    self._wake.clear()
                    continue
                if self.reachable:
                    log.warning(
                        "Kafka at %s is unreachable: %s", self.config["bootstrap.servers"], self._scrub(e)
                    )
                self.reachable = False
                self.last_error = self._scrub(e)
            else:
                try:
                    if self._replace_reason:
                        self._replace_producer()
                    if not self.reachable and self.on_reachable is not None:
                        self.on_reachable()
                except Exception as e:  # e.g. topic creation refused: stay not ready, try again
                    self.reachable = False
                    self.last_error = self._scrub(e)
                else:
                    if not self.reachable:
                        log.info("Kafka at %s is reachable", self.config["bootstrap.servers"])
                    self.reachable = True
                    self.last_error = ""
            self.probed.set()
            self._wake.wait(self.probe_interval)
            self._wake.clear()

    def _replace_producer(self) -> None:
        """Swap in a fresh producer (probe thread). The old one keeps its messages: it is polled
        until each was reported, so every waiting request still gets its definite answer."""
        reason, self._replace_reason = self._replace_reason, ""
        fresh = self._new_producer()
        grace = float(self.config.get("message.timeout.ms", 30000)) / 1000 + 5
        with self._lock:
            self._retiring.append((self._producer, time.monotonic() + grace))
            self._producer = fresh
        self.replaced += 1
        log.warning("replaced the Kafka producer (%s)", reason)

    def _on_error(self, err: Any) -> None:
        # Runs in the poll thread. A broker that went away may come back without the state
        # the idempotent producer relies on (the embedded broker keeps nothing across a
        # restart), and a fatal error makes a producer unusable: either way, once Kafka
        # answers again the probe swaps in a fresh producer.
        with contextlib.suppress(Exception):
            if err.fatal():
                if not self._replace_reason.startswith("fatal"):
                    self._replace_reason = f"fatal error: {self._scrub(err)}"
                    log.error("the Kafka producer hit a fatal error: %s", self._scrub(err))
                    self._wake.set()
            elif err.code() == _ALL_BROKERS_DOWN:
                self._replace_reason = self._replace_reason or "the connection to Kafka was lost"

    def _scrub(self, error: Any) -> str:
        return scrub(str(error), self.config)
