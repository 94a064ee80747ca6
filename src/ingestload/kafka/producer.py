"""KafkaProducerClient: the one confluent-kafka Producer of a Locust process, shared by its users.

Rules it keeps (see docs/architecture.md, "gevent rules"):

* one Producer per process, never per user or per message;
* ``poll(0)`` only — from a background greenlet and after each batch — never ``poll()``
  or ``flush()`` with a timeout, which would freeze every greenlet of the process;
* a full local queue (``BufferError``) is backpressure: the message is kept, the client
  polls, the user yields and retries later, and the event is counted;
* every delivery report is one Locust ``request``: request_type ``KAFKA``, name = topic,
  response_time = produce-to-ack in ms, length = value bytes, exception =
  :class:`~ingestload.errors.KafkaDeliveryError` for a failed delivery; acknowledgements
  reach Locust's own stats listener in bulk and every other listener one call each
  (an :class:`AckSink`: the Locust side's :mod:`ingestload.locust.kafka_stats`), a failure fires
  a real event;
* every report is filed in the run's ledger: each message carries its seq in its
  delivery callback (``partial(report, seq)``), because librdkafka does not return
  headers with a failed report — the one case where the seq matters.

Example::

    client = KafkaProducerClient(
        environment,
        settings.kafka.producer_config(),
        factory,
        ack_sink=lambda kind: AckStats(environment, kind),
    )
    client.begin_run(run_id="00112233445566ff")
    sent = client.send(500)          # ≤ 500: fewer when the local queue is full
    client.drain(timeout=30)         # at stop: wait (cooperatively) for the last acks
"""

from __future__ import annotations

import logging
import time
from binascii import hexlify
from collections import defaultdict
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import gevent

from ingestload.errors import ConfigError, KafkaDeliveryError
from ingestload.kafka.config import scrub
from ingestload.messages.envelope import HEADER, checksum
from ingestload.messages.factory import MessageFactory
from ingestload.messages.sender import EnvelopeSender, Outcomes

#: librdkafka errors after which the message was certainly not written. Not among them:
#: ``_PURGE_QUEUE`` — a message purged from the queue may be one that was sent, not acknowledged,
#: and queued again for a retry (the first attempt may have been written), and confluent-kafka
#: does not tell which; ``_MSG_TIMED_OUT``, ``_PURGE_INFLIGHT`` and transport errors likewise.
DEFINITE_FAILURES = frozenset(
    {
        "_MSG_SIZE_TOO_LARGE",
        "MSG_SIZE_TOO_LARGE",
        "_UNKNOWN_TOPIC",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_PARTITION",
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
        "_INVALID_ARG",
        "_INVALID_TYPE",
        "INVALID_REQUIRED_ACKS",
        "RECORD_LIST_TOO_LARGE",
    }
)


def is_definite_failure(error_name: str) -> bool:
    """True when an error means the message was certainly not written (else its fate is unknown)."""
    return error_name in DEFINITE_FAILURES


_log = logging.getLogger("ingestload")
#: Seconds to wait for the reports of purged messages after a drain timed out.
PURGE_SETTLE_TIMEOUT = 5.0
#: Seconds the poll greenlet sleeps when there was nothing to serve.
IDLE_POLL_INTERVAL = 0.002


class AckSink(Protocol):
    """Where a run's acknowledgements go, per topic, until they are put into statistics (the Locust
    side's :class:`~ingestload.locust.kafka_stats.AckStats` is one)."""

    pending: defaultdict[str, list[Any]]
    """Acknowledged messages per topic, not yet in the statistics."""

    def flush(self) -> None:
        """Put what is pending into the statistics when it is time to (cheap to call often)."""

    def publish(self) -> None:
        """Put everything pending into the statistics now."""


class _Deliveries(Outcomes):
    """The delivery reports of one run (a new object per run, see :class:`Outcomes`).

    Acknowledged messages go to an :class:`AckSink` (Locust's stats, in bulk when only Locust
    listens: :class:`~ingestload.locust.kafka_stats.AckStats`); a failed delivery fires its request
    event at once.
    """

    __slots__ = ("fire", "landed", "request_type", "stats")

    def __init__(self, fire: Callable[..., None], request_type: str, stats: AckSink) -> None:
        super().__init__()
        self.fire = fire
        self.request_type = request_type
        self.stats = stats
        self.landed = stats.pending

    def report(self, seq: int, err: Any, msg: Any) -> None:
        """librdkafka's delivery callback for message ``seq`` (bound with ``partial``)."""
        if err is None:
            self.acked += 1
            self.landed[msg.topic()].append(msg)
            return
        self.file_failure((seq,), is_definite_failure(err.name()))
        latency = msg.latency()
        self.fire(
            request_type=self.request_type,
            name=msg.topic(),
            response_time=latency * 1000.0 if latency is not None else 0.0,
            response_length=len(msg),
            exception=KafkaDeliveryError(err),
            context={},
        )


class KafkaProducerClient(EnvelopeSender):
    """Produces factory messages with envelopes and reports every ack to Locust."""

    request_type = "KAFKA"
    path = "kafka"

    def __init__(
        self,
        environment: Any,
        config: Mapping[str, str],
        factory: MessageFactory,
        *,
        ack_sink: Callable[[str], AckSink],
        body_envelope: str | None = None,
    ) -> None:
        from confluent_kafka import KafkaException, Producer

        self.body_envelope = body_envelope
        """The JSON member that carries the envelope in the value too (``None``: the header only) —
        for a sink that stores the value and drops the headers (``--sink``)."""
        self.environment = environment
        self._ack_sink = ack_sink
        self._fire = environment.events.request.fire
        try:
            # librdkafka's own log lines go through Python logging (served by poll), not raw stderr.
            self.producer = Producer({**config, "logger": logging.getLogger("ingestload.librdkafka")})
        except (KafkaException, ValueError, TypeError) as e:
            raise ConfigError(f"Kafka producer configuration rejected: {scrub(str(e), config)}") from None
        self._poller: gevent.Greenlet | None = None
        super().__init__(factory)

    def new_run(self) -> None:
        previous = getattr(self, "outcomes", None)
        if isinstance(previous, _Deliveries):
            previous.stats.publish()  # what the last run acknowledged belongs to its stats
        super().new_run()
        self.outcomes: _Deliveries = _Deliveries(
            self._fire, self.request_type, self._ack_sink(self.request_type)
        )

    @property
    def in_flight(self) -> int:
        """Messages handed to librdkafka whose delivery report has not been served yet."""
        return len(self.producer)

    def begin_run(
        self,
        run_id: str,
        producer_id: int | None = None,
        meta: Mapping[str, Any] | None = None,
        first_seq: int = 0,
    ) -> None:
        super().begin_run(run_id, producer_id, meta, first_seq)
        if self.body_envelope is not None:  # a table can find these messages (the storage hop)
            self.meta["body_envelope"] = self.body_envelope
        if self._poller is None or self._poller.dead:
            self._poller = gevent.spawn(self._poll_loop)

    def warm_up(self, timeout: float = 5.0) -> bool:
        """Fetch metadata for every topic the factory writes to, before the first message.

        Without it the first messages of a run wait ~0.5 s for topic metadata and the
        idempotent producer id, which shows up as a latency spike in the first second.
        Blocks for at most ``timeout`` in total; call it before load starts. Returns
        False when Kafka did not answer in time (the run goes on; messages will wait).
        """
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + timeout
        try:
            for topic in sorted(set(self.factory.topics)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.producer.list_topics(topic, timeout=remaining)
        except KafkaException:
            return False
        return True

    def send(self, count: int) -> int:
        """Produce up to ``count`` messages now; returns how many were accepted.

        Fewer than ``count`` means backpressure (or that the run is stopping): the
        caller should yield and offer the rest again.
        """
        writer = self.writer
        if not self.accepting or writer is None:
            return 0
        if self.body_envelope is not None:
            return self._send_body_enveloped(count)
        produce = self.producer.produce
        next_message = self.factory.next
        prefix, pack = writer.prefix, writer.pack_header
        report = self.outcomes.report
        tags = self.tags
        crc = checksum
        clock = time.time_ns
        first = seq = self.seq
        try:
            for _ in range(count):
                now_ns = clock()
                topic, value = next_message(now_ns)
                produce(
                    topic,
                    value,
                    headers=[(HEADER, pack(prefix, seq, now_ns // 1000, crc(value), tags[topic]))],
                    on_delivery=partial(report, seq),
                )
                seq += 1
        except BufferError:
            self.factory.unread()
            self.backpressure += 1
            self.poll()
        finally:
            self.seq = seq
        return seq - first

    def _send_body_enveloped(self, count: int) -> int:
        """:meth:`send`, the envelope also a member of the JSON value (as on the HTTP path: its
        checksum covers the message without the member); the header's covers the value as sent."""
        writer = self.writer
        assert writer is not None
        assert self.body_envelope is not None
        head = b'{"' + self.body_envelope.encode() + b'":"' + hexlify(writer.prefix)
        prefix, pack_tail, tags = writer.prefix, writer.pack_tail, self.tags
        produce, next_message, report = self.producer.produce, self.factory.next, self.outcomes.report
        first = seq = self.seq
        try:
            for _ in range(count):
                now_ns = time.time_ns()
                topic, message = next_message(now_ns)
                sent_at_us, tag = now_ns // 1000, tags[topic]
                value = (
                    head + hexlify(pack_tail(seq, sent_at_us, checksum(message), tag)) + b'",' + message[1:]
                )
                produce(
                    topic,
                    value,
                    headers=[(HEADER, prefix + pack_tail(seq, sent_at_us, checksum(value), tag))],
                    on_delivery=partial(report, seq),
                )
                seq += 1
        except BufferError:
            self.factory.unread()
            self.backpressure += 1
            self.poll()
        finally:
            self.seq = seq
        return seq - first

    def poll(self) -> int:
        """Serve pending delivery reports now (non-blocking); acks reach Locust's stats within 50 ms."""
        served = int(self.producer.poll(0))
        if served:
            self.outcomes.stats.flush()
        return served

    def publish_stats(self) -> None:
        """Put every acknowledgement served so far into Locust's stats now."""
        self.outcomes.stats.publish()

    def _poll_loop(self) -> None:
        poll = self.poll
        while True:
            try:
                served = poll()
                if not served:
                    self.publish_stats()  # idle: nothing should wait for the next batch
            except Exception:  # a listener or callback that raised must not stop the reports
                _log.exception("ingestload: serving delivery reports failed; going on")
                served = 0
            gevent.sleep(0 if served else IDLE_POLL_INTERVAL)

    def drain(self, timeout: float) -> int:
        """Stop accepting, then wait cooperatively until every message is resolved.

        Messages still unacknowledged after ``timeout`` seconds are purged and filed *unknown*
        (in flight, or queued again for a retry, they may have been written), so the ledger
        accounts for every seq. Returns how many had to be purged (also kept in :attr:`undelivered`).
        """
        self.accepting = False
        self._wait_outstanding(timeout)
        self.undelivered = len(self.producer)
        if self.undelivered:
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self._wait_outstanding(PURGE_SETTLE_TIMEOUT)
        return self.undelivered

    def _wait_outstanding(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.producer) and time.monotonic() < deadline:
            self.poll()
            gevent.sleep(0.01)
        self.poll()
        self.publish_stats()

    def close(self) -> None:
        """Stop polling and release the producer; anything still queued is purged (reported failed).

        Call it after :meth:`drain`; it does not wait for acknowledgements.
        """
        self.accepting = False
        if self._poller is not None:
            self._poller.kill(block=True)  # it must not poll a closed producer
            self._poller = None
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self.poll()
        self.publish_stats()
        self.producer.close()
