"""The fan-out side of one Locust process: subscriber windows, their drain at stop, the fan-out verdict.

:class:`~ingestload.locust.process.ProcessState` owns one :class:`FanoutRun` when the locustfile has a
:class:`~ingestload.users.WebSocketSubscriberUser` class, and calls it at ``init``, at
``test_start`` and when the run concludes. Every subscriber user files each window (one
subscription, from its confirmation to its end) in this process's :attr:`FanoutRun.ledgers`.

Stop, after the producers drained (the plugin's drain protocol)::

    master / local                                        worker
    ──────────────                                        ──────
    E = Kafka's end offsets of the subscribed topics
    ingestload_fanout_end {run_id, end: E} ────────────▶  each subscriber: drain(E), then finish()
                                                          (a clean end: its window is exact)
              ◀──────────────── ingestload_fanout_ledgers {run_id, ledgers}
    read_expected (one Kafka read) + judge → the fan-out verdict

A subscriber that cannot catch up with ``E`` within ``--drain-timeout`` gives up: its window is
judged up to the gateway's last ``progress`` and the verdict is INCONCLUSIVE for it (or FAIL when
it missed messages the gateway had vouched for). A worker whose ledgers never arrive — it did not
answer within ``--drain-timeout`` plus a grace, or it reported windows during the run and left —
makes the verdict INCONCLUSIVE. A local process does the same without messages.

Publishing: the verdict block is logged after the Kafka one, anomalies become failures of the
``WS`` rows in Locust's stats, the verdict file gets a ``fanout`` section and an ``overall`` one,
and the exit code covers both verdicts (:func:`overall_status`).

Example (what a subscriber user does with it)::

    fanout = state_of(environment).fanout
    ledger = fanout.new_ledger(topics, filter)          # a unique window name, WS events on
    fanout.busy.add(user)                               # the stop waits for this user
    …
    fanout.end                                          # set at stop: drain to it, then finish
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import gevent

from ingestload.errors import IngestloadError
from ingestload.fanout.expected import Expected, read_expected
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.ledger import SubscriberLedger, SubscriberLedgers
from ingestload.fanout.protocol import Positions, positions_from_json, positions_json
from ingestload.fanout.verdict import (
    FanoutThresholds,
    FanoutVerdict,
    judge,
)
from ingestload.kafka.admin import topic_end_offsets
from ingestload.kafka.config import scrub
from ingestload.locust.ws_stats import WS, ObservedLedger, WsStats
from ingestload.settings import Settings
from ingestload.verdicts import HopVerdict, Status

log = logging.getLogger("ingestload")

MSG_END = "ingestload_fanout_end"
MSG_LEDGERS = "ingestload_fanout_ledgers"
REPORT_KEY = "ingestload_fanout"
#: Seconds the master waits for ledgers beyond the subscribers' own drain timeout.
LEDGER_GRACE = 15.0
#: What a subscriber's window says when it could not catch up with Kafka's end at the stop.
GAVE_UP = "it had not received up to Kafka's end offsets within --drain-timeout"
_T = TypeVar("_T")


def is_subscriber_class(user_class: Any) -> bool:
    """True for a user class that is a live view (``ingestload_role = "subscriber"``)."""
    return getattr(user_class, "ingestload_role", None) == "subscriber"


def in_thread(fn: Callable[..., _T], *args: Any) -> _T:
    """Run a blocking Kafka call in gevent's thread pool: the process's greenlets (subscribers
    reading their sockets) keep running meanwhile."""
    return gevent.get_hub().threadpool.apply(fn, args)  # type: ignore[no-any-return]


class FanoutRun:
    """Subscriber windows of one process and, on the master (or local), the fan-out verdict."""

    def __init__(self, environment: Any, runner: Any, role: str, settings: Settings) -> None:
        self.environment = environment
        self.runner = runner
        self.role = role
        self.settings = settings
        self.stats = WsStats(environment)
        self.run_id: str | None = None
        self.ledgers: list[SubscriberLedger] = []
        """Every window of this run opened in this process (confirmed, or asked for and unanswered)."""
        self.busy: set[Any] = set()
        """Users holding a subscription (or opening one): the stop waits until they are done."""
        self.end: Positions | None = None
        """Kafka's end offsets after the producers drained; set at stop, then subscribers finish."""
        self.end_deadline = 0.0
        self.subscribed_topics: set[str] = set()
        self._names: Iterator[int] = itertools.count()
        self._process = "local"
        # master only
        self.reported: dict[str, dict[str, Any]] = {}
        """Per worker, its last fan-out report of this run (windows, topics, received)."""
        self.answers: dict[str, list[dict[str, Any]]] = {}
        self.verdict: FanoutVerdict | None = None

    # -- setup and lifecycle ------------------------------------------------------------------

    def setup(self) -> None:
        """``init``: register the stop messages and report listeners; install the subscriber shape."""
        runner, events = self.runner, self.environment.events
        if self.role == "worker":
            runner.register_message(MSG_END, self._on_end_message, concurrent=True)
            events.report_to_master.add_listener(self._on_report_to_master)
            return
        if self.role == "master":
            runner.register_message(MSG_LEDGERS, self._on_ledgers_message)
            events.worker_report.add_listener(self._on_worker_report)
        if self.settings.fanout.profile:
            from ingestload.locust.subscriber_shape import install_subscriber_shape

            install_subscriber_shape(self.environment, self.runner, self.settings.fanout.profile)

    def on_test_start(self, run_id: str, settings: Settings) -> None:
        self.run_id, self.settings = run_id, settings
        self.ledgers = []
        self.busy.clear()
        self.end = None
        self.subscribed_topics.clear()
        self.reported.clear()
        self.answers.clear()
        self.verdict = None
        self._names = itertools.count()
        client_id = getattr(self.runner, "client_id", None)
        self._process = str(client_id) if self.role == "worker" and client_id else self.role

    def topics(self) -> tuple[str, ...]:
        """The topics subscribers take by default: ``--ws-topics``, else the run's topics."""
        if self.settings.fanout.topics:
            return tuple(self.settings.fanout.topics)
        from ingestload.messages.catalogue import Catalogue

        return tuple(self.settings.topics(Catalogue.load(self.settings.messages.catalogue)))

    def new_ledger(
        self, topics: Iterable[str], filter: FieldFilter | None, label: str | None = None
    ) -> ObservedLedger:
        """A ledger for a new window, named uniquely across the test (``<process>-[<label>-]<n>``),
        filed in :attr:`ledgers` at once (a window asked for and never confirmed is INCONCLUSIVE,
        not forgotten)."""
        name = f"{self._process}-{label + '-' if label else ''}{next(self._names)}"
        ledger = ObservedLedger(
            self.stats, name, topics, filter, envelope_field=self.settings.messages.envelope_field
        )
        self.ledgers.append(ledger)
        self.subscribed_topics.update(ledger.topics)
        return ledger

    def forget(self, ledger: SubscriberLedger) -> None:
        """Drop a window that never existed (the connection failed before the subscribe request, or
        the gateway refused it)."""
        if ledger in self.ledgers:
            self.ledgers.remove(ledger)

    # -- the stop -----------------------------------------------------------------------------

    def _wait_for_subscribers(self) -> None:
        """Until every subscriber finished its window (or the drain deadline passed, plus a grace)."""
        while self.busy and time.monotonic() < self.end_deadline + 5.0:
            gevent.sleep(0.05)
        if self.busy:
            log.error("%d subscribers did not finish their windows in time", len(self.busy))
        self.stats.publish()

    def _on_end_message(self, environment: Any, msg: Any, **_: Any) -> None:
        """Worker: the end offsets; let every subscriber finish, then send this process's ledgers."""
        if msg.data.get("run_id") != self.run_id:
            return
        self.end_deadline = time.monotonic() + float(msg.data.get("timeout", self.settings.run.drain_timeout))
        self.end = positions_from_json(msg.data.get("end") or [])
        self._wait_for_subscribers()
        send_stats = getattr(self.runner, "_send_stats", None)
        if send_stats is not None:
            send_stats()  # the last WS rows reach the master before the ledgers
        self.runner.send_message(
            MSG_LEDGERS, {"run_id": self.run_id, "ledgers": SubscriberLedgers(self.ledgers).to_json()}
        )

    def _on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        if self.ledgers:
            data[REPORT_KEY] = {
                "run_id": self.run_id,
                "windows": len(self.ledgers),
                "open": len(self.busy),
                "topics": sorted(self.subscribed_topics),
            }

    def _on_worker_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        report = data.get(REPORT_KEY)
        if report and report.get("run_id") == self.run_id:
            self.reported[client_id] = dict(report)

    def _on_ledgers_message(self, environment: Any, msg: Any, **_: Any) -> None:
        if msg.data.get("run_id") == self.run_id:
            self.answers[msg.node_id] = list(msg.data.get("ledgers") or [])

    def _end_offsets(self) -> tuple[Positions, str | None]:
        """Kafka's end offsets of every topic a subscriber may hold (after the producers drained)."""
        topics = set(self.topics()) | self.subscribed_topics
        for report in self.reported.values():
            topics.update(report.get("topics") or [])
        config = self.settings.kafka.consumer_config()
        try:
            return in_thread(topic_end_offsets, config, sorted(topics)), None
        except IngestloadError as e:
            return {}, scrub(str(e), config)

    def conclude(
        self, sender_hosts: Iterable[str] | None = None, known_workers: Iterable[str] = ()
    ) -> FanoutVerdict | None:
        """Master/local: every subscriber drains to Kafka's end and finishes; then the verdict (not
        yet published, see :meth:`publish`). ``None`` when verification is off. ``sender_hosts``: the
        hosts whose clocks stamped the envelopes (the latency is exact when they are the subscribers').
        ``known_workers``: every worker connected during the run, each of which owes its ledgers (one
        killed before its first report is named missing too)."""
        end, problem = self._end_offsets()
        if problem:
            log.error("fan-out: cannot read Kafka's end offsets: %s", problem)
        timeout = self.settings.run.drain_timeout
        self.end_deadline = time.monotonic() + timeout
        missing: list[str] = []
        if self.role == "master":
            from locust.runners import STATE_MISSING

            workers = {c.id for c in self.runner.clients.values() if c.state != STATE_MISSING}
            message = {"run_id": self.run_id, "end": positions_json(end), "timeout": timeout}
            for worker_id in sorted(workers):
                self.runner.send_message(MSG_END, message, client_id=worker_id)
            deadline = self.end_deadline + LEDGER_GRACE
            while not workers <= set(self.answers) and time.monotonic() < deadline:
                gevent.sleep(0.05)
            missing = sorted((workers | set(self.reported) | set(known_workers)) - set(self.answers))
            if missing:
                log.error("fan-out: workers whose subscriber ledgers never came: %s", ", ".join(missing))
            ledgers = SubscriberLedgers()
            for answer in self.answers.values():
                ledgers.merge(SubscriberLedgers.from_json(answer))
        else:
            self.end = end
            self._wait_for_subscribers()
            ledgers = SubscriberLedgers(self.ledgers)
        if not self.settings.verify.enabled:
            return None
        config = self.settings.kafka.consumer_config()
        try:
            expected = in_thread(read_expected, config, list(ledgers))
        except Exception as e:  # KafkaException: Kafka went away; never a PASS, never a miss
            expected = Expected({}, {}, {}, [f"reading Kafka failed: {scrub(str(e), config)}"])
        if problem:
            expected.incomplete.append(f"end offsets at stop: {problem}")
        self.verdict = judge(
            ledgers, expected, self.thresholds(), missing_reports=missing, sender_hosts=sender_hosts
        )
        self._add_failures(self.verdict)
        return self.verdict

    def thresholds(self) -> FanoutThresholds:
        return self.settings.fanout.thresholds

    def _add_failures(self, verdict: FanoutVerdict) -> None:
        """Missed, duplicated, out of order and unexpected as failures of the ``WS`` rows."""
        from ingestload.locust.verification import add_anomaly_errors

        runner = self.environment.runner
        if runner is None:
            return
        counts = {
            (topic, kind): per_topic.get(kind, 0)
            for topic, per_topic in verdict.per_topic.items()
            for kind in ("missed", "duplicated", "out_of_order", "unexpected")
        }
        add_anomaly_errors(runner.stats, counts, time.time(), request_type=WS)

    # -- publishing -----------------------------------------------------------------------------

    def hop(self, verdict: FanoutVerdict) -> HopVerdict:
        """The fan-out verdict as the run publishes it beside the Kafka verdict (the ``fanout``
        section of the verdict file, and its block of lines)."""
        return HopVerdict(
            "fanout",
            "fan-out",
            Status(verdict.status),
            tuple(verdict.reasons),
            verdict.report(),
            verdict.to_dict(),
        )
