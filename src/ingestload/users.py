"""Locust users that generate ingest load. Import this module first in a locustfile.

Example locustfile::

    from ingestload.users import IngestApiUser, KafkaProducerUser, WebSocketSubscriberUser

    class Devices(KafkaProducerUser):      # straight to Kafka
        pass

    class Gateways(IngestApiUser):         # through the ingest API (--host)
        pass

    class Views(WebSocketSubscriberUser):  # live views of a fan-out gateway (--ws-url)
        pass

Run it with ``locust -f that_file.py --headless --rate 2775 -t 1m --host http://127.0.0.1:8080``.
"""

from __future__ import annotations

# Locust must be imported before anything that could import ssl/sockets, so that gevent
# patches everything.
from locust import User, constant, task  # isort: skip
from locust.contrib.fasthttp import FastHttpUser  # isort: skip

import time
from collections.abc import Mapping, Sequence
from typing import Any

import gevent

from ingestload.errors import IngestloadError
from ingestload.fanout.client import ConnectionClosedError, NoConfirmationError, Subscriber
from ingestload.fanout.filters import FieldFilter
from ingestload.http.client import (
    OUTCOME_ACKED,
    OUTCOME_FAILED,
    OUTCOME_UNKNOWN,
    batch_outcomes,
    outcome_of,
)
from ingestload.locust.api_stats import MessageRows
from ingestload.locust.fanout import GAVE_UP, FanoutRun
from ingestload.locust.process import install, sending_state_of, state_of
from ingestload.messages.catalogue import Catalogue
from ingestload.rate.plans import API_USER_REQUESTS_PER_S, messages_per_request
from ingestload.settings import Settings
from ingestload.webui import install as install_web_ui

install()
install_web_ui()  # after the plugin's listeners: the web UI reads what they set up

#: Shortest sleep when nothing is due: bounds wake-ups at ~1,000/s per user.
MIN_SLEEP = 0.001
#: Longest sleep, so that rate changes and stops are noticed promptly.
MAX_SLEEP = 0.05


class KafkaProducerUser(User):
    """Produces the catalogue's mock controller messages to Kafka at the process's paced rate.

    All users of a process share one producer and one schedule: each wake-up sends every
    message that is due (at most ``--batch-max``), so the rate does not depend on the
    number of users, and a user never blocks the others. Acknowledgements appear in
    Locust's statistics as request type ``KAFKA``, one row per topic.
    """

    abstract = True
    ingestload_path = "kafka"
    """The path this user's messages take; its pacer is ``state.pacer_for(ingestload_path)``."""
    ingestload_user_capacity = 100_000.0
    """Msg/s one user sustains (sizes a profile's fixed user pool; all users of a process
    share one producer and one schedule, so one user per process is usually enough)."""
    one_per_process = False
    """``True``: exactly one user of this class in every sending process — Locust's
    ``fixed_count`` becomes the number of workers the master expects (``--expect-workers``,
    which ``--processes N`` sets), or 1 in a local run. Without it, ``fixed_count = 1`` puts the
    whole path on one worker, and the master's division gives the others none of its rate."""
    wait_time = constant(0)

    @classmethod
    def ingestload_capacity(cls, settings: Settings) -> float:
        """Msg/s one user sustains with these settings (sizes a profile's user pool)."""
        return cls.ingestload_user_capacity

    def __init__(self, environment: object) -> None:
        super().__init__(environment)
        state = sending_state_of(environment)
        if state.client is None:
            raise RuntimeError(
                "the Kafka producer was not created; see the ingestload error logged at test start"
            )
        self.client = state.client
        self.pacer = state.pacer_for(self.ingestload_path)
        self.batch_max = state.settings.rate.batch_max

    @task
    def produce_due(self) -> None:
        """Send what is due now, or sleep until something is."""
        count = self.pacer.take(self.batch_max)
        if not count:
            gevent.sleep(min(max(self.pacer.delay(), MIN_SLEEP), MAX_SLEEP))
            return
        sent = self.client.send(count)
        if sent < count:
            # Backpressure (or stopping): the rest stays due; let librdkafka catch up.
            self.pacer.give_back(count - sent)
            gevent.sleep(MIN_SLEEP)
        self.client.poll()


class IngestApiUser(FastHttpUser):
    """POSTs the catalogue's mock controller messages to an ingest API, paced in messages per second.

    The envelope travels inside each JSON message (``--envelope-field``), so the verifier can
    match what lands in Kafka even behind an API that does not copy headers. With
    ``--api-batch-size 1`` each message is one request to ``--api-path``; otherwise the due
    messages are grouped by message type into JSON arrays of up to that many, sent to
    ``--api-batch-path``. Point it at any API with ``--host``; headers with ``--api-header``,
    a bearer token with ``INGESTLOAD_API_TOKEN`` (never printed). HTTP concurrency is the
    number of users, as ``ab -c``.

    Example::

        class Devices(IngestApiUser):
            host = "http://127.0.0.1:8080"
    """

    abstract = True
    ingestload_path = "api"
    wait_time = constant(0)

    @classmethod
    def ingestload_capacity(cls, settings: Settings) -> float:
        """One request in flight per user: ``API_USER_REQUESTS_PER_S`` × messages per request
        (a take split into one request per message type when the batch path has ``{msgType}``)."""
        shares = None
        if settings.http.batch_size > 1 and settings.http.batch_per_type:
            shares = Catalogue.load(settings.messages.catalogue).type_shares()
        return API_USER_REQUESTS_PER_S * messages_per_request(settings.http.batch_size, shares)

    def __init__(self, environment: Any) -> None:
        state = sending_state_of(environment)
        # FastHttpUser builds its HTTP client from this in __init__.
        self.network_timeout = state.settings.http.timeout
        self.connection_timeout = state.settings.http.timeout
        super().__init__(environment)
        if state.api_client is None:
            raise RuntimeError(
                "the ingest API client was not created; see the ingestload error logged at test start"
            )
        settings = state.settings.http
        self.api = state.api_client
        self.rows = MessageRows.of(environment)
        """Per-message ``API`` rows beside the ``POST`` rows, which stay out of Aggregated."""
        self.pacer = state.pacer_for(self.ingestload_path)
        self.batch_size = settings.batch_size
        self.single_path, self.batch_path = settings.path, settings.batch_path
        self.batch_per_type = settings.batch_per_type
        self._single_paths: dict[str, str] = {}
        self.headers = {"Content-Type": self.api.content_type, **settings.headers}
        if settings.token:
            self.headers["Authorization"] = f"Bearer {settings.token}"

    @task
    def post_due(self) -> None:
        """POST what is due now (grouped by message type when batching), or sleep until something is."""
        count = self.pacer.take(self.batch_size)
        if not count:
            gevent.sleep(min(max(self.pacer.delay(), MIN_SLEEP), MAX_SLEEP))
            return
        if self.batch_size == 1:
            messages = self.api.take(count)
            if not messages:  # stopping
                self.pacer.give_back(count)
                gevent.sleep(MIN_SLEEP)
                return
            paths = self._single_paths
            started = 0
            try:
                for msg_type, seq, body in messages:
                    path = paths.get(msg_type)
                    if path is None:
                        path = paths[msg_type] = self.single_path.format(msgType=msg_type)
                    started += 1
                    self._post_one(path, body, seq)
            finally:  # stopped mid-take: the messages never posted were never sent
                if started < len(messages):
                    self.api.resolve([seq for _, seq, _ in messages[started:]], OUTCOME_FAILED)
            return
        batches = list(self.api.take_batches(count, per_type=self.batch_per_type).items())
        if not batches:  # stopping
            self.pacer.give_back(count)
            gevent.sleep(MIN_SLEEP)
            return
        posted = 0
        try:
            for msg_type, (seqs, body) in batches:
                posted += 1
                self._post_batch(self.batch_path.format(msgType=msg_type), body, seqs)
        finally:  # stopped mid-take (Locust rebalancing users, a stop): the rest was never sent
            self.api.resolve([seq for _, (seqs, _) in batches[posted:] for seq in seqs], OUTCOME_FAILED)

    def _post_one(self, path: str, body: bytes, seq: int) -> None:
        """One message: Locust's own success/failure by status is right, so no catch_response."""
        outcome = OUTCOME_UNKNOWN  # stopped mid-request, or the client raised: nobody knows
        self.rows.request(path)
        started = time.perf_counter()
        try:
            # Locust documents data as "String/bytes" but annotates it as str; bytes avoid a copy.
            response = self.client.post(path, data=body, headers=self.headers)  # type: ignore[arg-type]
            outcome = _outcome(response)
        finally:
            self.api.resolve((seq,), outcome)
        acked = outcome == OUTCOME_ACKED
        self.rows.messages(
            path,
            (time.perf_counter() - started) * 1000.0,
            acked=int(acked),
            refused=int(not acked),
            error="" if acked else _error_of(response),
        )

    def _post_batch(self, path: str, body: bytes, seqs: list[int]) -> None:
        """A batch: a 207 is a failure in Locust's stats when any item was refused."""
        resolved = False
        self.rows.request(path)
        started = time.perf_counter()
        try:
            post = self.client.post
            with post(path, data=body, headers=self.headers, catch_response=True) as response:  # type: ignore[arg-type]
                status = int(response.status_code or 0)
                if _refused_connection(response):
                    outcomes = {OUTCOME_FAILED: seqs}
                else:
                    outcomes = batch_outcomes(status, response.content, seqs)
                for outcome, outcome_seqs in outcomes.items():
                    self.api.resolve(outcome_seqs, outcome)
                resolved = True
                refused = len(seqs) - len(outcomes.get(OUTCOME_ACKED, ()))
                error = f"HTTP {status}: {refused} of {len(seqs)} messages not accepted"
                if status and not refused:
                    response.success()
                elif status:
                    response.failure(error)
        finally:
            if not resolved:  # stopped mid-request, or the client raised: nobody knows
                self.api.abandon(seqs)
        elapsed = (time.perf_counter() - started) * 1000.0
        error = error if status else _error_of(response)
        self.rows.messages(path, elapsed, acked=len(seqs) - refused, refused=refused, error=error)


def _refused_connection(response: Any) -> bool:
    """No answer because nothing listened: the API certainly did not take the messages."""
    return not response.status_code and isinstance(getattr(response, "error", None), ConnectionRefusedError)


def _error_of(response: Any) -> str:
    """Why a response acknowledged nothing, in a few words (for the ``API`` rows' errors)."""
    status = int(getattr(response, "status_code", 0) or 0)
    if status:
        return f"HTTP {status}"
    error = getattr(response, "error", None)
    return type(error).__name__ if error is not None else "no answer"


def _outcome(response: Any) -> str:
    """The ledger outcome of a single-message response."""
    return OUTCOME_FAILED if _refused_connection(response) else outcome_of(int(response.status_code or 0))


class WebSocketSubscriberUser(User):
    """One live view: connects to a fan-out gateway, subscribes, receives, and files every message.

    Each user holds one WebSocket (``--ws-url``) with one subscription (``topics``, an optional
    ``filter``), reads it cooperatively (gevent: hundreds per process) and files every message it
    receives in its window's ledger. Each received message is a Locust request of type ``WS``
    named after its topic, whose response time is the fan-out latency (envelope send time →
    received); connecting counts as a ``WS subscribe`` request, a lost connection as a
    ``WS connection`` failure (the user reconnects after ``reconnect_backoff`` seconds, in a new
    window). At the stop every subscriber drains to Kafka's end offsets and ends its subscription
    cleanly; the fan-out verdict judges every window (see :mod:`ingestload.locust.fanout`). The user
    count is the number of subscribers (``--ws-subscriber-profile`` ramps it).

    Class attributes (each defaults to its option):

    Example::

        class AlarmViews(WebSocketSubscriberUser):
            topics = ["gov-alarm"]                                     # --ws-topics
            filter = {"field": "Header.ControllerType", "in": ["LCE"]}  # --ws-filter
            reconnect_every = 30.0                                     # --ws-reconnect-every (churn)
    """

    abstract = True
    ingestload_role = "subscriber"
    """Marks a live view for ingestload (it sends nothing: no pacer, no share of the rate)."""
    wait_time = constant(0)
    url: str | None = None
    """The gateway's WebSocket URL; default ``--ws-url``."""
    topics: Sequence[str] | None = None
    """Topics to subscribe to; default ``--ws-topics``, else the run's topics."""
    filter: FieldFilter | Mapping[str, Any] | None = None
    """A filter on a message field (wire form or :class:`FieldFilter`); default ``--ws-filter``."""
    label: str | None = None
    """The subscribe request's ``id`` (the gateway's stats show it; faults can target it)."""
    reconnect_every: float | None = None
    """Seconds between clean reconnects (connection churn); default ``--ws-reconnect-every``."""
    reconnect_backoff = 1.0
    """Seconds before connecting again after a failed or lost connection."""
    read_pause = 0.0
    """Seconds to pause after each read: a view that reads slowly (for slow-subscriber tests)."""
    receive_buffer: int | None = None
    """The socket's receive buffer in bytes (default: the kernel's)."""
    pump_timeout = 0.25
    """Longest single wait for data, so that the stop is noticed promptly."""
    connect_timeout = 10.0
    """Seconds to connect and get the subscription confirmed."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        fanout = state_of(environment).fanout
        if fanout is None:  # pragma: no cover - the plugin makes one whenever such a class exists
            raise RuntimeError("ingestload's fan-out state is missing; import ingestload.users first")
        self.fanout: FanoutRun = fanout
        settings = fanout.settings.fanout
        self.ws_url = self.url or settings.url
        self.ws_topics = tuple(self.topics) if self.topics else fanout.topics()
        chosen = self.filter if self.filter is not None else settings.filter
        self.ws_filter = FieldFilter.from_json(chosen) if isinstance(chosen, Mapping) else chosen
        self.churn = self.reconnect_every if self.reconnect_every is not None else settings.reconnect_every
        self.subscriber: Subscriber | None = None
        self._not_before = 0.0
        self._churn_at = float("inf")
        self._done = False

    @task
    def receive(self) -> None:
        """Read what arrived (filing every message), reconnect when due; at the stop, finish."""
        fanout = self.fanout
        if fanout.end is not None:
            self._conclude(fanout.end)
            gevent.sleep(MAX_SLEEP)
            return
        subscriber = self.subscriber
        if subscriber is None:
            wait = self._not_before - time.monotonic()
            if wait > 0:
                gevent.sleep(min(wait, MAX_SLEEP))
            else:
                self._connect()
            return
        try:
            subscriber.pump(self.pump_timeout)
        except (ConnectionClosedError, OSError) as e:
            self._lost(e)
            return
        finally:
            fanout.stats.flush()
        if self.read_pause:
            gevent.sleep(self.read_pause)
        if time.monotonic() >= self._churn_at:
            self._end_window()

    def _connect(self) -> None:
        fanout = self.fanout
        ledger = fanout.new_ledger(self.ws_topics, self.ws_filter, self.label)
        fanout.busy.add(self)
        started = time.monotonic()
        try:
            self.subscriber = Subscriber.connect(
                self.ws_url,
                ledger.subscriber,
                ledger.topics,
                self.ws_filter,
                label=self.label,
                timeout=self.connect_timeout,
                ledger=ledger,
                receive_buffer=self.receive_buffer,
            )
        except (NoConfirmationError, ConnectionClosedError) as e:
            # The subscribe request went out: the gateway may hold a window nobody can judge.
            ledger.disconnected()
            self._failed("subscribe", e)
            return
        except (OSError, IngestloadError) as e:  # refused, no handshake, or the gateway said no
            fanout.forget(ledger)
            self._failed("subscribe", e)
            return
        fanout.stats.fire("subscribe", (time.monotonic() - started) * 1000)
        self._churn_at = time.monotonic() + self.churn if self.churn else float("inf")

    def _failed(self, name: str, error: BaseException) -> None:
        self.fanout.stats.fire(name, 0.0, error)
        self.fanout.busy.discard(self)
        self.subscriber = None
        self._not_before = time.monotonic() + self.reconnect_backoff

    def _lost(self, error: BaseException) -> None:
        """The connection ended without a clean end: the window is broken (its ledger says so)."""
        if self.subscriber is not None:
            self.subscriber.close()
        self._failed("connection", error)

    def _end_window(self) -> None:
        """Churn: end this subscription cleanly (an exact window); the next one starts right away."""
        subscriber = self.subscriber
        if subscriber is None:
            return
        try:
            subscriber.finish(timeout=self.connect_timeout)
        except (ConnectionClosedError, OSError) as e:
            self._lost(e)
            return
        subscriber.close()
        self.subscriber = None
        self.fanout.busy.discard(self)
        self.fanout.stats.flush()

    def _conclude(self, end: Mapping[Any, int]) -> None:
        """The stop: receive up to Kafka's end offsets (the gateway vouches), then finish cleanly."""
        if self._done:
            return
        self._done = True
        subscriber = self.subscriber
        try:
            if subscriber is not None:
                remaining = max(0.0, self.fanout.end_deadline - time.monotonic())
                if subscriber.drain(end, remaining):
                    subscriber.finish(timeout=max(1.0, self.fanout.end_deadline - time.monotonic()))
                else:
                    subscriber.ledger.gave_up(GAVE_UP)
                subscriber.close()
        except (ConnectionClosedError, OSError) as e:
            self.fanout.stats.fire("connection", 0.0, e)
            if subscriber is not None:
                subscriber.close()
        finally:
            self.subscriber = None
            self.fanout.busy.discard(self)
            self.fanout.stats.flush()

    def on_stop(self) -> None:
        """Stopped during the test (fewer users, a rebalance): end the window cleanly if possible."""
        if self.subscriber is not None and not self._done:
            self._end_window()
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None
        self.fanout.busy.discard(self)
