"""``ingestload fanout``: the reference Kafka → WebSocket gateway (the I/O around the hub).

One worker process = one Kafka consumer by *assignment* (every partition of the served topics,
no consumer group, no commits) + one asyncio WebSocket server (the ``websockets`` library on
uvloop, compression off) + one :class:`~ingestload.fanout.hub.Hub`. The consumer runs in a
thread: it reads batches, renders each message once (:func:`protocol.message_fragment`) and
parses its JSON once, then hands the batch to the event loop (at most a few batches in flight,
so a gateway that falls behind reads Kafka slower instead of buffering without bound). On the
loop the hub queues each record for the matching subscribers, and every subscriber whose
socket buffer is below ``--write-buffer`` gets its queue as one frame, written without a task
per connection (``websockets.broadcast`` to that one connection). Why this stack: see
``bench/ws_stacks.py`` and docs/benchmarks.md.

The protocol (v1, full text in :mod:`ingestload.fanout.protocol`): a subscriber opens
``ws://HOST:PORT/v1/stream`` and sends ``{"type": "subscribe", "topics": […], "filter":
{"field": "Header.ControllerType", "in": […]}, "id": …}``; the gateway answers ``subscribed``
with ``from`` — per partition the offset from which *every* matching message will be pushed —
then ``messages`` frames (each message with topic, partition, offset, timestamp, the envelope
header as hex, and the value as in Kafka), ``progress`` (everything below these positions was
pushed or announced dropped), ``dropped`` (the policy's count), and on ``unsubscribe``, a slow
disconnect or SIGTERM, ``unsubscribed`` with ``to``: the window ``[from, to)`` is then exact.

HTTP on the same port: ``GET /healthz`` (200 while serving), ``GET /readyz`` (200 once the
consumer is assigned and Kafka answers metadata, else 503 with the reason), ``GET /stats``
(this worker's counters and subscribers, plus every worker's last snapshot).

``--workers N``: N processes (spawned, since librdkafka must not cross a fork), each with
its own consumer, all listening on the port with ``SO_REUSEPORT``; each subscriber is served
whole by the worker it connected to.

SIGTERM/SIGINT: stop reading Kafka, end every subscription cleanly (``unsubscribed`` with
reason ``shutting_down`` after its queue), close every connection (1001), exit 0.

Example::

    ingestload fanout                                 # embedded broker, ws://127.0.0.1:8765/v1/stream
    ingestload fanout --kafka-bootstrap kafka:9092 --workers 2 --slow-policy disconnect
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import orjson

from ingestload.errors import ConfigError, IngestloadError
from ingestload.fanout import protocol
from ingestload.fanout.config import FanoutSettings
from ingestload.fanout.errors import ProtocolError
from ingestload.fanout.hub import SHUTTING_DOWN, SLOW_SUBSCRIBER, Hub, Record
from ingestload.fanout.protocol import Positions
from ingestload.serving.main import kafka_for, listen_port, prepare_topics, server_main

log = logging.getLogger("ingestload.fanout")

#: Batches handed from the consumer thread to the loop and not yet dispatched, at most.
IN_FLIGHT_BATCHES = 4
#: Seconds between the loop's sweeps over every subscriber (progress, blocked sockets, stats).
TICK = 0.05
ENVELOPE_HEADER = "ingestload"
CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_INTERNAL = 1001, 1008, 1011


def render(message: Any) -> tuple[Record, bool]:
    """A confluent-kafka message as a hub :class:`Record` (and whether its value is JSON)."""
    value = message.value()
    document = None
    is_json = False
    if value is not None:
        try:
            document = orjson.loads(value)
            is_json = True
        except orjson.JSONDecodeError:
            document = None
    envelope = None
    for key, header in message.headers() or ():
        if key == ENVELOPE_HEADER:
            envelope = header
            break
    kind, timestamp = message.timestamp()
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    fragment = protocol.message_fragment(
        topic, partition, offset, timestamp if kind else None, envelope, value, is_json
    )
    return Record(topic, partition, offset, fragment, document), is_json


class KafkaReader(threading.Thread):
    """The worker's one consumer: assignment, batches to the loop, readiness, new partitions."""

    daemon = True

    def __init__(
        self,
        config: dict[str, str],
        topics: Sequence[str],
        deliver: Callable[[list[Record]], None],
        add_partitions: Callable[[Positions], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(name="ingestload-fanout-kafka")
        self.config = config
        self.topics = list(topics)
        self.deliver = deliver
        self.add_partitions = add_partitions
        self.loop = loop
        self.stopping = threading.Event()
        self.slots = threading.Semaphore(IN_FLIGHT_BATCHES)
        self.assigned = threading.Event()
        self.start_positions: Positions = {}
        self.kafka_ok = False
        self.problem = "not connected to Kafka yet"
        self.consumed = 0
        self.not_json = 0
        self._consumer: Any = None

    def _metadata(self) -> dict[tuple[str, int], None] | None:
        try:
            metadata = self._consumer.list_topics(timeout=2)
        except Exception as e:  # KafkaException while Kafka is away
            from ingestload.kafka.config import scrub

            self.kafka_ok, self.problem = False, f"Kafka does not answer: {scrub(str(e), self.config)}"
            return None
        found: dict[tuple[str, int], None] = {}
        missing = []
        for topic in self.topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                missing.append(topic)
                continue
            for partition in info.partitions:
                found[(topic, int(partition))] = None
        self.kafka_ok = True
        self.problem = f"topics not found: {', '.join(missing)}" if missing else ""
        return found

    def run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._consumer = consumer = Consumer(self.config)
        try:
            partitions = None
            while partitions is None and not self.stopping.is_set():
                partitions = self._metadata()
                if partitions is None:
                    self.stopping.wait(1)
            if partitions is None:
                return
            start: Positions = {}
            for topic, partition in partitions:
                # ListOffsets can answer too low on some brokers (see ingestload.kafka.admin): harmless,
                # as the hub's start is the offset it delivers from, whatever that is.
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                start[(topic, partition)] = int(high)
            self.start_positions = start
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in sorted(start.items())])
            self.assigned.set()
            next_metadata = time.monotonic() + 1
            while not self.stopping.is_set():
                # Block for the first message only, then take what is already there: a batch is
                # whatever arrived meanwhile (consume(n, timeout) would wait to fill n).
                first = consumer.poll(0.05)
                if first is not None:
                    self._hand_over([first, *consumer.consume(999, 0)])
                if time.monotonic() >= next_metadata:
                    next_metadata = time.monotonic() + 1
                    self._watch_partitions(start)
        finally:
            consumer.close()

    def _hand_over(self, messages: list[Any]) -> None:
        records: list[Record] = []
        for message in messages:
            if message.error() is not None:
                continue  # partition EOF and transient errors: nothing to deliver
            record, is_json = render(message)
            records.append(record)
            if not is_json:
                self.not_json += 1
        if not records:
            return
        self.consumed += len(records)
        while not self.slots.acquire(timeout=0.5):
            if self.stopping.is_set():
                return
        self.kafka_ok = True
        self.loop.call_soon_threadsafe(self.deliver, records)

    def _watch_partitions(self, known: Positions) -> None:
        from confluent_kafka import TopicPartition

        partitions = self._metadata()
        if not partitions:
            return
        new: Positions = {}
        for tp in partitions:
            if tp not in known:
                low, _ = self._consumer.get_watermark_offsets(TopicPartition(*tp), timeout=5)
                new[tp] = int(low)
        if new:
            known.update(new)
            # Announced on the loop before any of their records can reach it (FIFO hand-over).
            self.loop.call_soon_threadsafe(self.add_partitions, dict(new))
            self._consumer.incremental_assign([TopicPartition(t, p, o) for (t, p), o in sorted(new.items())])
            log.info(
                "new partitions assigned: %s", ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(new.items()))
            )


class Gateway:
    """One worker: the WebSocket server, the hub and the Kafka reader."""

    def __init__(self, settings: FanoutSettings, topics: Sequence[str], worker: int, stats_dir: Path) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.worker = worker
        self.stats_dir = stats_dir
        self.hub: Hub | None = None
        self.connections: dict[Hashable, Any] = {}
        self.reader: KafkaReader | None = None
        self.stopping = False
        self.started = time.time()
        self.counts = {
            "connections_refused": 0,
            "protocol_errors": 0,
            "frames_written": 0,
            "bytes_written": 0,
        }

    # -- HTTP --------------------------------------------------------------------------------

    def _readiness(self) -> tuple[int, dict[str, Any]]:
        reader = self.reader
        if self.stopping:
            return 503, {"ready": False, "reason": "shutting down"}
        if reader is None or not reader.assigned.is_set() or self.hub is None:
            return 503, {"ready": False, "reason": reader.problem if reader else "starting"}
        if not reader.kafka_ok:
            return 503, {"ready": False, "reason": reader.problem}
        return 200, {"ready": True, "worker": self.worker, "partitions": len(self.hub.positions)}

    def stats(self) -> dict[str, Any]:
        hub_stats = self.hub.stats() if self.hub is not None else {}
        reader = self.reader
        return {
            **hub_stats,
            "worker": self.worker,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "connections": len(self.connections),
            "consumed": reader.consumed if reader else 0,
            "not_json": reader.not_json if reader else 0,
            **self.counts,
        }

    def _all_stats(self) -> dict[str, Any]:
        mine = self.stats()
        workers = [mine]
        for path in sorted(self.stats_dir.glob("worker-*.json")):
            if path.name != f"worker-{self.worker}.json":
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    workers.append(orjson.loads(path.read_bytes()))
        totals: dict[str, int] = {}
        for w in workers:
            for key in ("connections", "subscribers", "consumed", "queued"):
                totals[key] = totals.get(key, 0) + int(w.get(key, 0))
            for key, value in w.get("counts", {}).items():
                totals[key] = totals.get(key, 0) + int(value)
        return {"total": totals, "workers": sorted(workers, key=lambda w: int(w["worker"]))}

    def process_request(self, connection: Any, request: Any) -> Any:
        path = request.path.split("?", 1)[0]
        if path == protocol.PATH:
            if len(self.connections) >= self.settings.max_subscribers or self.stopping:
                self.counts["connections_refused"] += 1
                return connection.respond(503, "subscriber limit reached or shutting down; try later\n")
            return None
        if path == "/healthz":
            return connection.respond(200, "ok\n")
        if path == "/readyz":
            status, body = self._readiness()
            return self._json(connection, status, body)
        if path == "/stats":
            return self._json(connection, 200, self._all_stats())
        return connection.respond(
            404, f"not found; WebSocket at {protocol.PATH}, HTTP at /healthz /readyz /stats\n"
        )

    @staticmethod
    def _json(connection: Any, status: int, body: Any) -> Any:
        response = connection.respond(status, "")
        payload = orjson.dumps(body)
        response.body = payload
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        del response.headers["Content-Length"]
        response.headers["Content-Length"] = str(len(payload))
        return response

    # -- WebSocket -------------------------------------------------------------------------------

    async def handler(self, ws: Any) -> None:
        from websockets.asyncio.server import broadcast

        hub = self.hub
        assert hub is not None
        key = id(ws)
        self.connections[key] = ws
        try:
            async for data in ws:
                try:
                    request = protocol.parse_client(data)
                    if isinstance(request, protocol.Subscribe):
                        if self.stopping:
                            raise ProtocolError(
                                "shutting_down", "the gateway is shutting down; reconnect later"
                            )
                        broadcast([ws], hub.subscribe(key, request, time.monotonic()), text=True)
                    elif isinstance(request, protocol.Unsubscribe):
                        hub.unsubscribe(key)
                        self._flush(key, time.monotonic())
                    else:
                        hub.request_progress(key)
                        self._flush(key, time.monotonic())
                except ProtocolError as e:
                    self.counts["protocol_errors"] += 1
                    broadcast([ws], protocol.error(e.code, e.detail), text=True)
        except Exception as e:  # a connection that breaks mid-frame: it is gone either way
            log.debug("connection %s ended: %s", key, e)
        finally:
            hub.disconnect(key)
            self.connections.pop(key, None)

    def _flush(self, key: Hashable, now: float) -> None:
        from websockets.asyncio.server import broadcast

        ws = self.connections.get(key)
        hub = self.hub
        if ws is None or hub is None:
            return
        transport = ws.transport
        if transport is None or transport.get_write_buffer_size() > self.settings.write_buffer:
            return  # it cannot take more now; its queue waits (bounded by --queue-limit)
        frames, reason = hub.take(key, now)
        for frame in frames:
            broadcast([ws], frame, text=True)
            self.counts["bytes_written"] += len(frame)
        self.counts["frames_written"] += len(frames)
        if reason in (SLOW_SUBSCRIBER, SHUTTING_DOWN):
            code = CLOSE_POLICY if reason == SLOW_SUBSCRIBER else CLOSE_GOING_AWAY
            asyncio.get_running_loop().create_task(ws.close(code, reason))

    def deliver(self, records: list[Record]) -> None:
        """Runs on the loop: one batch from the consumer thread."""
        hub = self.hub
        reader = self.reader
        assert hub is not None
        assert reader is not None
        try:
            result = hub.dispatch(records)
            for key in result.broken:
                ws = self.connections.get(key)
                if ws is not None:
                    asyncio.get_running_loop().create_task(ws.close(CLOSE_INTERNAL, "kafka log went back"))
            now = time.monotonic()
            dirty, hub.dirty = hub.dirty, set()
            for key in dirty:
                self._flush(key, now)
            # The policy sees only what the sockets would not take; an ended subscriber gets its
            # end frame (and its connection closes) right away.
            for key in hub.enforce(dirty):
                self._flush(key, now)
        finally:
            reader.slots.release()

    def add_partitions(self, start: Positions) -> None:
        if self.hub is not None:
            self.hub.add_partitions(start)

    async def _ticker(self) -> None:
        """Progress frames, sockets that drained, and this worker's stats snapshot for /stats."""
        hub = self.hub
        assert hub is not None
        snapshot_at = 0.0
        path = self.stats_dir / f"worker-{self.worker}.json"
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            waiting = [key for key in hub.subscribers if hub.pending(key, now)]
            for key in waiting:
                self._flush(key, now)
            for key in hub.enforce(waiting):
                self._flush(key, now)
            if now - snapshot_at >= 1.0:
                snapshot_at = now
                tmp = path.with_suffix(".tmp")
                with contextlib.suppress(OSError):
                    tmp.write_bytes(orjson.dumps(self.stats()))
                    tmp.replace(path)

    async def run(self, sock_port: int) -> int:
        from websockets.asyncio.server import serve

        loop = asyncio.get_running_loop()
        self.reader = reader = KafkaReader(
            self.settings.consumer_config(f"ingestload-fanout-w{self.worker}"),
            self.topics,
            self.deliver,
            self.add_partitions,
            loop,
        )
        reader.start()
        while not reader.assigned.is_set():
            if not reader.is_alive():
                raise IngestloadError(f"the Kafka consumer stopped before it was assigned: {reader.problem}")
            await asyncio.sleep(0.05)
        self.hub = Hub(
            f"w{self.worker}",
            reader.start_positions,
            queue_limit=self.settings.queue_limit,
            policy=self.settings.slow_policy,
            frame_messages=self.settings.frame_messages,
            progress_interval=self.settings.progress_interval,
            faults=self.settings.faults,
        )
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with serve(
            self.handler,
            self.settings.host,
            sock_port,
            process_request=self.process_request,
            compression=None,
            reuse_port=True,
            max_size=65536,
            server_header=None,
        ) as server:
            ticker = loop.create_task(self._ticker())
            await stop.wait()
            await self._shutdown(server, ticker)
        return 0

    async def _shutdown(self, server: Any, ticker: asyncio.Task[None]) -> None:
        self.stopping = True
        assert self.reader is not None
        assert self.hub is not None
        self.reader.stopping.set()
        server.close(close_connections=False)  # no new connections
        self.hub.shutdown()
        now = time.monotonic()
        deadline = now + 10
        # Every subscriber gets its queue and its clean end before its connection closes.
        while self.hub.subscribers and time.monotonic() < deadline:
            for key in list(self.hub.subscribers):
                self._flush(key, time.monotonic())
            if self.hub.subscribers:
                await asyncio.sleep(TICK)
        ticker.cancel()
        closing = [ws.close(CLOSE_GOING_AWAY, SHUTTING_DOWN) for ws in list(self.connections.values())]
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=10)
        self.reader.join(timeout=10)
        counts = self.hub.totals
        log.info(
            "worker %d stopped: consumed=%d deliveries=%d dropped=%d slow_disconnects=%d ended=%d "
            "lost_connections=%d",
            self.worker,
            self.reader.consumed,
            counts["deliveries"],
            counts["dropped"],
            counts["slow_disconnects"],
            counts["ended_shutting_down"] + counts["ended_requested"] + counts["ended_slow_subscriber"],
            counts["lost_connections"],
        )


def run_worker(
    settings: FanoutSettings, topics: Sequence[str], worker: int, port: int, stats_dir: str
) -> int:
    """A worker process's body (also the whole gateway with one worker)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s/%(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    gateway = Gateway(settings, topics, worker, Path(stats_dir))
    try:
        import uvloop

        return uvloop.run(gateway.run(port))
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(gateway.run(port))


def check_consumer_config(settings: FanoutSettings) -> None:
    """Let librdkafka validate the consumer config now, before any worker starts."""
    from confluent_kafka import Consumer, KafkaException

    from ingestload.kafka.config import scrub

    config = settings.consumer_config()
    try:
        Consumer(config).close()
    except (KafkaException, ValueError, TypeError) as e:
        raise ConfigError(f"Kafka consumer configuration rejected: {scrub(str(e), config)}") from None


def serve(settings: FanoutSettings) -> int:
    """Run the gateway until SIGINT/SIGTERM; returns the exit code."""
    from ingestload.messages.catalogue import Catalogue

    topics = list(settings.topics or Catalogue.load(settings.catalogue).topics(settings.topic_prefix))
    port = listen_port(settings.host, settings.port)
    with (
        kafka_for(settings) as settings,
        tempfile.TemporaryDirectory(prefix="ingestload-fanout-") as stats_dir,
    ):
        check_consumer_config(settings)
        if settings.create_topics:
            prepare_topics(settings.kafka.admin_config(), topics, settings.kafka.partitions)
        sys.stderr.write(
            f"ingestload fanout: listening on ws://{settings.host}:{port}{protocol.PATH} "
            f"(HTTP /readyz /stats) — {settings.describe()}; topics {', '.join(topics)}; "
            "Ctrl-C or SIGTERM to stop\n"
        )
        sys.stderr.flush()
        if settings.workers == 1:
            return run_worker(settings, topics, 0, port, stats_dir)
        return _supervise(settings, topics, port, stats_dir)


def _supervise(settings: FanoutSettings, topics: list[str], port: int, stats_dir: str) -> int:
    """``--workers N``: spawn the workers, forward SIGTERM/SIGINT, wait for all of them."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_main, args=(settings, topics, i, port, stats_dir), name=f"fanout-w{i}")
        for i in range(settings.workers)
    ]
    for process in workers:
        process.start()

    def forward(signum: int, frame: object) -> None:
        for process in workers:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in workers:
        process.join()
    return max((p.exitcode or 0) for p in workers)


def _worker_main(settings: FanoutSettings, topics: list[str], worker: int, port: int, stats_dir: str) -> None:
    sys.exit(run_worker(settings, topics, worker, port, stats_dir))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ingestload fanout``."""
    return server_main("ingestload fanout", FanoutSettings.from_args, serve, argv)


if __name__ == "__main__":
    sys.exit(main())
