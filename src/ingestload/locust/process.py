"""The ingestload state of each Locust process, one class per role, and the listeners that make it.

Importing :mod:`ingestload.users` installs these listeners on ``locust.events``; at ``init`` they
make the state of the process's role (:func:`process_for`):

=====================  ==========================================================================
:class:`LocalProcess`  validates settings, creates topics and senders at ``init``; at
                       ``test_start`` a new run id, the verifier, status lines; at
                       ``test_stopping`` drains and judges.
:class:`MasterProcess` validates settings and creates topics at ``init``; at ``test_start`` a
                       run id (sent to workers inside the spawn message's options) and the
                       verifier; status lines from worker reports; at ``test_stopping`` the
                       drain protocol (:mod:`~ingestload.locust.drain`), then judges.
:class:`WorkerProcess` at ``test_start`` (options now as the master sent them) builds its
                       senders and begins the run; drains and answers when the master asks.
=====================  ==========================================================================

What a sending process (local, worker) shares is in :class:`SendingProcess`, what a judging one
(local, master) shares in :class:`JudgingProcess`. Rates (target curve, per-path pacers, plans sent
to workers, the profile shape, the rate guard) live in :class:`~ingestload.locust.rate.RateControl`,
one per process.
"""

from __future__ import annotations

import logging
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn

import gevent

from ingestload import gctune
from ingestload.errors import ConfigError, IngestloadError
from ingestload.http.client import IngestApiClient
from ingestload.kafka.admin import ensure_topics
from ingestload.kafka.producer import KafkaProducerClient
from ingestload.locust.csv_writer import stop_csv_writer
from ingestload.locust.drain import MSG_DRAIN, MSG_DRAINED, WorkerAccounts, drain_all, drained_message
from ingestload.locust.fanout import FanoutRun, is_subscriber_class
from ingestload.locust.kafka_stats import AckStats
from ingestload.locust.publish import publish_run
from ingestload.locust.rate import RateControl
from ingestload.locust.sink import judge_sink_hop
from ingestload.locust.verification import LocustVerification
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.factory import MessageFactory
from ingestload.messages.ledger import AckLedger
from ingestload.rate.delivered import judge_load, path_loads
from ingestload.rate.pacer import Pacer
from ingestload.settings import Settings, add_arguments
from ingestload.status import StatusLine, add_counters, format_summary
from ingestload.verdicts import PASS, HopVerdict

log = logging.getLogger("ingestload")

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


def sending_state_of(environment: Any) -> SendingProcess:
    """The state of a process whose users send (local or worker); users call it in ``__init__``."""
    state = state_of(environment)
    if not isinstance(state, SendingProcess):
        raise ConfigError(f"ingestload: users send from a local or worker process, not a {state.role}")
    return state


def _paths(user_classes: Any) -> set[str]:
    """The ingestload paths (``kafka``, ``api``) that these user classes send on."""
    return {p for p in (getattr(u, "ingestload_path", None) for u in user_classes) if p}


def fix_counts_per_process(user_classes: Any, processes: int) -> None:
    """User classes marked ``one_per_process`` get ``fixed_count = processes``: Locust's master
    dispatches fixed users round-robin over its workers, one each (``KafkaProducerUser``)."""
    for cls in user_classes:
        if getattr(cls, "one_per_process", False):
            cls.fixed_count = max(1, processes)


def _worker_index(runner: Any) -> int:
    return int(getattr(runner, "worker_index", 0) or 0)


class ProcessState:
    """What ingestload keeps in one Locust process, whatever its role (see :func:`process_for`)."""

    role: ClassVar[str]
    """``local``, ``master`` or ``worker`` (for logs and the parts that take it as a parameter)."""

    def __init__(self, environment: Any, runner: Any, settings: Settings) -> None:
        self.environment = environment
        self.runner = runner
        self.settings = settings
        self.catalogue = Catalogue.load(settings.messages.catalogue)
        self.rates = RateControl(environment, runner, self.role, settings)
        self.paths = _paths(environment.user_classes)
        self.run_id: str | None = None
        self.producer_wrapper: Callable[[KafkaProducerClient], Any] | None = None
        """Test hook: wraps each new client's confluent-kafka Producer (see ingestload.testing)."""
        self.first_seq = 0
        """Test hook: the seq each sender starts a run at (e.g. near 2**32; see ingestload.testing)."""
        self.after_drain: list[Callable[[], None]] = []
        """Test hooks called once this process's senders have drained (their ledgers are final)."""
        self.fanout: FanoutRun | None = None
        """Subscriber windows and the fan-out verdict, when the locustfile has subscriber users."""
        if any(is_subscriber_class(c) for c in environment.user_classes):
            self.fanout = FanoutRun(environment, runner, self.role, settings)
        self._concluded: str | None = None
        self._greenlets: list[gevent.Greenlet] = []

    @property
    def senders(self) -> list[KafkaProducerClient | IngestApiClient]:
        """This process's message senders (none on a master)."""
        return []

    @property
    def pacer(self) -> Pacer:
        """The Kafka path's pacer (see :meth:`pacer_for`)."""
        return self.pacer_for("kafka")

    def pacer_for(self, path: str) -> Pacer:
        """The pacer shared by this process's users of ``path`` (``kafka``, ``api``)."""
        return self.rates.pacer_for(path)

    def set_producer_wrapper(self, wrapper: Callable[[KafkaProducerClient], Any]) -> None:
        """Wrap the Producer of every client made from now on (fault injection)."""
        self.producer_wrapper = wrapper

    # -- the Locust events, in the order they come ----------------------------------------

    def setup(self) -> None:
        """``init``: validate against Kafka and register messages; raises on bad input."""
        log.info("ingestload %s: %s", self.role, self.settings.describe())
        fix_counts_per_process(self.environment.user_classes, self.sending_processes())
        self.prepare()
        self.rates.setup()
        self.listen()
        if self.fanout is not None:
            self.fanout.setup()

    def sending_processes(self) -> int:
        """How many processes send in this run, as far as this one knows at ``init`` (the users
        marked ``one_per_process`` get that ``fixed_count``; only a master's count matters)."""
        return 1

    def prepare(self) -> None:
        """At ``init``, before the rate machinery: what must exist before any user (topics, senders)."""

    def listen(self) -> None:
        """At ``init``: register this role's Locust messages and event listeners."""

    def on_test_start(self) -> None:
        try:
            settings = Settings.from_options(self.environment.parsed_options)
        except ConfigError as e:
            if not self.refused(e):
                return
        else:
            self.settings = settings
        self.run_id = self.next_run_id()
        if self.fanout is not None:
            self.fanout.on_test_start(self.run_id, self.settings)
        self.start_run(self.run_id)
        self.rates.on_test_start(self.run_id, self.settings)

    def on_test_stopping(self) -> None:
        self.conclude_run()

    def on_test_stop(self) -> None:
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._greenlets.clear()
        self.rates.on_test_stop(self.run_id)

    def on_quitting(self) -> None:
        # On Ctrl-C / SIGTERM Locust fires quitting and fixes the exit code *before* it stops
        # the runner: drain and judge here too, or the verdict would come too late and
        # closing the producer would purge messages still on their way.
        self.conclude_run()
        for sender in self.senders:
            sender.close()

    # -- what each role does differently ---------------------------------------------------

    def refused(self, error: ConfigError) -> bool:
        """A test's options are invalid: True to go on with the previous settings."""
        raise NotImplementedError

    def next_run_id(self) -> str:
        """The run id of the test that starts."""
        raise NotImplementedError

    def start_run(self, run_id: str) -> None:
        """Begin a run (before the rate machinery starts)."""
        raise NotImplementedError

    def conclude_run(self) -> None:
        """Drain, then judge the run where that is done; once per run, whichever stop path comes first."""
        raise NotImplementedError

    def totals(self) -> dict[str, int]:
        """Cumulative counters for the run (summed over workers on a master)."""
        raise NotImplementedError

    def _spawn(self, fn: Any) -> None:
        greenlet = gevent.spawn(fn)
        greenlet.link_exception(lambda g: log.error("ingestload background task failed: %r", g.exception))
        self._greenlets.append(greenlet)


class SendingProcess(ProcessState):
    """A process whose users send (local, worker): one producer client and/or one ingest API client."""

    def __init__(self, environment: Any, runner: Any, settings: Settings) -> None:
        super().__init__(environment, runner, settings)
        self.client: KafkaProducerClient | None = None
        self.api_client: IngestApiClient | None = None
        self._client_key: tuple[Any, ...] | None = None
        self._catalogue_path = settings.messages.catalogue

    @property
    def senders(self) -> list[KafkaProducerClient | IngestApiClient]:
        """This process's message senders: the Kafka producer client and/or the ingest API client."""
        return [c for c in (self.client, self.api_client) if c is not None]

    def set_producer_wrapper(self, wrapper: Callable[[KafkaProducerClient], Any]) -> None:
        """Wrap the Producer of the current client and of every client made later (fault injection)."""
        super().set_producer_wrapper(wrapper)
        if self.client is not None:
            self.client.producer = wrapper(self.client)

    def totals(self) -> dict[str, int]:
        return add_counters([sender.counters() for sender in self.senders])

    def ensure_senders(self) -> None:
        """Create (or rebuild) a sender for every path this process's users take."""
        if "kafka" in self.paths:
            self._ensure_client()
        if "api" in self.paths:
            s = self.settings
            # Its own seed: the API path is another producer with its own seq space.
            factory = MessageFactory(
                self.catalogue,
                seed=s.messages.seed * 1_000_003 + 500_009 + _worker_index(self.runner),
                topic_prefix=s.messages.topic_prefix,
            )
            self.api_client = IngestApiClient(
                factory,
                envelope_field=s.messages.envelope_field,
                topic_map=s.http.topic_map,
                body=s.http.body,
                envelope_in=s.messages.envelope_in,
            )

    def _ensure_client(self) -> KafkaProducerClient:
        """The process's producer client, rebuilt only when its settings changed."""
        s = self.settings
        index = _worker_index(self.runner)
        m = s.messages
        key = (
            tuple(sorted(s.kafka.producer_config("-").items())),
            m.catalogue,
            m.seed,
            m.topic_prefix,
            index,
            s.sink.enabled,
        )
        if self.client is None or key != self._client_key:
            if self.client is not None:
                self.client.close()
            if m.catalogue != self._catalogue_path:
                self.catalogue, self._catalogue_path = Catalogue.load(m.catalogue), m.catalogue
            factory = MessageFactory(
                self.catalogue, seed=m.seed * 1_000_003 + index, topic_prefix=m.topic_prefix
            )
            self.client = KafkaProducerClient(
                self.environment,
                s.kafka.producer_config(),
                factory,
                ack_sink=lambda kind: AckStats(self.environment, kind),
                # A sink stores the value, not the headers: the envelope travels in the value too.
                body_envelope=m.envelope_field if s.sink.enabled else None,
            )
            if self.producer_wrapper is not None:
                self.client.producer = self.producer_wrapper(self.client)
            self._client_key = key
        return self.client

    def begin_senders(self, run_id: str) -> None:
        """Every sender starts the run (a producer id of its own, seq from :attr:`first_seq`)."""
        if not self.paths:
            return
        try:
            self.ensure_senders()
        except IngestloadError as e:
            log.error("ingestload: %s", e)
            return
        meta = {"role": self.role, "worker_index": _worker_index(self.runner)}
        if self.client is not None:
            if not self.client.warm_up():
                log.warning(
                    "Kafka at %s did not answer a metadata request within 5s", self.settings.kafka.address
                )
            self.client.begin_run(run_id, meta=meta, first_seq=self.first_seq)
        if self.api_client is not None:
            self.api_client.begin_run(run_id, meta=meta, first_seq=self.first_seq)
        for sender in self.senders:
            log.info("run %s: %s producer %016x", run_id, sender.meta["path"], sender.producer_id)
        gctune.tune(self.settings.run.gc_threshold)

    def drain_local(self) -> None:
        """Stop sending and wait for this process's last acknowledgements (no-op when done).

        Every sender drains at once, all within one ``--drain-timeout`` (a worker with two paths
        must not take twice as long as the master waits for it); then the after-drain hooks run.
        """
        self.rates.stop()
        draining = [sender for sender in self.senders if sender.accepting]
        for sender, left in zip(draining, drain_all(draining, self.settings.run.drain_timeout), strict=True):
            if left:
                log.warning(
                    "%d %s messages were still unacknowledged after the %gs drain",
                    left,
                    sender.meta.get("path"),
                    self.settings.run.drain_timeout,
                )
        if draining:
            for hook in self.after_drain:
                hook()


class JudgingProcess(ProcessState):
    """A process that judges the run (local, master): verifier, status lines, verdict, last words."""

    def __init__(self, environment: Any, runner: Any, settings: Settings) -> None:
        super().__init__(environment, runner, settings)
        self.verification: LocustVerification | None = None
        self.verdict: dict[str, Any] | None = None
        self._started_at = time.monotonic()
        self._stopped_by: str | None = None
        self._stop_view: tuple[float, float | None, dict[str, float | None]] = (0.0, None, {})
        self._written_run_id: str | None = None
        """The run id we wrote into the options (for workers); seen there again, it was not typed."""

    def prepare(self) -> None:
        settings = self.settings
        if self.paths and settings.run.create_topics:
            created = ensure_topics(
                settings.kafka.admin_config(),
                settings.topics(self.catalogue, self.paths),
                settings.kafka.partitions,
            )
            if created:
                log.info("created topics: %s", ", ".join(created))

    def listen(self) -> None:
        self.environment.events.quit.add_listener(lambda **_: self.on_quit())

    @property
    def concluding(self) -> bool:
        """The test is stopping and its verdict is being made (drain, verifier)."""
        return self.run_id is not None and self._concluded == self.run_id and self.verdict is None

    def refused(self, error: ConfigError) -> bool:
        # Never a silent fallback to the previous test's settings (the web UI refuses a bad form
        # before this; this catches anything else that starts a test).
        log.error("ingestload: %s; this test does not start", error)
        self.run_id = None
        gevent.spawn(self.runner.stop)
        return False

    def next_run_id(self) -> str:
        # A run id given (command line, environment, the web UI's form) names this test; else a
        # fresh one: the id we wrote into the options for the last test is not "given".
        typed = self.settings.run.run_id
        given = typed if typed != self._written_run_id else None
        run_id = given or secrets.token_hex(8)
        if typed and not given:
            log.info("run id %s named the previous test; this one is %s", typed, run_id)
        options = self.environment.parsed_options
        if options is not None:
            # The spawn message carries the master's custom options to every worker.
            options.run_id = self._written_run_id = run_id
        return run_id

    def start_verification(self, run_id: str) -> None:
        """Start the verifier before any user sends: it must hold the start offsets first."""
        self._started_at = time.monotonic()
        self._stopped_by = None
        self.verdict = None
        self.verification = None
        if self.settings.verify.enabled and self.paths:
            topics = self.settings.topics(self.catalogue, self.paths)
            self.verification = LocustVerification(
                self.environment, self.settings.for_run(run_id), topics, run_id
            )
            self.verification.start()

    def on_test_start(self) -> None:
        super().on_test_start()
        if self.run_id is None:
            return
        log.info("run %s started: target %s", self.run_id, self.rates.describe_target())
        if self.settings.run.status_interval > 0 and getattr(
            self.environment.parsed_options, "headless", False
        ):
            self._spawn(self._status_loop)

    def take_stop_view(self) -> None:
        """At the stop, before the drain: how long the run ran and what each path was asked for."""
        asked = self.rates.asked_duration()
        if asked is None:
            run_time = getattr(self.environment.parsed_options, "run_time", None)
            asked = float(run_time) if run_time else None
        self._stop_view = (time.monotonic() - self._started_at, asked, self.rates.planned_targets())

    def judge(self, ledger: AckLedger, missing: set[str]) -> None:
        """Every hop's verdict on the run, once every sender drained, published as one."""
        self._concluded = self.run_id
        self.rates.freeze()  # every sender drained: the pacing account is final
        # The subscribers drain to Kafka's end now that every producer has drained.
        # The senders' hosts: fan-out latency is measured on one clock only when they are the subscribers'.
        hosts = {str(p.meta.get("host")) for p in ledger if p.meta.get("host")}
        # Workers known since they connected owe their subscriber ledgers too (issue 18 item 6).
        fanout = (
            self.fanout.conclude(sender_hosts=hosts, known_workers=self.known_workers())
            if self.fanout is not None
            else None
        )
        kafka = self.verification.conclude(ledger, missing) if self.verification is not None else None
        hops = []
        if self.paths:
            hops.append(self.judge_load(ledger, missing))
        if self.fanout is not None and fanout is not None:
            hops.append(self.fanout.hop(fanout))
        if self.settings.sink.enabled and self.paths and self.run_id is not None:
            topics = self.settings.topics(self.catalogue, self.paths)
            hops.append(judge_sink_hop(self.environment, self.settings, topics, self.run_id, ledger, missing))
        self.verdict = publish_run(
            self.environment,
            self.run_id,
            self.settings.verify.for_run(str(self.run_id)).verdict_file,
            kafka,
            hops,
        )

    def judge_load(self, ledger: AckLedger, missing: set[str]) -> HopVerdict:
        """The load verdict: each path's target against what it sent (:mod:`~ingestload.rate.delivered`)."""
        elapsed, asked, targets = self._stop_view
        verdict = judge_load(
            path_loads({p: targets.get(p) for p in sorted(self.paths)}, ledger),
            self.settings.rate.load_thresholds,
            elapsed=elapsed,
            asked=asked,
            stopped_by=self._stopped_by,
            missing_workers=missing,
        )
        return HopVerdict(
            "load", "load", verdict.status, verdict.reasons, verdict.report(), verdict.to_dict()
        )

    def conclude_on_quit(self) -> None:
        """Locust is quitting before the test stopped (Ctrl-C, SIGTERM: a test's own end stops it
        first): judge what was sent, and say what stopped it."""
        if self.run_id is not None and self._concluded != self.run_id:
            self._stopped_by = "a signal (Ctrl-C or SIGTERM)"
        self.conclude_run()

    def on_quitting(self) -> None:
        self.conclude_on_quit()
        super().on_quitting()

    def on_test_stop(self) -> None:
        super().on_test_stop()
        if self.run_id is not None:
            log.info("run %s stopped: %s", self.run_id, format_summary(self.totals()))

    def on_quit(self) -> None:
        """Last words: the verdict line again, below Locust's summary tables; Locust's CSV writer
        stops here, before Locust closes its files (:mod:`~ingestload.locust.csv_writer`)."""
        if getattr(self.environment.parsed_options, "csv_prefix", None):
            stop_csv_writer()
        if self.verdict is not None:
            verdict = self.verdict
            overall = verdict.get("overall") or verdict  # with subscribers: Kafka's and the fan-out's
            reasons = "" if overall["status"] == PASS else ": " + "; ".join(overall.get("reasons") or [])
            sys.stdout.write(
                f"\ningestload run {verdict.get('run_id')}: VERDICT {overall['status']} "
                f"(exit code {overall['exit_code']}){reasons}\n"
            )
            sys.stdout.flush()

    def take_lag(self) -> float:
        """The largest pacing lag since the last call (seconds)."""
        raise NotImplementedError

    def known_workers(self) -> set[str]:
        """Workers that took part in the run (a local process has none)."""
        return set()

    def worker_rates(self) -> dict[str, float] | None:
        """Msg/s summed over workers, for the status line (``None``: a local process's own)."""
        return None

    def _status_loop(self) -> None:
        assert self.run_id is not None
        line = StatusLine(self.run_id, None if self.rates.unlimited else self.settings.rate.target)
        line.line(self.totals(), 0.0, pace=self.rates.totals())
        while True:
            gevent.sleep(self.settings.run.status_interval)
            totals = self.totals()
            verified = self.verification.live_counts(totals["acked"]) if self.verification else None
            pace = self.rates.totals()
            rates = self.worker_rates()
            log.info("%s", line.line(totals, self.take_lag(), pace=pace, verified=verified, rates=rates))


class LocalProcess(SendingProcess, JudgingProcess):
    """A process that runs alone: it sends and judges (``locust`` without ``--master``/``--worker``)."""

    role = "local"

    def prepare(self) -> None:
        super().prepare()
        self.ensure_senders()

    def start_run(self, run_id: str) -> None:
        self.begin_senders(run_id)
        self.start_verification(run_id)

    def conclude_run(self) -> None:
        if self.run_id is None or self._concluded == self.run_id:
            return
        self.take_stop_view()
        self.drain_local()
        self.judge(AckLedger(sender.ledger() for sender in self.senders), set())

    def take_lag(self) -> float:
        return self.rates.pacers.reset_max_lag()


class MasterProcess(JudgingProcess):
    """A master: it divides the rate among workers, collects their reports and ledgers, and judges."""

    role = "master"

    def __init__(self, environment: Any, runner: Any, settings: Settings) -> None:
        super().__init__(environment, runner, settings)
        self.workers = WorkerAccounts()

    def sending_processes(self) -> int:
        # Known at init: the workers the master waits for (--processes N sets it to N).
        return int(getattr(self.environment.parsed_options, "expect_workers", None) or 1)

    def listen(self) -> None:
        super().listen()
        self.runner.register_message(MSG_DRAINED, self._on_drained_message)
        self.environment.events.worker_report.add_listener(self.on_worker_report)
        self.environment.events.worker_connect.add_listener(self.on_worker_connect)

    def start_run(self, run_id: str) -> None:
        from locust.runners import STATE_MISSING

        self.start_verification(run_id)
        self.workers.clear(c.id for c in self.runner.clients.values() if c.state != STATE_MISSING)

    def on_worker_connect(self, client_id: str, **_: Any) -> None:
        self.workers.on_connect(client_id)

    def conclude_run(self) -> None:
        if self.run_id is None or self._concluded == self.run_id:
            return
        self.take_stop_view()
        self.workers.drain(self.runner, self.run_id, self.settings.run.drain_timeout)
        self.judge(self.workers.ledger(), self.workers.unanswered())

    def totals(self) -> dict[str, int]:
        return self.workers.totals()

    def take_lag(self) -> float:
        return self.workers.take_lag()

    def known_workers(self) -> set[str]:
        return set(self.workers.known)

    def worker_rates(self) -> dict[str, float] | None:
        return self.workers.rates.totals()

    def on_worker_report(self, client_id: str, data: Mapping[str, Any]) -> None:
        report = data.get("ingestload")
        if report and report.get("run_id") == self.run_id:
            self.workers.on_report(client_id, report)

    def _on_drained_message(self, environment: Any, msg: Any, **_: Any) -> None:
        if msg.data.get("run_id") == self.run_id:
            self.workers.on_drained(msg.node_id, msg.data)


class WorkerProcess(SendingProcess):
    """A worker: it sends its share of the rate, reports, and drains when its master asks."""

    role = "worker"

    def __init__(self, environment: Any, runner: Any, settings: Settings) -> None:
        super().__init__(environment, runner, settings)
        self._drained_sent: str | None = None

    def listen(self) -> None:
        self.runner.register_message(MSG_DRAIN, self._on_drain_message, concurrent=True)
        self.environment.events.report_to_master.add_listener(self.on_report_to_master)

    def refused(self, error: ConfigError) -> bool:
        log.error("ingestload: %s (this worker keeps the previous settings)", error)
        return True

    def next_run_id(self) -> str:
        # The options as the master sent them, with the run id it chose.
        return getattr(self.environment.parsed_options, "run_id", None) or secrets.token_hex(8)

    def start_run(self, run_id: str) -> None:
        self.begin_senders(run_id)

    def conclude_run(self) -> None:
        if self.run_id is None or self._concluded == self.run_id:
            return
        self.drain_local()
        self._send_drained()
        self._concluded = self.run_id

    def on_report_to_master(self, client_id: str, data: dict[str, Any]) -> None:
        if self.senders:
            data["ingestload"] = {
                **self.totals(),
                "target": self.rates.totals().intended,
                "at": time.time(),
                "lag_ms": round(self.rates.pacers.reset_max_lag() * 1000, 3),
                "run_id": self.run_id,
            }

    def _on_drain_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self.drain_local()
        self._send_drained()

    def _send_drained(self) -> None:
        """Final stats, then the counters and ledgers of this run (at most once per run)."""
        if self.run_id is None or self._drained_sent == self.run_id:
            return
        self._drained_sent = self.run_id
        send_stats = getattr(self.runner, "_send_stats", None)
        if send_stats is not None:
            send_stats()  # the last request events must reach the master before our answer
        self.runner.send_message(MSG_DRAINED, drained_message(self.run_id, self.totals(), self.senders))


def process_for(environment: Any, runner: Any, settings: Settings) -> ProcessState:
    """The ingestload state for a Locust process of this runner's role."""
    from locust.runners import MasterRunner, WorkerRunner

    if isinstance(runner, MasterRunner):
        return MasterProcess(environment, runner, settings)
    if isinstance(runner, WorkerRunner):
        return WorkerProcess(environment, runner, settings)
    return LocalProcess(environment, runner, settings)


# -- listener wiring -------------------------------------------------------------------


def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    if runner is None:
        return
    try:
        state = process_for(environment, runner, Settings.from_options(environment.parsed_options))
        state.setup()
    except IngestloadError as e:
        fail(e)
    setattr(environment, _STATE_ATTR, state)
    # Locust arms --run-time next, with gevent.spawn_later, which counts from the event loop's
    # cached clock: when nothing has run the loop since the imports (the topics exist already, so
    # none is created), that clock is the whole start-up behind, and the run ends that much early.
    import gevent

    gevent.get_hub().loop.update_now()
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
