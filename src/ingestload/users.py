"""Locust users that generate ingest load. Import this module first in a locustfile.

Example locustfile::

    from ingestload.users import IngestApiUser, KafkaProducerUser

    class Devices(KafkaProducerUser):      # straight to Kafka
        pass

    class Gateways(IngestApiUser):         # through the ingest API (--host)
        pass

Run it with ``locust -f that_file.py --headless --rate 2775 -t 1m --host http://127.0.0.1:8080``.
"""

from __future__ import annotations

# Locust must be imported before anything that could import ssl/sockets, so that gevent
# patches everything.
from locust import User, constant, task  # isort: skip
from locust.contrib.fasthttp import FastHttpUser  # isort: skip

from typing import Any

import gevent

from ingestload.http.client import (
    OUTCOME_ACKED,
    OUTCOME_FAILED,
    OUTCOME_UNKNOWN,
    batch_outcomes,
    outcome_of,
)
from ingestload.messages.catalogue import Catalogue
from ingestload.plugin import install, state_of
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
    wait_time = constant(0)

    @classmethod
    def ingestload_capacity(cls, settings: Settings) -> float:
        """Msg/s one user sustains with these settings (sizes a profile's user pool)."""
        return cls.ingestload_user_capacity

    def __init__(self, environment: object) -> None:
        super().__init__(environment)
        state = state_of(environment)
        if state.client is None:
            raise RuntimeError(
                "the Kafka producer was not created; see the ingestload error logged at test start"
            )
        self.client = state.client
        self.pacer = state.pacer_for(self.ingestload_path)
        self.batch_max = state.settings.batch_max

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
        if settings.api_batch_size > 1 and settings.api_batch_per_type:
            shares = Catalogue.load(settings.catalogue).type_shares()
        return API_USER_REQUESTS_PER_S * messages_per_request(settings.api_batch_size, shares)

    def __init__(self, environment: Any) -> None:
        state = state_of(environment)
        # FastHttpUser builds its HTTP client from this in __init__.
        self.network_timeout = state.settings.api_timeout
        self.connection_timeout = state.settings.api_timeout
        super().__init__(environment)
        if state.api_client is None:
            raise RuntimeError(
                "the ingest API client was not created; see the ingestload error logged at test start"
            )
        settings = state.settings
        self.api = state.api_client
        self.pacer = state.pacer_for(self.ingestload_path)
        self.batch_size = settings.api_batch_size
        self.single_path, self.batch_path = settings.api_path, settings.api_batch_path
        self.batch_per_type = settings.api_batch_per_type
        self._single_paths: dict[str, str] = {}
        self.headers = {"Content-Type": "application/json", **settings.api_headers}
        if settings.api_token:
            self.headers["Authorization"] = f"Bearer {settings.api_token}"

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
        try:
            # Locust documents data as "String/bytes" but annotates it as str; bytes avoid a copy.
            response = self.client.post(path, data=body, headers=self.headers)  # type: ignore[arg-type]
            outcome = _outcome(response)
        finally:
            self.api.resolve((seq,), outcome)

    def _post_batch(self, path: str, body: bytes, seqs: list[int]) -> None:
        """A batch: a 207 is a failure in Locust's stats when any item was refused."""
        resolved = False
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
                if status and not refused:
                    response.success()
                elif status:
                    response.failure(f"HTTP {status}: {refused} of {len(seqs)} messages not accepted")
        finally:
            if not resolved:  # stopped mid-request, or the client raised: nobody knows
                self.api.abandon(seqs)


def _refused_connection(response: Any) -> bool:
    """No answer because nothing listened: the API certainly did not take the messages."""
    return not response.status_code and isinstance(getattr(response, "error", None), ConnectionRefusedError)


def _outcome(response: Any) -> str:
    """The ledger outcome of a single-message response."""
    return OUTCOME_FAILED if _refused_connection(response) else outcome_of(int(response.status_code or 0))
