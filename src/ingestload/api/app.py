"""The reference ingest API as an ASGI application (Falcon), served by :mod:`ingestload.api.server`.

Contract (every error body is ``application/problem+json``:
``{"status": 413, "error": "body_too_large", "title": "…", "detail": "…"}``)::

    POST /v1/messages/{msgType}         one JSON message → topic prefix+msgType, body bytes verbatim
        200 {"topic", "partition", "offset"}   Kafka acknowledged it (acks=all, idempotent)
        400 invalid_json · 404 unknown_message_type · 413 body_too_large / message_too_large
        415 unsupported_media_type · 422 schema_violation
        503 kafka_unavailable / backpressure / shutting_down (+ Retry-After): certainly not written
        502 kafka_rejected
        504 delivery_unconfirmed: Kafka's report said timed out / purged / connection lost / producer
            refused, or no report within --request-timeout — the message may or may not be stored
    POST /v1/messages/{msgType}:batch   a JSON array of messages → one Kafka message each (bytes as sent)
        200 {"accepted": n, "failed": 0}                       every item acknowledged
        207 {"accepted", "failed", "failures": [{"index", "status", "error", "detail"}]}
        4xx/5xx (same body) when no item was accepted and all failed alike (else 207, accepted 0);
        400 for a body that is not a non-empty array, 413 for more than --max-batch-items items
    POST /v1/messages:batch             the same, with messages of any types: each goes to the topic of
        its Header.MessageType (an item without a known one fails alone: 422 unknown_message_type)
    GET /healthz     200 while the process serves requests
    GET /readyz      200 when Kafka answers metadata requests, else 503 (with the reason)
    GET /debug/faults    fault-injection settings and exact counts of this worker process

Example::

    app = create_app(ApiSettings.from_args([], environ={}).with_bootstrap("127.0.0.1:9092"))
    # granian --interface asgi … serves it; see ingestload.api.server.serve()
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import falcon
import falcon.asgi
import orjson

from ingestload.api import jsonsplit
from ingestload.api.config import ApiSettings
from ingestload.api.delivery import DUPLICATE, EARLY, WAIT, KafkaGateway
from ingestload.api.faults import CLEAN, FaultCounts
from ingestload.api.schema import Schemas
from ingestload.kafka.admin import ensure_topics
from ingestload.messages.catalogue import Catalogue

log = logging.getLogger("ingestload.api")

PROBLEM = "application/problem+json"
JSON = "application/json"
_MSG_TOO_LARGE = {"MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE"}
#: Kafka errors that say "not now" rather than "never": 503 + Retry-After when ``produce()`` raised
#: them (never queued), 504 when a delivery report carried them (maybe written).
_UNAVAILABLE = {
    "_MSG_TIMED_OUT",
    "_TIMED_OUT",
    "_TRANSPORT",
    "_ALL_BROKERS_DOWN",
    "_QUEUE_FULL",
    "_PURGE_QUEUE",
    "_PURGE_INFLIGHT",
    "_FATAL",
    # The producer's identity, not the message, was refused: after a broker lost its state
    # (Tansu answers PRODUCER_FENCED there, Kafka UNKNOWN_PRODUCER_ID / OUT_OF_ORDER_SEQUENCE_NUMBER).
    # The API replaces its producer, so a retry succeeds.
    "UNKNOWN_PRODUCER_ID",
    "PRODUCER_FENCED",
    "INVALID_PRODUCER_EPOCH",
    "OUT_OF_ORDER_SEQUENCE_NUMBER",
    "_FENCED",
}


def problem_body(status: int, error: str, detail: str) -> bytes:
    """A problem+json document; ``error`` is a stable machine-readable code."""
    return orjson.dumps(
        {"status": status, "error": error, "title": HTTPStatus(status).phrase, "detail": detail}
    )


class ApiError(Exception):
    """A request that is answered with an error (raised inside handlers, rendered as problem+json)."""

    def __init__(self, status: int, error: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.retry_after = retry_after


class ApiCounters:
    """Request and message counts of one worker process (``/debug/faults`` and the shutdown log)."""

    __slots__ = ("accepted", "invalid", "refused", "requests")

    def __init__(self) -> None:
        self.requests = 0
        """POST requests."""
        self.accepted = 0
        """Messages answered 2xx."""
        self.invalid = 0
        """Rejections for content (400/404/413/415/422): whole requests, plus single batch items."""
        self.refused = 0
        """Rejections for Kafka's state, backpressure or a timeout (5xx): requests, plus batch items."""


class IngestService:
    """Everything one worker process needs: schemas, topics, the Kafka gateway, fault dice, counters."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        catalogue = Catalogue.load(settings.catalogue)
        self.schemas = Schemas.from_catalogue(catalogue, settings.envelope_field)
        prefix = settings.topic_prefix
        self.topics = {t: catalogue.topic(t, prefix) for t in self.schemas.message_types}
        self.dice = settings.faults.dice()
        self.faults_on = settings.faults.active
        self.fault_counts = FaultCounts()
        self.counters = ApiCounters()
        self.closing = False
        self.config = settings.producer_config(client_id=f"ingestload-api-{os.getpid()}")
        self.gateway = KafkaGateway(
            self.config,
            probe_topic=min(self.topics.values()),
            on_reachable=self._create_topics if settings.create_topics else None,
            on_early_loss=lambda topic, n: self.fault_counts.count(topic, "lost_after_early_ack", n),
            on_duplicate_loss=lambda topic, n: self.fault_counts.count(topic, "duplicate_failed", n),
        )
        # The naive behaviour does not look at Kafka's state before answering.
        self.gate = settings.faults.ack_before_delivery == 0

    def _create_topics(self) -> None:
        ensure_topics(
            self.settings.kafka.admin_config(), self.topics.values(), self.settings.kafka.partitions
        )

    # -- checks shared by both endpoints --------------------------------------------------

    def topic_for(self, msg_type: str) -> str:
        topic = self.topics.get(msg_type)
        if topic is None:
            known = ", ".join(sorted(self.topics))
            raise ApiError(
                404, "unknown_message_type", f"unknown message type {msg_type!r}; known types: {known}"
            )
        return topic

    def admit(self, count: int) -> None:
        """503 unless ``count`` more messages fit and Kafka is reachable."""
        retry = self.settings.retry_after
        if self.closing:
            raise ApiError(
                503, "shutting_down", "the server is shutting down; retry on another instance", retry
            )
        if self.gate and not self.gateway.reachable:
            raise ApiError(
                503,
                "kafka_unavailable",
                f"Kafka is unreachable ({self.gateway.last_error}); retry later",
                retry,
            )
        in_flight = self.gateway.in_flight
        if in_flight + count > self.settings.max_in_flight:
            raise ApiError(
                503,
                "backpressure",
                f"{in_flight} messages are waiting for Kafka "
                f"(limit {self.settings.max_in_flight}); retry later",
                retry,
            )

    async def read_json(self, req: falcon.asgi.Request) -> tuple[bytes, Any]:
        content_type = (req.content_type or "").split(";", 1)[0].strip().lower()
        if content_type != JSON and not (
            content_type.startswith("application/") and content_type.endswith("+json")
        ):
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {req.content_type or '(none)'!r} is not accepted; send application/json",
            )
        limit = self.settings.max_body_bytes
        length = req.content_length
        if length is not None and length > limit:
            raise ApiError(413, "body_too_large", f"the body has {length} bytes; the limit is {limit}")
        body: bytes = await req.stream.read(limit + 1)
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"the body has more than {limit} bytes, the limit")
        try:
            return body, orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None

    def kafka_failure(self, error: Any, reported: bool = False) -> tuple[int, str, str]:
        """(status, code, detail) for a message Kafka did not take: the ``BufferError`` /
        ``KafkaException`` that ``produce()`` raised (the message was never queued: 503, retry), or
        with ``reported`` a ``KafkaError`` from a delivery report — then a timeout, a purge, a lost
        connection or a refused producer identity leave the message *maybe written* (an earlier
        attempt may have been stored): 504, so that no client takes it for certainly not written."""
        if isinstance(error, BufferError):
            return 503, "backpressure", "the Kafka client's local queue is full; retry later"
        args = getattr(error, "args", ())
        kafka_error = args[0] if args and hasattr(args[0], "name") else error
        if hasattr(kafka_error, "name") and hasattr(kafka_error, "str"):
            name, text = str(kafka_error.name()), str(kafka_error.str())
            retriable = bool(kafka_error.retriable())
        else:
            name, text, retriable = type(error).__name__, str(error), False
        detail = self.scrub(f"{name}: {text}")
        if name in _MSG_TOO_LARGE:
            return 413, "message_too_large", f"Kafka refused the message as too large ({detail})"
        if (name in _UNAVAILABLE or retriable) and reported:
            return (
                504,
                "delivery_unconfirmed",
                f"Kafka did not confirm the message ({detail}); it may or may not have been stored",
            )
        if name in _UNAVAILABLE or retriable:
            return 503, "kafka_unavailable", f"Kafka did not acknowledge the message ({detail}); retry later"
        return 502, "kafka_rejected", f"Kafka rejected the message ({detail})"

    def scrub(self, text: str) -> str:
        from ingestload.kafka.config import scrub

        return scrub(text, self.config)

    # -- the two endpoints ------------------------------------------------------------------

    async def single(self, msg_type: str, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        self.counters.requests += 1
        topic = self.topic_for(msg_type)
        body, message = await self.read_json(req)
        problem = self.schemas.check(msg_type, message)
        if problem is not None:
            raise ApiError(422, "schema_violation", problem)
        self.admit(1)
        fate = self.dice.roll() if self.faults_on else CLEAN
        if fate.drop:
            self.fault_counts.count(topic, "dropped")
            self._ok_single(resp, topic, (-1, -1))
            return
        if fate.duplicate:
            self._duplicate(topic, [body])
        if fate.ack_before_delivery:
            submission = self.gateway.submit(topic, [body], EARLY)
            if submission.ticket is None:
                raise ApiError(*self.kafka_failure(submission.refused[0][1]), self.settings.retry_after)
            self.fault_counts.count(topic, "acked_before_delivery")
            self._ok_single(resp, topic, (-1, -1))
            return
        submission = self.gateway.submit(topic, [body], WAIT, want_offset=True)
        ticket = submission.ticket
        if ticket is None or ticket.future is None:
            raise ApiError(*self.kafka_failure(submission.refused[0][1]), self.settings.retry_after)
        failures = await self.wait(ticket.future)
        if failures:
            raise ApiError(*self.kafka_failure(failures[0][1], reported=True), self.settings.retry_after)
        self._ok_single(resp, topic, ticket.offset)

    def _duplicate(self, topic: str, values: list[bytes]) -> None:
        """Fault injection: produce ``values`` a second time; counts the copies handed to the client
        (those whose delivery then fails are counted as ``duplicate_failed``)."""
        ticket = self.gateway.submit(topic, values, DUPLICATE).ticket
        if ticket is not None:
            self.fault_counts.count(topic, "duplicated", ticket.size)

    def _ok_single(self, resp: falcon.asgi.Response, topic: str, offset: tuple[int, int]) -> None:
        self.counters.accepted += 1
        resp.status = 200
        resp.content_type = JSON
        resp.data = b'{"topic":"%s","partition":%d,"offset":%d}' % (topic.encode(), offset[0], offset[1])

    async def wait(self, future: asyncio.Future[list[tuple[int, Any]]]) -> list[tuple[int, Any]]:
        try:
            return await asyncio.wait_for(future, self.settings.request_timeout)
        except TimeoutError:
            raise ApiError(
                504,
                "delivery_unconfirmed",
                f"Kafka did not report on the message within {self.settings.request_timeout:g} s; "
                "it may or may not have been stored",
            ) from None

    async def batch(self, msg_type: str, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """A JSON array of ``msg_type`` messages."""
        self.counters.requests += 1
        topic = self.topic_for(msg_type)
        body, items = await self.read_batch(req, f"{msg_type} messages")
        raw = jsonsplit.items(body, items)  # each item's bytes exactly as sent
        check = self.schemas.check
        failures: list[tuple[int, int, str, str]] = []  # (index, status, error, detail)
        group: tuple[list[int], list[bytes]] = ([], [])
        for index, item in enumerate(items):
            problem = check(msg_type, item)
            if problem is None:
                group[0].append(index)
                group[1].append(raw[index])
            else:
                failures.append((index, 422, "schema_violation", problem))
        await self.deliver_groups(resp, {topic: group}, failures)

    async def mixed_batch(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """A JSON array of messages of any types, each routed by its ``Header.MessageType``."""
        self.counters.requests += 1
        body, items = await self.read_batch(req, "messages")
        raw = jsonsplit.items(body, items)
        check, topics = self.schemas.check, self.topics
        failures: list[tuple[int, int, str, str]] = []
        groups: dict[str, tuple[list[int], list[bytes]]] = {}
        for index, item in enumerate(items):
            msg_type = _message_type(item)
            topic = topics.get(msg_type) if msg_type is not None else None
            if topic is None:
                known = ", ".join(sorted(topics))
                failures.append(
                    (
                        index,
                        422,
                        "unknown_message_type",
                        f"Header.MessageType {msg_type!r} is not one of: {known}",
                    )
                )
                continue
            problem = check(msg_type, item)  # type: ignore[arg-type]  # known: it has a topic
            if problem is not None:
                failures.append((index, 422, "schema_violation", problem))
                continue
            group = groups.get(topic)
            if group is None:
                group = groups[topic] = ([], [])
            group[0].append(index)
            group[1].append(raw[index])
        await self.deliver_groups(resp, groups, failures)

    async def read_batch(self, req: falcon.asgi.Request, what: str) -> tuple[bytes, list[Any]]:
        """The body and its items: a non-empty JSON array of at most ``--max-batch-items``."""
        body, items = await self.read_json(req)
        if not isinstance(items, list):
            raise ApiError(400, "not_an_array", f"a batch must be a JSON array of {what}")
        if not items:
            raise ApiError(400, "empty_batch", "the batch is empty; send at least one message")
        limit = self.settings.max_batch_items
        if len(items) > limit:
            raise ApiError(413, "too_many_items", f"the batch has {len(items)} items; the limit is {limit}")
        return body, items

    async def deliver_groups(
        self,
        resp: falcon.asgi.Response,
        groups: dict[str, tuple[list[int], list[bytes]]],
        failures: list[tuple[int, int, str, str]],
    ) -> None:
        """Deliver each topic's valid items (all topics at once) and answer for the whole batch."""
        valid = sum(len(values) for _, values in groups.values())
        if valid:
            self.admit(valid)
        results = await asyncio.gather(
            *(self._deliver(topic, indexes, values) for topic, (indexes, values) in groups.items() if values)
        )
        accepted = 0
        for group_accepted, group_failures in results:
            accepted += group_accepted
            failures.extend(group_failures)
        self._answer_batch(resp, accepted, failures)

    async def _deliver(
        self, topic: str, indexes: list[int], values: list[bytes]
    ) -> tuple[int, list[tuple[int, int, str, str]]]:
        """Produce one topic's items of a batch; (accepted, failures by item index)."""
        failures: list[tuple[int, int, str, str]] = []
        accepted = 0
        waiting_indexes, waiting = indexes, values
        if self.faults_on:
            waiting_indexes, waiting, early_indexes, early = [], [], [], []
            duplicates: list[bytes] = []
            for index, value in zip(indexes, values, strict=True):
                fate = self.dice.roll()
                if fate.drop:
                    self.fault_counts.count(topic, "dropped")
                    accepted += 1
                    continue
                if fate.duplicate:
                    duplicates.append(value)
                if fate.ack_before_delivery:
                    early_indexes.append(index)
                    early.append(value)
                else:
                    waiting_indexes.append(index)
                    waiting.append(value)
            if duplicates:
                self._duplicate(topic, duplicates)
            if early:
                submission = self.gateway.submit(topic, early, EARLY)
                refused = {i for i, _ in submission.refused}
                for position, error in submission.refused:
                    failures.append((early_indexes[position], *self.kafka_failure(error)))
                ok = len(early) - len(refused)
                self.fault_counts.count(topic, "acked_before_delivery", ok)
                accepted += ok
        if waiting:
            submission = self.gateway.submit(topic, waiting, WAIT)
            for position, error in submission.refused:
                failures.append((waiting_indexes[position], *self.kafka_failure(error)))
            ticket = submission.ticket
            if ticket is not None and ticket.future is not None:
                try:
                    reported = await self.wait(ticket.future)
                except ApiError as timeout:  # no verdict on any message of the ticket
                    refused = {position for position, _ in submission.refused}
                    failures.extend(
                        (waiting_indexes[position], timeout.status, timeout.error, timeout.detail)
                        for position in range(len(waiting))
                        if position not in refused
                    )
                else:
                    for position, error in reported:
                        failures.append(
                            (waiting_indexes[position], *self.kafka_failure(error, reported=True))
                        )
                    accepted += ticket.size - len(reported)
        return accepted, failures

    def _answer_batch(
        self, resp: falcon.asgi.Response, accepted: int, failures: list[tuple[int, int, str, str]]
    ) -> None:
        self.counters.accepted += accepted
        resp.content_type = JSON
        if not failures:
            resp.status = 200
            resp.data = b'{"accepted":%d,"failed":0}' % accepted
            return
        failures.sort()
        statuses = {status for _, status, _, _ in failures}
        invalid = sum(1 for _, status, _, _ in failures if status < 500)
        self.counters.invalid += invalid
        self.counters.refused += len(failures) - invalid
        if accepted or len(statuses) > 1:
            # Items that failed differently keep their own statuses: one status for all would
            # file, say, maybe-written (504) items as certainly refused (503).
            status = 207
        else:
            status = statuses.pop()
        if status == 503:
            resp.set_header("Retry-After", str(self.settings.retry_after))
        if status != 207:
            resp.content_type = PROBLEM
        resp.status = status
        resp.data = orjson.dumps(
            {
                "status": status,
                "accepted": accepted,
                "failed": len(failures),
                "failures": [
                    {"index": index, "status": s, "error": error, "detail": detail}
                    for index, s, error, detail in failures
                ],
            }
        )


# -- Falcon wiring -----------------------------------------------------------------------------


class _Messages:
    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, msg_type: str) -> None:
        await self.handler(msg_type, req, resp)


class _MixedMessages:
    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.handler(req, resp)


def _message_type(item: Any) -> str | None:
    """``Header.MessageType`` of a batch item, if it has one (a string)."""
    header = item.get("Header") if type(item) is dict else None
    msg_type = header.get("MessageType") if type(header) is dict else None
    return msg_type if isinstance(msg_type, str) else None


class _Health:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = JSON
        resp.data = b'{"status":"ok"}'


class _Ready:
    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        service, gateway = self.service, self.service.gateway
        ready = gateway.reachable and not service.closing
        resp.status = 200 if ready else 503
        resp.content_type = JSON
        if not ready:
            resp.set_header("Retry-After", str(service.settings.retry_after))
        resp.data = orjson.dumps(
            {
                "ready": ready,
                "kafka": "reachable" if gateway.reachable else "unreachable",
                "detail": "shutting down" if service.closing else gateway.last_error,
                "in_flight": gateway.in_flight,
                "max_in_flight": service.settings.max_in_flight,
                "pid": os.getpid(),
            }
        )


class _Faults:
    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        service = self.service
        plan = service.settings.faults
        resp.content_type = JSON
        resp.data = orjson.dumps(
            {
                "pid": os.getpid(),
                "active": plan.active,
                "plan": {
                    "drop": plan.drop,
                    "duplicate": plan.duplicate,
                    "ack_before_delivery": plan.ack_before_delivery,
                    "seed": plan.seed,
                },
                "counts": service.fault_counts.as_dict(),
                "requests": service.counters.requests,
                "accepted": service.counters.accepted,
                "delivered": service.gateway.delivered,
                "delivery_failed": service.gateway.failed,
                "in_flight": service.gateway.in_flight,
                "producer_replaced": service.gateway.replaced,
            }
        )


class _Lifespan:
    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def process_startup(self, scope: Any, event: Any) -> None:
        gateway = self.service.gateway
        gateway.start()
        # Serve only once Kafka was probed: a worker must not turn requests away with 503 just
        # because it has not asked yet (with several workers, /readyz reaches only one of them).
        await asyncio.to_thread(gateway.probed.wait, 10)
        log.info("worker %d ready to serve (%s)", os.getpid(), self.service.settings.describe())

    async def process_shutdown(self, scope: Any, event: Any) -> None:
        service = self.service
        service.closing = True
        # Requests still waiting for Kafka finish first (their reports arrive while we wait);
        # then the producer is flushed: nothing that was answered 2xx stays behind.
        left = await service.gateway.aclose(service.settings.request_timeout)
        await asyncio.sleep(0.05)  # let the last handlers write their responses
        c, f, g = service.counters, service.fault_counts, service.gateway
        log.info(
            "worker %d stopped: requests=%d accepted=%d delivered=%d delivery_failed=%d invalid=%d "
            "refused=%d unflushed=%d | faults %s: dropped=%d duplicated=%d acked_before_delivery=%d "
            "lost_after_early_ack=%d",
            os.getpid(),
            c.requests,
            c.accepted,
            g.delivered,
            g.failed,
            c.invalid,
            c.refused,
            left,
            service.settings.faults.describe(),
            f.dropped,
            f.duplicated,
            f.acked_before_delivery,
            f.lost_after_early_ack,
        )


def _render_failure(service: IngestService) -> Callable[..., Any]:
    async def handle(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: ApiError, params: Any) -> None:
        if ex.status >= 500:
            service.counters.refused += 1
        else:
            service.counters.invalid += 1
        resp.status = ex.status
        resp.content_type = PROBLEM
        if ex.retry_after is not None and ex.status == 503:  # only "not now" answers say when to retry
            resp.set_header("Retry-After", str(ex.retry_after))
        resp.data = problem_body(ex.status, ex.error, ex.detail)

    return handle


async def _render_http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Any, params: Any
) -> None:
    status = int(ex.status_code)
    resp.status = status
    resp.content_type = PROBLEM
    for key, value in (ex.headers or {}).items():
        resp.set_header(key, value)
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    detail = ex.description or ex.title
    if status == 404:
        detail = f"no such endpoint: {req.method} {req.path}; see GET /healthz, POST /v1/messages/{{msgType}}"
    elif status == 405:
        detail = f"{req.method} is not allowed on {req.path}"
    resp.data = problem_body(status, code, str(detail))


async def _render_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any
) -> None:
    # The traceback goes to the log; the client gets no internals (they could hold secrets).
    log.error("unexpected error on %s %s", req.method, req.path, exc_info=ex)
    resp.status = 500
    resp.content_type = PROBLEM
    resp.data = problem_body(500, "internal_error", "unexpected server error; see the server log")


def create_app(settings: ApiSettings) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """The ASGI application for one worker process (the producer starts in ASGI lifespan startup)."""
    service = IngestService(settings)
    app = falcon.asgi.App(middleware=[_Lifespan(service)])
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route("/v1/messages:batch", _MixedMessages(service.mixed_batch))
    app.add_route("/v1/messages/{msg_type}:batch", _Messages(service.batch))
    app.add_route("/v1/messages/{msg_type}", _Messages(service.single))
    app.add_route("/healthz", _Health())
    app.add_route("/readyz", _Ready(service))
    app.add_route("/debug/faults", _Faults(service))
    app.add_error_handler(Exception, _render_unexpected)
    app.add_error_handler(ApiError, _render_failure(service))
    app.add_error_handler(falcon.HTTPError, _render_http_error)
    return app
