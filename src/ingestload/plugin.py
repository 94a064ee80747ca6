"""Locust integration: options, per-process state, run ids, rate shares, status, drain at stop.

Importing :mod:`ingestload.users` installs these listeners on ``locust.events``.

What happens in each kind of process:

=========  ===========================================================================
local      validate settings, create topics and the producer at ``init``; at
           ``test_start`` a new run id; status lines; at ``test_stopping`` drain.
master     validate settings and create topics at ``init``; at ``test_start`` a run
           id (sent to workers inside the spawn message's options); status lines from
           worker reports; at ``test_stopping`` the drain protocol below.
worker     at ``test_start`` (options now as the master sent them) build the producer
           and begin the run.
=========  ===========================================================================

Rates (target curve, per-path pacers, plans sent to workers, the profile shape, the rate
guard) live in :class:`~ingestload.rate.control.RateControl`, one per process.

Drain protocol. Locust's master gives workers about half a second after ``quit``, which
is not enough to receive the last acknowledgements. So on ``test_stopping`` the master
sends ``ingestload_drain`` to every live worker; each worker stops sending, polls until
its queue is empty (cooperatively, never a blocking flush), pushes a final stats report
and answers ``ingestload_drained`` with its counters. The master waits for every answer
(``--drain-timeout`` plus a grace period) before it lets Locust stop the users; workers
that never answer are named in the log.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import gevent

from ingestload import gctune
from ingestload.errors import ConfigError, IngestloadError
from ingestload.fanout.run import FanoutRun, is_subscriber_class
from ingestload.http.client import IngestApiClient
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.producer import KafkaProducerClient
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger, ProducerLedger
from ingestload.rate.control import RateControl
from ingestload.rate.pacer import Pacer
from ingestload.settings import Settings, add_arguments
from ingestload.status import StatusLine, WorkerRates, add_counters, format_summary
from ingestload.verify.conclusion import RunVerification

log = logging.getLogger("ingestload")

MSG_DRAIN = "ingestload_drain"
MSG_DRAINED = "ingestload_drained"
#: Extra seconds the master waits for drained answers beyond the workers' own drain timeout.
DRAIN_GRACE = 10.0
_STATE_ATTR = "_ingestload_state"
_PENDING_START_ATTR = "_ingestload_pending_start"


def fail(error: Exception) -> NoReturn:
    """Print a one-line error and leave before any load starts."""
    sys.stderr.write(f"ingestload: error: {error}\n")
    sys.stderr.flush()
    sys.exit(2)


def state_of(environment: Any) -> ProcessState:
    """The ingestload state of a Locust process (created at ``init``)."""
    state = getattr(environment, _STATE_ATTR, None)
    if state is None:
        raise ConfigError(
            "ingestload is not initialised in this process; import it in your locustfile "
            "(from ingestload.users import KafkaProducerUser) and run it with locust"
        )
    return state  # type: ignore[no-any-return]


def _role(runner: Any) -> str:
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def _paths(user_classes: Any) -> set[str]:
    """The ingestload paths (``kafka``, ``api``) that these user classes send on."""
    return {p for p in (getattr(u, "ingestload_path", None) for u in user_classes) if p}


class ProcessState:
    """Everything ingestload keeps in one Locust process."""

    def __init__(self, environment: Any, runner: Any, settings: Settings) -> None:
        self.environment = environment
        self.runner = runner
        self.role = _role(runner)
        self.settings = settings
        self.catalogue = Catalogue.load(settings.catalogue)
        self._catalogue_path = settings.catalogue
        self._written_run_id: str | None = None
        """The run id we wrote into the options (for workers); seen there again, it was not typed."""
        self.rates = RateControl(environment, runner, self.role, settings)
        self.client: KafkaProducerClient | None = None
        self._client_key: tuple[Any, ...] | None = None
        self.producer_wrapper: Callable[[KafkaProducerClient], Any] | None = None
        """Test hook: wraps each new client's confluent-kafka Producer (see ingestload.testing)."""
        self.first_seq = 0
        """Test hook: the seq each sender starts a run at (e.g. near 2**32; see ingestload.testing)."""
        self.after_drain: list[Callable[[], None]] = []
        """Test hooks called once this process's senders have drained (their ledgers are final)."""
        self.api_client: IngestApiClient | None = None
        self.run_id: str | None = None
        self.paths = _paths(environment.user_classes)
        self.uses_kafka = "kafka" in self.paths
        self._greenlets: list[gevent.Greenlet] = []
        # master only: latest counters per worker, who answered the drain, their final ledgers
        self.worker_counters: dict[str, dict[str, int]] = {}
        self.worker_ledgers: dict[str, list[ProducerLedger]] = {}
        self.worker_rates = WorkerRates()
        self.drained: set[str] = set()
        self.missing_workers: set[str] = set()
        self._worker_lag = 0.0
        self.verification: RunVerification | None = None
        self.verdict: dict[str, Any] | None = None
        self._concluded: str | None = None
        self._drained_sent: str | None = None
        self.fanout: FanoutRun | None = None
        """Subscriber windows and the fan-out verdict, when the locustfile has subscriber users."""
        if any(is_subscriber_class(c) for c in environment.user_classes):
            self.fanout = FanoutRun(environment, runner, self.role, settings)

    @property
    def senders(self) -> list[KafkaProducerClient | IngestApiClient]:
        """This process's message senders: the Kafka producer client and/or the ingest API client."""
        return [c for c in (self.client, self.api_client) if c is not None]

    @property
    def pacer(self) -> Pacer:
        """The Kafka path's pacer (see :meth:`pacer_for`)."""
        return self.pacer_for("kafka")

    def pacer_for(self, path: str) -> Pacer:
        """The pacer shared by this process's users of ``path`` (``kafka``, ``api``)."""
        return self.rates.pacer_for(path)

    # -- setup -----------------------------------------------------------------------

    def setup(self) -> None:
        """``init``: validate against Kafka and register messages; raises on bad input."""
        settings = self.settings
        log.info("ingestload %s: %s", self.role, settings.describe())
        if self.role != "worker" and self.paths and settings.create_topics:
            created = ensure_topics(
                settings.admin_config(), settings.topics(self.catalogue, self.paths), settings.partitions
            )
            if created:
                log.info("created topics: %s", ", ".join(created))
        if self.role == "local":
            self._ensure_senders()
        self.rates.setup()
        runner, events = self.runner, self.environment.events
        if self.role == "worker":
            runner.register_message(MSG_DRAIN, self._on_drain_message, concurrent=True)
            events.report_to_master.add_listener(self.on_report_to_master)
        elif self.role == "master":
            runner.register_message(MSG_DRAINED, self._on_drained_message)
            events.worker_report.add_listener(self.on_worker_report)
        if self.role != "worker":
            events.quit.add_listener(lambda **_: self.on_quit())
        if self.fanout is not None:
            self.fanout.setup()

    def _ensure_client(self) -> KafkaProducerClient:
        """The process's producer client, rebuilt only when its settings changed."""
        s = self.settings
        index = int(getattr(self.runner, "worker_index", 0) or 0)
        key = (tuple(sorted(s.producer_config("-").items())), s.catalogue, s.seed, s.topic_prefix, index)
        if self.client is None or key != self._client_key:
            if self.client is not None:
                self.client.close()
            if s.catalogue != self._catalogue_path:
                self.catalogue, self._catalogue_path = Catalogue.load(s.catalogue), s.catalogue
            factory = MessageFactory(
                self.catalogue, seed=s.seed * 1_000_003 + index, topic_prefix=s.topic_prefix
            )
            self.client = KafkaProducerClient(self.environment, s.producer_config(), factory)
            if self.producer_wrapper is not None:
                self.client.producer = self.producer_wrapper(self.client)
            self._client_key = key
        return self.client

    def _ensure_senders(self) -> None:
        """Create (or rebuild) a sender for every path this process's users take."""
        if self.uses_kafka:
            self._ensure_client()
        if "api" in self.paths:
            s = self.settings
            index = int(getattr(self.runner, "worker_index", 0) or 0)
            # Its own seed: the API path is another producer with its own seq space.
            factory = MessageFactory(
                self.catalogue, seed=s.seed * 1_000_003 + 500_009 + index, topic_prefix=s.topic_prefix
            )
            self.api_client = IngestApiClient(
                factory,
                envelope_field=s.envelope_field,
                topic_map=s.api_topic_map,
                body=s.api_body,
                envelope_in=s.envelope_in,
            )

    def set_producer_wrapper(self, wrapper: Callable[[KafkaProducerClient], Any]) -> None:
        """Wrap the Producer of the current client and of every client made later (fault injection)."""
        self.producer_wrapper = wrapper
        if self.client is not None:
            self.client.producer = wrapper(self.client)

    # -- run lifecycle ----------------------------------------------------------------

    @property
    def concluding(self) -> bool:
        """Master/local: the test is stopping and its verdict is being made (drain, verifier)."""
        return self.run_id is not None and self._concluded == self.run_id and self.verdict is None

    def on_test_start(self) -> None:
        options = self.environment.parsed_options
        try:
            settings = Settings.from_options(options)
        except ConfigError as e:
            if self.role != "worker":
                # Never a silent fallback to the previous test's settings (the web UI refuses a
                # bad form before this; this catches anything else that starts a test).
                log.error("ingestload: %s; this test does not start", e)
                self.run_id = None
                gevent.spawn(self.runner.stop)
                return
            log.error("ingestload: %s (this worker keeps the previous settings)", e)
        else:
            self.settings = settings
        if self.role == "worker":
            self.run_id = getattr(options, "run_id", None) or secrets.token_hex(8)
        else:
            # A run id given (command line, environment, the web UI's form) names this test;
            # else a fresh one: the id we wrote into the options for the last test is not "given".
            given = self.settings.run_id if self.settings.run_id != self._written_run_id else None
            self.run_id = given or secrets.token_hex(8)
            if self.settings.run_id and not given:
                log.info(
                    "run id %s named the previous test; this one is %s", self.settings.run_id, self.run_id
                )
            if options is not None:
                # The spawn message carries the master's custom options to every worker.
                options.run_id = self._written_run_id = self.run_id
        if self.fanout is not None:
            self.fanout.on_test_start(self.run_id, self.settings)
        if self.role != "master" and self.paths:
            try:
                self._ensure_senders()
            except IngestloadError as e:
                log.error("ingestload: %s", e)
                return
            meta = {"role": self.role, "worker_index": int(getattr(self.runner, "worker_index", 0) or 0)}
            if self.client is not None:
                if not self.client.warm_up():
                    log.warning(
                        "Kafka at %s did not answer a metadata request within 5s",
                        self.settings.kafka_bootstrap,
                    )
                self.client.begin_run(self.run_id, meta=meta, first_seq=self.first_seq)
            if self.api_client is not None:
                self.api_client.begin_run(self.run_id, meta=meta, first_seq=self.first_seq)
            for sender in self.senders:
                log.info("run %s: %s producer %016x", self.run_id, sender.meta["path"], sender.producer_id)
            gctune.tune(self.settings.gc_threshold)
        if self.role != "worker":
            self.verdict = None
            self.verification = None
            if self.settings.verify and self.paths:
                topics = self.settings.topics(self.catalogue, self.paths)
                self.verification = RunVerification(
                    self.environment, self.settings.for_run(self.run_id), topics, self.run_id
                )
                self.verification.start()  # before any user sends: it must hold the start offsets first
        if self.role == "master":
            self.worker_counters.clear()
            self.worker_ledgers.clear()
            self.worker_rates.clear()
            self.drained.clear()
            self.missing_workers.clear()
        self.rates.on_test_start(self.run_id, self.settings)
        if self.role != "worker":
            log.info("run %s started: target %s", self.run_id, self.rates.describe_target())
            options = self.environment.parsed_options
            if self.settings.status_interval > 0 and getattr(options, "headless", False):
                self._spawn(self._status_loop)

    def on_test_stopping(self) -> None:
        self.conclude_run()

    def conclude_run(self) -> None:
        """Drain, then (master/local) judge the run; once per run, whichever stop path comes first."""
        if self.run_id is None or self._concluded == self.run_id:
            return
        if self.role == "master":
            self.drain_workers()
            ledger = AckLedger(p for ledgers in self.worker_ledgers.values() for p in ledgers)
            missing = self.missing_workers | (set(self.worker_counters) - self.drained)
        else:
            self.drain_local()
            if self.role == "worker":
                self._send_drained()
                self._concluded = self.run_id
                return
            ledger = AckLedger(sender.ledger() for sender in self.senders)
            missing = set()
        self._concluded = self.run_id
        # The subscribers drain to Kafka's end now that every producer has drained.
        fanout = self.fanout.conclude() if self.fanout is not None else None
        if self.verification is not None:
            self.verdict = self.verification.conclude(ledger, missing)
        if self.fanout is not None and fanout is not None:
            self.verdict = self.fanout.publish(fanout, self.verdict)

    def drain_local(self) -> None:
        """Stop sending and wait for this process's last acknowledgements (no-op when done).

        Every sender drains at once, all within one ``--drain-timeout`` (a worker with two paths
        must not take twice as long as the master waits for it); then the after-drain hooks run.
        """
        self.rates.stop()
        draining = [sender for sender in self.senders if sender.accepting]
        for sender, left in zip(draining, drain_all(draining, self.settings.drain_timeout), strict=True):
            if left:
                log.warning(
                    "%d %s messages were still unacknowledged after the %gs drain",
                    left,
                    sender.meta.get("path"),
                    self.settings.drain_timeout,
                )
        if draining:
            for hook in self.after_drain:
                hook()

    def on_test_stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        if self.role != "worker" and self.run_id is not None:
            log.info("run %s stopped: %s", self.run_id, format_summary(self.totals()))
        self.rates.on_test_stop(self.run_id)

    def on_quit(self) -> None:
        """Last words: the verdict line again, below Locust's summary tables."""
        if self.role != "worker" and self.verdict is not None:
            verdict = self.verdict
            overall = verdict.get("overall") or verdict  # with subscribers: Kafka's and the fan-out's
            reasons = "" if overall["status"] == "PASS" else ": " + "; ".join(overall.get("reasons") or [])
            sys.stdout.write(
                f"\ningestload run {verdict.get('run_id')}: VERDICT {overall['status']} "
                f"(exit code {overall['exit_code']}){reasons}\n"
            )
            sys.stdout.flush()

    def on_quitting(self) -> None:
        # On Ctrl-C / SIGTERM Locust fires quitting and fixes the exit code *before* it stops
        # the runner: drain and judge here too, or the verdict would come too late and
        # closing the producer would purge messages still on their way.
        self.conclude_run()
        for sender in self.senders:
            sender.close()

    # -- counters and status ------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Cumulative counters for the run, summed over workers on a master."""
        if self.role == "master":
            return add_counters(list(self.worker_counters.values()))
        return add_counters([sender.counters() for sender in self.senders])

    def _take_lag(self) -> float:
        if self.role == "master":
            lag, self._worker_lag = self._worker_lag, 0.0
            return lag
        return self.rates.pacers.reset_max_lag()

    def _status_loop(self) -> None:
        assert self.run_id is not None
        line = StatusLine(self.run_id, None if self.rates.unlimited else self.settings.rate)
        line.line(self.totals(), 0.0, pace=self.rates.totals())
        while True:
            gevent.sleep(self.settings.status_interval)
            totals = self.totals()
            verified = self.verification.live_counts(totals["acked"]) if self.verification else None
            rates = self.worker_rates.totals() if self.role == "master" else None
            pace = self.rates.totals()
            log.info("%s", line.line(totals, self._take_lag(), pace=pace, verified=verified, rates=rates))

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        if self.senders:
            data["ingestload"] = {
                **self.totals(),
                "target": self.rates.totals().intended,
                "at": time.time(),
                "lag_ms": round(self.rates.pacers.reset_max_lag() * 1000, 3),
                "run_id": self.run_id,
            }

    def on_worker_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        report = data.get("ingestload")
        if report and report.get("run_id") == self.run_id:
            self.worker_counters[client_id] = report
            if "at" in report:
                self.worker_rates.report(client_id, float(report["at"]), report)
            self._worker_lag = max(self._worker_lag, float(report.get("lag_ms", 0)) / 1000)

    # -- drain protocol ---------------------------------------------------------------

    def drain_workers(self) -> None:
        """Master: ask every live worker that has not answered yet to drain, and wait for all answers.

        A worker that left during the run (a pod deleted, scaled in: it drains on SIGTERM and sends
        its final ledger on its way out) has answered already; its ledger counts.
        """
        from locust.runners import STATE_MISSING

        expected = {c.id for c in self.runner.clients.values() if c.state != STATE_MISSING}
        for worker_id in expected - self.drained:
            self.runner.send_message(MSG_DRAIN, {"run_id": self.run_id}, client_id=worker_id)
        deadline = time.monotonic() + self.settings.drain_timeout + DRAIN_GRACE
        while not expected <= self.drained and time.monotonic() < deadline:
            gevent.sleep(0.05)
        self.missing_workers = expected - self.drained
        if self.missing_workers:
            log.error(
                "workers that never reported their final counts: %s", ", ".join(sorted(self.missing_workers))
            )

    def _on_drain_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self.drain_local()
        self._send_drained()

    def _send_drained(self) -> None:
        """Worker: final stats, then the counters and ledger of this run (at most once per run)."""
        if self.run_id is None or self._drained_sent == self.run_id:
            return
        self._drained_sent = self.run_id
        send_stats = getattr(self.runner, "_send_stats", None)
        if send_stats is not None:
            send_stats()  # the last request events must reach the master before our answer
        ledgers = [sender.ledger().to_dict() for sender in self.senders]
        self.runner.send_message(
            MSG_DRAINED, {"run_id": self.run_id, "counters": self.totals(), "ledgers": ledgers}
        )

    def _on_drained_message(self, environment: Any, msg: Any, **_: Any) -> None:
        if msg.data.get("run_id") != self.run_id:
            return
        self.worker_counters[msg.node_id] = msg.data.get("counters", {})
        self.worker_ledgers[msg.node_id] = [
            ProducerLedger.from_dict(d) for d in msg.data.get("ledgers") or []
        ]
        self.drained.add(msg.node_id)

    def _spawn(self, fn: Any) -> None:
        greenlet = gevent.spawn(fn)
        greenlet.link_exception(lambda g: log.error("ingestload background task failed: %r", g.exception))
        self._greenlets.append(greenlet)


def drain_all(senders: list[Any], timeout: float) -> list[int]:
    """Drain every sender at once, all within one ``timeout``; returns what each still had in flight.

    One after another, two slow paths would take twice as long as a master waits for a worker.
    """
    deadline = time.monotonic() + timeout
    jobs = [gevent.spawn(sender.drain, max(0.0, deadline - time.monotonic())) for sender in senders]
    gevent.joinall(jobs)
    return [
        int(job.value) if job.successful() else int(sender.in_flight)
        for sender, job in zip(senders, jobs, strict=True)
    ]


# -- listener wiring -------------------------------------------------------------------


def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    if runner is None:
        return
    try:
        state = ProcessState(environment, runner, Settings.from_options(environment.parsed_options))
        state.setup()
    except IngestloadError as e:
        fail(e)
    setattr(environment, _STATE_ATTR, state)
    if getattr(environment, _PENDING_START_ATTR, False):
        setattr(environment, _PENDING_START_ATTR, False)
        state.on_test_start()


def _with_state(method: str) -> Any:
    def listener(environment: Any = None, **kwargs: Any) -> None:
        state = getattr(environment, _STATE_ATTR, None) if environment is not None else None
        if state is not None:
            getattr(state, method)(**kwargs)
        elif method == "on_test_start" and environment is not None:
            # A worker that joins a running test (the master rebalancing users onto it, e.g. a
            # Deployment scaled out) can get its spawn message before Locust fires its init
            # event: start the run as soon as init has made the state, or its users find no
            # senders and its ledger never reaches the master.
            setattr(environment, _PENDING_START_ATTR, True)

    return listener


def install(events: Any = None) -> None:
    """Register ingestload's listeners on a Locust ``Events`` (default: ``locust.events``); idempotent."""
    if events is None:
        from locust import events as default_events

        events = default_events
    if getattr(events, "_ingestload_installed", False):
        return
    events._ingestload_installed = True
    events.init_command_line_parser.add_listener(_on_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_with_state("on_test_start"))
    events.test_stopping.add_listener(_with_state("on_test_stopping"))
    events.test_stop.add_listener(_with_state("on_test_stop"))
    events.quitting.add_listener(_with_state("on_quitting"))
