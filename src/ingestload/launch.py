"""``ingestload run``: parse → a frozen plan of what will start → check Kafka → start it.

Every input is checked while the plan is made (:meth:`RunPlan.from_args`), before anything starts:
options, catalogue, profile, locustfile, run time, librdkafka properties, the web port. A Kafka that
was named must answer (:func:`check_kafka`) before the reference API, the gateway or Locust start.
Only then does :func:`start` bring up the broker (when no Kafka was named), the reference ingest API
and fan-out gateway (unless others were named), and Locust with the plan's command.

Example::

    plan = RunPlan.from_args(parser.parse_args(["run", "--rate", "2775"]), locust_args=[])
    check_kafka(plan)
    sys.exit(start(plan))
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from ingestload.errors import ConfigError, IngestloadError
from ingestload.kafka import settings as kafka
from ingestload.kafka.admin import count_run, ensure_topics, high_watermarks
from ingestload.kafka.broker import EMBEDDED_VERIFIER_CONFIG, EmbeddedBroker
from ingestload.kafka.config import scrub
from ingestload.messages.catalogue import Catalogue, data_path
from ingestload.options import Option
from ingestload.rate.plans import api_users_for
from ingestload.rate.profile import RateProfile
from ingestload.settings import OPTIONS, Settings
from ingestload.sink.postgres import EmbeddedPostgres, server_bindir
from ingestload.sink.running import SinkProcess
from ingestload.sink.settings import EMBEDDED as EMBEDDED_SINK

DEFAULT_LOCUSTFILE = "locustfiles/ingest.py"
FANOUT_LOCUSTFILE = "locustfiles/fanout.py"
#: Subscribers ``ingestload run --fanout`` starts unless told.
DEFAULT_SUBSCRIBERS = 10
#: Fewest ingest API users ``ingestload run`` starts (its HTTP concurrency, as ``ab -c``).
MIN_API_USERS = 10
#: Seconds a named Kafka has to answer before the run is refused.
KAFKA_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class RunPlan:
    """What ``ingestload run`` will start, decided and checked before anything starts."""

    settings: Settings
    """Every ingestload option, validated (``settings.kafka.embedded`` when no Kafka was named)."""
    locustfile: Path
    """The locustfile Locust runs."""
    topics: tuple[str, ...]
    """The run's topics (created before Locust starts)."""
    api_url: str | None
    """The ingest API the users post to: the one named (``--api-url``), or ``None``."""
    start_api: bool
    """Start the reference ingest API (no ``--api-url``, no ``--no-api``, not ``--fanout``)."""
    start_gateway: bool
    """Start the reference fan-out gateway (``--fanout`` without ``--ws-url``)."""
    subscribers: int
    """Live views ``--fanout`` starts (0 without it)."""
    start_sink: bool
    """Start a PostgreSQL and the reference sink (``--sink`` without a database)."""
    ui: bool
    """Locust's web UI instead of a headless run."""
    web_host: str
    """The web UI's address."""
    web_port: int
    """The web UI's port."""
    run_time: str | None
    """Locust's ``-t`` (``None``: a profile ends the run, or the web UI)."""
    users: int | None
    """Locust's ``-u``/``-r`` (``None``: a profile sizes its own pool)."""
    processes: int | None
    """Locust's ``--processes``."""
    run_id: str
    """The run id (``{run_id}`` in the web UI: every test is a run of its own)."""
    reports: Path
    """Where the run's verdict, ledger and report go (``reports/<run id>/``)."""
    passed: tuple[tuple[Option[Any], tuple[str, ...]], ...]
    """The ingestload options handed to Locust (as text), with the plan's own (run id, files)."""
    locust_args: tuple[str, ...]
    """Arguments after ``--``, for Locust unchanged."""

    @classmethod
    def from_args(cls, args: argparse.Namespace, locust_args: Sequence[str]) -> RunPlan:
        """The plan for ``ingestload run ARGS``; raises :class:`~ingestload.errors.IngestloadError`
        with one line on any bad input, before anything starts."""
        settings = Settings.from_options(args, embedded=True)
        catalogue = Catalogue.load(settings.messages.catalogue)
        if settings.rate.profile:
            RateProfile.load(settings.rate.profile)  # its mistakes, before anything starts
        if settings.fanout.profile:
            RateProfile.load(settings.fanout.profile)
        locustfile = _locustfile(args.locustfile, FANOUT_LOCUSTFILE if args.fanout else DEFAULT_LOCUSTFILE)
        if args.subscribers is not None and not args.fanout:
            raise IngestloadError("--subscribers: only with --fanout (live views of the fan-out gateway)")
        for flag, value, low in (
            ("--subscribers", args.subscribers, 0),
            ("--users", args.users, 1),
            ("--processes", args.processes, 1),
        ):
            if value is not None and value < low:
                raise IngestloadError(f"{flag}: {value} is not allowed; expected an integer ≥ {low}")
        shaped = bool(settings.rate.profile or settings.fanout.profile)
        run_time = None if shaped or args.ui else _run_time(args.run_time)
        if args.ui:  # before the broker, the API or Locust start: nothing to clean up
            from ingestload.webui import check_web_port

            check_web_port(args.web_host, args.web_port)
        check_kafka_config(settings)
        start_sink = settings.sink.dsn == EMBEDDED_SINK
        if start_sink:
            server_bindir()  # no PostgreSQL to start: one line now, not after the broker started

        api_url = args.api_url
        start_api = not (api_url or args.no_api or args.fanout)  # --fanout: device → Kafka → gateway
        subscribers = (
            (DEFAULT_SUBSCRIBERS if args.subscribers is None else args.subscribers) if args.fanout else 0
        )
        # Through an API, users are its HTTP concurrency, sized as if the whole rate went that way
        # (idle users cost little; too few cap the rate); one Kafka user per process is plenty.
        # (the shipped locustfiles' producer class is one per process: one_per_process)
        kafka_users = max(1, args.processes or 1)
        # A batch path with {msgType} gets one request per type present in a take.
        shares = catalogue.type_shares() if settings.http.batch_per_type else None
        rate, batch = settings.rate.target, settings.http.batch_size
        api_users = api_users_for(rate, batch, MIN_API_USERS, shares) if (api_url or start_api) else 0
        users = None if shaped else (args.users or kafka_users + api_users + subscribers)

        # From the web UI every test is a run of its own, with its own id and files.
        run_id = settings.run.run_id or ("{run_id}" if args.ui else secrets.token_hex(8))
        reports = Path(args.reports) / run_id
        own: dict[str, Any] = {"run_id": None if args.ui else run_id}
        if settings.verify.enabled:
            own["verdict_file"] = args.verdict_file or str(reports / "verdict.json")
            own["ledger_file"] = args.ledger_file or str(reports / "ledger.json")
            own["report_file"] = args.report_file or str(reports / "report.html")
        if settings.kafka.embedded:  # the user's --verifier-config still wins
            own["verifier_config"] = [*EMBEDDED_VERIFIER_CONFIG, *(args.verifier_config or [])]
        given = {**{opt.dest: getattr(args, opt.dest) for opt in OPTIONS}, **own}
        passed = tuple(
            (opt, tuple(str(v) for v in (value if opt.repeatable else [value])))
            for opt in OPTIONS
            if opt is not kafka.BOOTSTRAP and (value := given[opt.dest]) is not None
        )
        return cls(
            settings=settings,
            locustfile=locustfile,
            topics=tuple(settings.topics(catalogue)),
            api_url=api_url,
            start_api=start_api,
            start_gateway=bool(args.fanout and not args.ws_url),
            subscribers=subscribers,
            start_sink=start_sink,
            ui=args.ui,
            web_host=args.web_host,
            web_port=args.web_port,
            run_time=run_time,
            users=users,
            processes=args.processes,
            run_id=run_id,
            reports=reports,
            passed=passed,
            locust_args=tuple(locust_args),
        )

    def option(self, dest: str) -> str | None:
        """The last value of the option ``dest`` handed to Locust (``None``: not given)."""
        for opt, items in self.passed:
            if opt.dest == dest:
                return items[-1]
        return None

    def locust_command(
        self, bootstrap: str, api_url: str | None, gateway_url: str | None
    ) -> tuple[list[str], dict[str, str]]:
        """Locust's argv and the environment variables it gets on top of ours, for Kafka at
        ``bootstrap``, users posting to ``api_url`` and subscribers of the gateway started at
        ``gateway_url``: the options that may hold secrets go in the environment, never in the argv
        (which every user of the machine can read)."""
        command = [sys.executable, "-m", "locust", "-f", str(self.locustfile)]
        if api_url:
            command += ["--host", api_url]
        if self.users is not None:
            command += ["-u", str(self.users), "-r", str(self.users)]
        if self.ui:
            command += ["--web-host", self.web_host, "--web-port", str(self.web_port)]
        else:
            command += ["--headless", "--only-summary"]
            command += ["-t", self.run_time] if self.run_time else []
        if self.processes:
            command += ["--processes", str(self.processes)]
        command += ["--kafka-bootstrap", bootstrap]
        if gateway_url:
            command += ["--ws-url", gateway_url]
        env: dict[str, str] = {}
        for opt, items in self.passed:
            if opt.secret:
                env[opt.env] = _env_value(opt, items)
            else:
                for item in items:
                    command += [opt.flag, item]
        return command + list(self.locust_args), env


def _locustfile(path: str | None, default: str) -> Path:
    if path:
        candidate = Path(path)
        if not candidate.is_file():
            raise IngestloadError(f"--locustfile: no such file {path!r}")
        return candidate
    local = Path(default)
    return local if local.is_file() else data_path(default)


def _run_time(text: str) -> str:
    """``--run-time`` as Locust reads it (``90``, ``5m``, ``1h30m``); a mistake is one line."""
    from locust.util.timespan import parse_timespan

    try:
        seconds = parse_timespan(text)
    except ValueError:
        raise IngestloadError(
            f"--run-time: {text!r} is not a duration; expected e.g. 90s, 5m or 1h30m"
        ) from None
    if seconds <= 0:
        raise IngestloadError(f"--run-time: {text!r} is not allowed; expected a duration > 0, e.g. 1m")
    return text


def check_kafka_config(settings: Settings) -> None:
    """Let librdkafka validate the producer and the verifier's consumer properties now: an unknown or
    invalid property is one line before anything starts. (The clients are made and dropped at once;
    their logs go nowhere: they are served only by a poll, and nothing polls.)"""
    import logging

    from confluent_kafka import Consumer, KafkaException, Producer

    checked = settings.kafka.with_bootstrap("localhost:9092") if settings.kafka.embedded else settings.kafka
    # Not a word from them: a client made for the check may try its broker before it is dropped,
    # and that attempt's log line must not follow a bad input's one-line error.
    quiet = {"logger": logging.getLogger("ingestload.check"), "log_level": "0"}
    for flags, kind, make, config in (
        ("--kafka-config", "producer", Producer, checked.producer_config()),
        (
            "--kafka-config or --verifier-config",
            "consumer",
            Consumer,
            {"group.id": "ingestload-check", **checked.consumer_config()},
        ),
    ):
        try:
            client = make({**config, **quiet})
        except (KafkaException, ValueError, TypeError) as e:
            raise ConfigError(f"{flags}: rejected by the Kafka {kind}: {scrub(str(e), config)}") from None
        if kind == "consumer":
            client.close()
        del client


def check_kafka(plan: RunPlan, timeout: float = KAFKA_PROBE_TIMEOUT) -> None:
    """A named Kafka must answer a metadata request within ``timeout`` before anything starts."""
    if not plan.settings.kafka.embedded:
        probe_kafka(plan.settings.kafka.admin_config(), plan.settings.kafka.address, timeout)


def probe_kafka(config: Mapping[str, Any], address: str, timeout: float = KAFKA_PROBE_TIMEOUT) -> None:
    """Raise a one-line :class:`~ingestload.errors.IngestloadError` unless the Kafka at ``address``
    answers a metadata request within ``timeout``."""
    import logging

    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    def text(error: object) -> str:
        return error.str() if isinstance(error, KafkaError) else str(error)

    errors: list[str] = []
    probe: dict[str, Any] = {
        **config,
        "error_cb": lambda e: errors.append(text(e)),
        "logger": logging.getLogger("ingestload.probe"),  # served by poll only: its logs go nowhere
    }
    try:
        AdminClient(probe).list_topics(timeout=timeout)
    except KafkaException as e:
        seen = errors[-1] if errors else text(e.args[0] if e.args else e)
        raise IngestloadError(
            f"--kafka-bootstrap {address}: no Kafka broker answered within {timeout:g}s "
            f"({scrub(seen, dict(config))}); check the address and the security settings (--kafka-config)"
        ) from None


def _env_value(opt: Option[Any], items: Sequence[str]) -> str:
    """``opt``'s environment variable for a child: what ours held, then ``items`` (later wins, one
    per line, as :func:`~ingestload.options.read` reads it)."""
    return "\n".join([*(opt.from_environ(os.environ) or "").splitlines(), *items]).strip()


# -- starting it ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _kafka_for(plan: RunPlan) -> Iterator[str]:
    """The named bootstrap, or an embedded broker started (and stopped) around the block."""
    if not plan.settings.kafka.embedded:
        yield plan.settings.kafka.address
        return
    with EmbeddedBroker() as broker:
        print(f"ingestload: embedded Kafka broker at {broker.bootstrap}", flush=True)
        yield broker.bootstrap


def _server_args(plan: RunPlan) -> tuple[list[str], dict[str, str]]:
    """What a reference server (``ingestload api``, ``ingestload fanout``) started by ``run`` shares
    with the run: topics, catalogue and Kafka settings — flags, and secrets in its environment."""
    extra: list[str] = []
    for dest in ("topic_prefix", "catalogue", "kafka_config_file", "partitions"):
        value = plan.option(dest)
        if value is not None:
            extra += [f"--{dest.replace('_', '-')}", value]
    env = {}
    config = [items for opt, items in plan.passed if opt is kafka.CONFIG]
    if config:  # the same cluster, with the same security settings — not in argv
        env[kafka.CONFIG.env] = _env_value(kafka.CONFIG, config[0])
    return extra, env


@contextlib.contextmanager
def _api_for(plan: RunPlan, bootstrap: str) -> Iterator[str | None]:
    """The ingest API's URL: the one named, none, or the reference API started here."""
    if not plan.start_api:
        yield plan.api_url
        return
    from ingestload.api.testing import run_api

    extra, env = _server_args(plan)
    with run_api(bootstrap, *extra, env=env) as api:
        print(f"ingestload: reference ingest API at {api.url}", flush=True)
        yield api.url


@contextlib.contextmanager
def _gateway_for(plan: RunPlan, bootstrap: str) -> Iterator[str | None]:
    """The URL of the reference fan-out gateway started here (and stopped after, with SIGTERM: every
    subscription still open gets a clean end), or ``None`` when it does not start."""
    if not plan.start_gateway:
        yield None
        return
    from ingestload.fanout.testing import run_gateway, ws_url

    extra, env = _server_args(plan)
    with run_gateway(bootstrap, *extra, env=env) as gateway:
        print(f"ingestload: reference fan-out gateway at {ws_url(gateway)}", flush=True)
        yield ws_url(gateway)


def check_sink(plan: RunPlan) -> None:
    """A database that was named must hold the table (and column) to judge, before load starts."""
    if plan.settings.sink.enabled and not plan.start_sink:
        plan.settings.sink.target().check()


@contextlib.contextmanager
def _sink_for(plan: RunPlan, bootstrap: str) -> Iterator[str | None]:
    """The database the storage hop judges: the one named, none, or a PostgreSQL started here with
    the reference sink writing into it (both stopped after the run)."""
    if not plan.start_sink:
        yield plan.settings.sink.dsn
        return
    with EmbeddedPostgres() as db:
        print(
            f"ingestload: embedded PostgreSQL at 127.0.0.1:{db.port} (database {db.dsn.rsplit('/', 1)[-1]})",
            flush=True,
        )
        args = ["--sink-topics", ",".join(plan.topics)]
        for dest in (
            "catalogue",
            "topic_prefix",
            "envelope_field",
            "sink_table",
            "sink_dead_letters",
            "sink_group",
            "status_interval",
        ):
            value = plan.option(dest)
            if value is not None:
                args += [f"--{dest.replace('_', '-')}", value]
        _, env = _server_args(plan)
        sink = SinkProcess(bootstrap, db.dsn, args, env)
        sink.start()
        print(
            f"ingestload: reference sink (pid {sink.pid}) writing into table {plan.settings.sink.table}",
            flush=True,
        )
        # Its status lines (rows/s, lag) and dead letters on the run's console, as they come.
        following = sink.follow(lambda line: print(f"[sink] {line}", flush=True))
        try:
            yield db.dsn
        finally:
            sink.stop()
            following.set()
            time.sleep(0.6)  # the follower's last turn: the sink's closing line
            sink.remove_log()


def start(plan: RunPlan) -> int:
    """Start what the plan says, run Locust to its end, print what landed; returns Locust's exit code
    (the verdict's)."""
    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(_kafka_for(plan))
        settings = replace(plan.settings, kafka=plan.settings.kafka.with_bootstrap(bootstrap))
        config = settings.kafka.admin_config()
        if settings.run.create_topics:
            ensure_topics(config, list(plan.topics), settings.kafka.partitions)
        api_url = stack.enter_context(_api_for(plan, bootstrap))
        gateway_url = stack.enter_context(_gateway_for(plan, bootstrap))
        sink_dsn = stack.enter_context(_sink_for(plan, bootstrap))
        start_offsets = high_watermarks(config, list(plan.topics))
        session_started = time.time()
        command, env = plan.locust_command(bootstrap, api_url, gateway_url)
        if sink_dsn is not None:
            from ingestload.sink.settings import SINK

            env[SINK.env] = sink_dsn  # the database's address: in the environment, never in argv
        if plan.ui:
            print(f"ingestload: open http://{plan.web_host}:{plan.web_port} — Ctrl-C to stop", flush=True)
        code = run_child(command, env)

        verdict_file = plan.option("verdict_file") if settings.verify.enabled else None
        if plan.ui:
            _ui_session_summary(verdict_file, session_started, bootstrap)
            return code
        _print_landed(plan, settings, bootstrap, verdict_file, start_offsets)
    return code


def _print_landed(
    plan: RunPlan, settings: Settings, bootstrap: str, verdict_file: str | None, start_offsets: Any
) -> None:
    """Per topic, how many of the run's messages are in Kafka; the fan-out headline; where the files
    are and — when the Kafka outlives the run — how to judge it again later."""
    document = _verdict_document(verdict_file)
    counts = None if document is None else document.get("seen_by_topic")
    width = max([len(t) for t in plan.topics] + [5])
    if counts is not None:
        print(f"Messages of run {plan.run_id} that landed in Kafka ({bootstrap}):")
        found = {str(k): int(v) for k, v in counts.items()}
    else:
        print(f"\ningestload: reading run {plan.run_id} back from Kafka…", flush=True)
        found = count_run(settings.kafka.admin_config(), plan.topics, start_offsets, plan.run_id)
        print(
            f"Messages of run {plan.run_id} in Kafka ({bootstrap}) found by their envelope header "
            "(no verdict to read: messages of the HTTP path, whose envelope is in the JSON, are not counted):"
        )
    for topic in plan.topics:
        print(f"  {topic:<{width}}  {found.get(topic, 0):>12,}")
    print(f"  {'total':<{width}}  {sum(found.values()):>12,}")
    if document is not None:
        fanout = (document.get("fanout") or {}).get("report")
        if fanout:
            print(str(fanout).splitlines()[0])
        load = (document.get("load") or {}).get("report")
        if load:
            print(str(load).splitlines()[0])
        stored = document.get("sink") or {}
        if stored:
            n = {k: int(stored.get(k) or 0) for k in ("stored", "acked", "lost", "duplicated", "corrupted")}
            print(
                f"Messages of run {plan.run_id} in table {stored.get('table')}: stored {n['stored']:,} "
                f"of {n['acked']:,} acknowledged; lost {n['lost']:,}, duplicated {n['duplicated']:,}, "
                f"corrupted {n['corrupted']:,}, dead-lettered {int(stored.get('dead_lettered') or 0):,} "
                f"— {stored.get('status')}"
            )
    ledger = plan.option("ledger_file")
    if settings.verify.enabled and ledger and Path(ledger).exists():
        print(f"Verdict and ledger: {Path(ledger).parent}/")
        if plan.settings.kafka.embedded:
            print(
                "(The embedded broker ended with the run: judging it again needs a Kafka that outlives it.)"
            )
        else:
            print(f"Judge the run again later: ingestload verify --ledger {ledger}")


def _verdict_document(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).exists():
        return None
    document: dict[str, Any] = orjson.loads(Path(path).read_bytes())
    return document


def _ui_session_summary(verdict_file: str | None, since: float, bootstrap: str) -> None:
    """After a web UI session: each test's verdict and per-topic counts, from its verdict file."""
    if verdict_file is None:
        print("ingestload: verification was off: no verdicts to show")
        return
    found = [Path(p) for p in glob.glob(glob.escape(verdict_file).replace("{run_id}", "*"))]
    runs = sorted((p for p in found if p.stat().st_mtime >= since), key=lambda p: p.stat().st_mtime)
    if not runs:
        print("ingestload: no test was verified in this web UI session")
    for path in runs:
        verdict = orjson.loads(path.read_bytes())
        overall = verdict.get("overall") or verdict
        counts = {str(k): int(v) for k, v in (verdict.get("seen_by_topic") or {}).items()}
        print(
            f"\ningestload run {verdict.get('run_id')}: VERDICT {overall.get('status')} "
            f"(exit code {overall.get('exit_code')}); its messages in Kafka ({bootstrap}):"
        )
        width = max([len(t) for t in counts] + [5])
        for topic, n in sorted(counts.items()):
            print(f"  {topic:<{width}}  {n:>12,}")
        print(f"  {'total':<{width}}  {sum(counts.values()):>12,}")
        print(f"  verdict, ledger and report: {path.parent}/")


def run_child(command: list[str], env: Mapping[str, str]) -> int:
    """Run Locust in a process group of its own; a Ctrl-C (or SIGTERM) here becomes one SIGTERM for
    it: it stops the load, drains, judges what was sent and exits with the verdict's code — quietly
    (Locust's SIGTERM path), and without the Ctrl-C reaching its verifier and workers at once."""
    child = subprocess.Popen(command, env={**os.environ, **env}, start_new_session=True)
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:  # a second Ctrl-C while it drains: it is already stopping
            print("ingestload: stopping — draining and judging what was sent", file=sys.stderr, flush=True)
            return
        stopping = True
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
