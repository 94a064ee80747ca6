"""The ``ingestload`` command.

    ingestload broker [--port 9092]            run the embedded Kafka broker until Ctrl-C
    ingestload run [options] [-- LOCUST_ARGS]  broker + ingest API + headless verified run, per topic
    ingestload run --rate-profile PATH         the same, the rate following a profile to its end
    ingestload run --ui                        the same load from Locust's web UI
    ingestload run --fanout                    the same + the fan-out gateway + live-view subscribers
    ingestload verify --ledger FILE            judge a finished run again, from Kafka, later
    ingestload catalogue [PATH]                validate a catalogue and show its mix
    ingestload api [options]                   the reference ingest API (HTTP → Kafka); --help for more
    ingestload fanout [options]                the reference fan-out gateway (Kafka → WebSocket); --help

``ingestload run`` starts the embedded broker unless ``--kafka-bootstrap`` (or
``INGESTLOAD_KAFKA_BOOTSTRAP``) names a Kafka to use, and the reference ingest API unless
``--api-url`` names one (or ``--no-api``), creates the topics, runs Locust with the given
locustfile — by default ``locustfiles/ingest.py``: half the rate straight to Kafka, half
through the API — (verified end to end: the verdict and ledger go to
``reports/<run id>/``), prints how many of the run's messages are on each topic and exits
with Locust's exit code — the verdict's: 0 PASS, 3 FAIL, 4 INCONCLUSIVE.

``ingestload run --fanout`` covers the last hop too: it starts the reference fan-out gateway
(``ingestload fanout``, unless ``--ws-url`` names a gateway) and runs ``locustfiles/fanout.py``:
one producer straight to Kafka and ``--subscribers`` live views, device → Kafka → gateway →
subscriber, and prints the fan-out verdict beside the Kafka one; the exit code covers both.
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
from pathlib import Path

import orjson

from ingestload.errors import IngestloadError
from ingestload.kafka.admin import count_run, ensure_topics, high_watermarks
from ingestload.kafka.broker import EMBEDDED_VERIFIER_CONFIG, EmbeddedBroker
from ingestload.kafka.config import is_secret_key
from ingestload.messages.catalogue import Catalogue, data_path
from ingestload.messages.ledger import AckLedger
from ingestload.rate.plans import api_users_for
from ingestload.rate.profile import RateProfile
from ingestload.settings import OPTIONS, Option, Settings, add_plain_argument
from ingestload.verify.readback import Readback
from ingestload.verify.verdict import Thresholds

DEFAULT_LOCUSTFILE = "locustfiles/ingest.py"
FANOUT_LOCUSTFILE = "locustfiles/fanout.py"
#: Subscribers ``ingestload run --fanout`` starts unless told.
DEFAULT_SUBSCRIBERS = 10
#: Fewest ingest API users ``ingestload run`` starts (its HTTP concurrency, as ``ab -c``).
MIN_API_USERS = 10
_VERIFY_OPTIONS = {
    "kafka_bootstrap",
    "kafka_config",
    "kafka_config_file",
    "verifier_config",
    "max_lost",
    "max_duplicated",
    "max_corrupted",
    "max_misrouted",
    "drain_timeout",
    "verdict_file",
}


def _error(message: str) -> int:
    sys.stderr.write(f"ingestload: error: {message}\n")
    return 2


# -- broker --------------------------------------------------------------------------


def cmd_broker(args: argparse.Namespace) -> int:
    broker = EmbeddedBroker(port=args.port)
    broker.start()
    print(f"Kafka broker (Tansu, memory storage) ready at {broker.bootstrap}; Ctrl-C to stop", flush=True)
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop and broker.running:
            time.sleep(0.2)
    finally:
        crashed = not broker.running
        tail = broker.log_tail() if crashed else ""
        broker.stop()
    if crashed and not stop:
        return _error(f"the broker exited unexpectedly: {tail}")
    print("broker stopped", flush=True)
    return 0


# -- run -----------------------------------------------------------------------------


@contextlib.contextmanager
def _kafka_for(bootstrap: str | None) -> Iterator[str]:
    """The given bootstrap, or an embedded broker started (and stopped) around the block."""
    if bootstrap:
        yield bootstrap
        return
    with EmbeddedBroker() as broker:
        print(f"ingestload: embedded Kafka broker at {broker.bootstrap}", flush=True)
        yield broker.bootstrap


@contextlib.contextmanager
def _api_for(args: argparse.Namespace, bootstrap: str) -> Iterator[str | None]:
    """The ingest API's URL: ``--api-url``, none with ``--no-api``, or the reference API started here."""
    if args.api_url or args.no_api:
        yield args.api_url
        return
    from ingestload.api.testing import run_api

    extra, env = _server_args(args)
    with run_api(bootstrap, *extra, env=env) as api:
        print(f"ingestload: reference ingest API at {api.url}", flush=True)
        yield api.url


def _server_args(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """What a reference server (``ingestload api``, ``ingestload fanout``) started by ``run`` shares
    with the run: topics, catalogue and Kafka settings — flags, and secrets in its environment."""
    extra = []
    for flag, value in (
        ("--topic-prefix", args.topic_prefix),
        ("--catalogue", args.catalogue),
        ("--kafka-config-file", args.kafka_config_file),
        ("--partitions", args.partitions),
    ):
        if value is not None:
            extra += [flag, str(value)]
    env = {}
    if args.kafka_config:  # the same cluster, with the same security settings — not in argv
        kafka_config = next(opt for opt in OPTIONS if opt.dest == "kafka_config")
        env[kafka_config.env] = _env_value(kafka_config, args.kafka_config)
    return extra, env


@contextlib.contextmanager
def _gateway_for(args: argparse.Namespace, bootstrap: str) -> Iterator[None]:
    """With ``--fanout`` and no gateway named (``--ws-url``): the reference gateway, started here and
    stopped after (SIGTERM: every subscription still open gets a clean end); ``args.ws_url`` is set."""
    if not args.fanout or args.ws_url:
        yield
        return
    from ingestload.fanout.testing import run_gateway, ws_url

    extra, env = _server_args(args)
    with run_gateway(bootstrap, *extra, env=env) as gateway:
        args.ws_url = ws_url(gateway)
        print(f"ingestload: reference fan-out gateway at {args.ws_url}", flush=True)
        yield


def _locustfile(path: str | None, default: str = DEFAULT_LOCUSTFILE) -> Path:
    if path:
        candidate = Path(path)
        if not candidate.is_file():
            raise IngestloadError(f"--locustfile: no such file {path!r}")
        return candidate
    local = Path(default)
    return local if local.is_file() else data_path(default)


def _env_value(opt: Option, items: Sequence[str]) -> str:
    """``opt``'s environment variable for a child: what ours held, then ``items`` (later wins, one
    per line, as :class:`~ingestload.settings.Settings` reads it)."""
    return "\n".join([*os.environ.get(opt.env, "").splitlines(), *items]).strip()


def _option_args(args: argparse.Namespace, bootstrap: str) -> tuple[list[str], dict[str, str]]:
    """The ingestload options given to ``run``, for the Locust process: flags, and environment
    variables for the options that may hold secrets (never in a process's argv, which every user
    of the machine can read)."""
    argv = ["--kafka-bootstrap", bootstrap]
    env: dict[str, str] = {}
    for opt in OPTIONS:
        if opt.dest == "kafka_bootstrap":
            continue
        value = getattr(args, opt.dest)
        if value is None:
            continue
        items = [str(item) for item in (value if opt.multiple else [value])]
        if opt.secret:
            env[opt.env] = _env_value(opt, items)
            continue
        for item in items:
            argv += [opt.flag, item]
    return argv, env


def cmd_run(args: argparse.Namespace, locust_args: Sequence[str]) -> int:
    bootstrap_given = args.kafka_bootstrap or os.environ.get("INGESTLOAD_KAFKA_BOOTSTRAP")
    # Validate everything before anything starts.
    settings = Settings.from_options(
        argparse.Namespace(**{**vars(args), "kafka_bootstrap": bootstrap_given or "127.0.0.1:1"})
    )
    catalogue = Catalogue.load(settings.catalogue)
    if settings.rate_profile:
        RateProfile.load(settings.rate_profile)  # its mistakes, before anything starts
    locustfile = _locustfile(args.locustfile, FANOUT_LOCUSTFILE if args.fanout else DEFAULT_LOCUSTFILE)
    topics = settings.topics(catalogue)
    if args.fanout and not args.api_url:
        args.no_api = True  # device → Kafka → gateway → subscriber
    if args.subscribers is not None and not args.fanout:
        raise IngestloadError("--subscribers: only with --fanout (live views of the fan-out gateway)")
    if args.subscribers is not None and args.subscribers < 0:
        raise IngestloadError(f"--subscribers: {args.subscribers} is not allowed; expected an integer ≥ 0")
    if args.ui:  # before the broker, the API or Locust start: nothing to clean up
        from ingestload.webui import check_web_port

        check_web_port(args.web_host, args.web_port)

    if not bootstrap_given:  # the user's --verifier-config still wins
        args.verifier_config = [*EMBEDDED_VERIFIER_CONFIG, *(args.verifier_config or [])]

    with contextlib.ExitStack() as stack:
        bootstrap = stack.enter_context(_kafka_for(bootstrap_given))
        api_url = stack.enter_context(_api_for(args, bootstrap))
        settings = Settings.from_options(argparse.Namespace(**{**vars(args), "kafka_bootstrap": bootstrap}))
        config = settings.admin_config()
        if settings.create_topics:
            ensure_topics(config, topics, settings.partitions)
        stack.enter_context(_gateway_for(args, bootstrap))
        start = high_watermarks(config, topics)
        # From the web UI every test is a run of its own, with its own id and files.
        run_id = settings.run_id or ("{run_id}" if args.ui else secrets.token_hex(8))
        args.run_id = None if args.ui else run_id
        reports = Path(args.reports) / run_id
        if settings.verify:
            args.verdict_file = args.verdict_file or str(reports / "verdict.json")
            args.ledger_file = args.ledger_file or str(reports / "ledger.json")
        session_started = time.time()

        # Through an API, users are its HTTP concurrency, sized as if the whole rate went that
        # way (idle users cost little; too few cap the rate); one Kafka user is plenty.
        # (--fanout's locustfile: one producer, fixed_count = 1; every other user is a subscriber)
        kafka_users = 1 if args.fanout else max(1, args.processes or 1)
        # A batch path with {msgType} gets one request per type present in a take.
        shares = catalogue.type_shares() if settings.api_batch_per_type else None
        api_users = (
            api_users_for(settings.rate, settings.api_batch_size, MIN_API_USERS, shares) if api_url else 0
        )
        subscribers = (
            (DEFAULT_SUBSCRIBERS if args.subscribers is None else args.subscribers) if args.fanout else 0
        )
        users = args.users or kafka_users + api_users + subscribers
        command = [sys.executable, "-m", "locust", "-f", str(locustfile)]
        if api_url:
            command += ["--host", api_url]
        shaped = settings.rate_profile or settings.ws_subscriber_profile
        if not shaped:  # a profile sizes its own user pool and ends the run itself
            command += ["-u", str(users), "-r", str(users)]
        if args.ui:
            command += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
        else:
            command += ["--headless", "--only-summary"]
            command += [] if shaped else ["-t", args.run_time]
        if args.processes:
            command += ["--processes", str(args.processes)]
        option_argv, option_env = _option_args(args, bootstrap)
        command += option_argv + list(locust_args)
        if args.ui:
            print(f"ingestload: open http://{args.web_host}:{args.web_port} — Ctrl-C to stop", flush=True)
        code = _run_child(command, option_env)

        if args.ui:
            _ui_session_summary(args.verdict_file if settings.verify else None, session_started, bootstrap)
            return code
        counts = _counts_from_verdict(args.verdict_file) if settings.verify else None
        if counts is None:
            print(f"\ningestload: reading run {run_id} back from Kafka…", flush=True)
            counts = count_run(config, topics, start, run_id)
        width = max([len(t) for t in topics] + [5])
        print(f"Messages of run {run_id} that landed in Kafka ({bootstrap}):")
        for topic in topics:
            print(f"  {topic:<{width}}  {counts.get(topic, 0):>12,}")
        print(f"  {'total':<{width}}  {sum(counts.values()):>12,}")
        # Any locustfile with live views (--fanout's, or one of yours as in the kube component)
        fanout = _fanout_from_verdict(args.verdict_file) if settings.verify else None
        if fanout:
            print(fanout)
        if settings.verify and args.ledger_file and Path(args.ledger_file).exists():
            print(f"Verdict and ledger: {reports}/")
            print(f"Judge the run again later: ingestload verify --ledger {args.ledger_file}")
    return code


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
        counts = {str(k): int(v) for k, v in (verdict.get("seen_by_topic") or {}).items()}
        print(
            f"\ningestload run {verdict.get('run_id')}: VERDICT {verdict.get('status')} "
            f"(exit code {verdict.get('exit_code')}); its messages in Kafka ({bootstrap}):"
        )
        width = max([len(t) for t in counts] + [5])
        for topic, n in sorted(counts.items()):
            print(f"  {topic:<{width}}  {n:>12,}")
        print(f"  {'total':<{width}}  {sum(counts.values()):>12,}")
        print(f"  verdict, ledger and report: {path.parent}/")


def _counts_from_verdict(path: str | None) -> dict[str, int] | None:
    """Per-topic counts of the run from the verdict file, when the verifier wrote one."""
    if not path or not Path(path).exists():
        return None
    verdict = orjson.loads(Path(path).read_bytes())
    counts = verdict.get("seen_by_topic")
    return {str(k): int(v) for k, v in counts.items()} if counts is not None else None


def _fanout_from_verdict(path: str | None) -> str | None:
    """The fan-out verdict's headline from the verdict file, when it has one."""
    if not path or not Path(path).exists():
        return None
    report = (orjson.loads(Path(path).read_bytes()).get("fanout") or {}).get("report")
    return str(report).splitlines()[0] if report else None


def _run_child(command: list[str], env: Mapping[str, str]) -> int:
    """Run Locust; Ctrl-C reaches it through the terminal, SIGTERM is forwarded."""
    child = subprocess.Popen(command, env={**os.environ, **env})

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue  # Locust got the same Ctrl-C and is shutting down; wait for its verdict
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- verify ------------------------------------------------------------------------------


def _verify_thresholds(
    args: argparse.Namespace, settings: Settings, recorded: Mapping[str, object]
) -> Thresholds:
    """The run's thresholds as its ledger file recorded them (one command re-judges a run as it was
    judged), each overridden by a ``--max-…`` given on this command line."""
    values = {name: int(str(recorded[name])) for name in Thresholds.__dataclass_fields__ if name in recorded}
    for name in ("max_lost", "max_duplicated", "max_corrupted", "max_misrouted"):
        if getattr(args, name, None) is not None or name not in values:
            values[name] = int(getattr(settings, name))
    return Thresholds(**values)


def cmd_verify(args: argparse.Namespace) -> int:
    """Judge a finished run from its ledger file and what is in Kafka now."""
    path = Path(args.ledger)
    try:
        document = orjson.loads(path.read_bytes())
        run_id, topics = document["run_id"], document["topics"]
        start = {(t, int(p)): int(o) for t, p, o in document["start"]}
        ledger = AckLedger.from_json(document["producers"])
    except OSError as e:
        raise IngestloadError(f"--ledger: cannot read {str(path)!r}: {e.strerror}") from None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise IngestloadError(f"--ledger: {str(path)!r} is not an ingestload ledger file ({e})") from None
    values = {**vars(args), "kafka_bootstrap": args.kafka_bootstrap or document.get("kafka_bootstrap")}
    values.setdefault("envelope_field", document.get("envelope_field"))
    settings = Settings.from_options(argparse.Namespace(**values))
    print(
        f"ingestload: verifying run {run_id} ({len(ledger)} producers, {len(topics)} topics) "
        f"against {settings.kafka_bootstrap}…",
        flush=True,
    )
    run = Readback(
        settings.consumer_config(),
        topics,
        run_id,
        start=start,
        envelope_field=document.get("envelope_field") or settings.envelope_field,
        thresholds=_verify_thresholds(args, settings, document.get("thresholds") or {}),
        record_latency=False,
    )
    # Long after the run, nothing is late any more: read to the end as it is now.
    verdict = run.finish(
        ledger,
        drain_timeout=settings.drain_timeout,
        missing_workers=document.get("missing_workers", []),
        late_grace=0.0,
    )
    print(verdict.report(), flush=True)
    if settings.verdict_file:
        target = Path(settings.verdict_file)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(orjson.dumps(verdict.to_dict(), option=orjson.OPT_INDENT_2))
    return verdict.exit_code


# -- catalogue ---------------------------------------------------------------------------


def cmd_catalogue(args: argparse.Namespace) -> int:
    catalogue = Catalogue.load(args.path)
    counts = catalogue.counts(args.total)
    print(
        f"{catalogue.source}: {len(catalogue.cells)} controller/message combinations, topics: "
        f"{', '.join(catalogue.topics())}"
    )
    print(f"{'controller':<10} {'message type':<20} {'percent':>8} {'per ' + format(args.total, ','):>12}")
    for cell in catalogue.cells:
        n = counts[(cell.controller.name, cell.msg_type)]
        print(f"{cell.controller.name:<10} {cell.msg_type:<20} {cell.percent:>8g} {n:>12,}")
    return 0


# -- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ingestload", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True)

    broker = sub.add_parser(
        "broker", help="run the embedded Kafka broker (Tansu, memory storage) until Ctrl-C"
    )
    broker.add_argument(
        "--port", type=int, default=9092, help="port on 127.0.0.1 (0 = any free port; default 9092)"
    )

    run = sub.add_parser(
        "run",
        help="embedded broker + a headless Locust run (or --ui) + what landed per topic",
        description="Arguments after -- go to Locust unchanged.",
    )
    run.add_argument("--locustfile", "-f", default=None, help=f"locustfile (default {DEFAULT_LOCUSTFILE})")
    run.add_argument(
        "--run-time",
        "-t",
        default="1m",
        help="how long to run headless (Locust syntax; default 1m; a --rate-profile ends the run itself)",
    )
    run.add_argument("--users", "-u", type=int, default=None, help="Locust users (default: one per process)")
    run.add_argument(
        "--processes", type=int, default=None, help="Locust worker processes (default: one process)"
    )
    run.add_argument("--ui", action="store_true", help="start Locust's web UI instead of a headless run")
    run.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    run.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    run.add_argument(
        "--reports", default="reports", help="directory for verdict and ledger files (default reports)"
    )
    run.add_argument(
        "--api-url", default=None, help="use this ingest API instead of starting the reference one"
    )
    run.add_argument(
        "--no-api", action="store_true", help="start no ingest API (for a Kafka-only locustfile)"
    )
    run.add_argument(
        "--fanout",
        action="store_true",
        help=f"the last hop too: the reference fan-out gateway (unless --ws-url names one) and "
        f"{FANOUT_LOCUSTFILE} (one producer + --subscribers live views); both verdicts",
    )
    run.add_argument(
        "--subscribers",
        type=int,
        default=None,
        help=f"with --fanout: subscribers (WebSocket live views) to start (default {DEFAULT_SUBSCRIBERS})",
    )
    for opt in OPTIONS:
        add_plain_argument(run, opt)

    verify = sub.add_parser(
        "verify",
        help="judge a finished run again from its ledger file and what is in Kafka now",
        description="Exit code: 0 PASS, 3 FAIL, 4 INCONCLUSIVE, 2 bad input.",
    )
    verify.add_argument("--ledger", required=True, help="the ledger file a run wrote (--ledger-file)")
    for opt in OPTIONS:
        if opt.dest in _VERIFY_OPTIONS:
            ledger_default = " Default: the one in the ledger file." if opt.dest == "kafka_bootstrap" else ""
            add_plain_argument(verify, opt, opt.help + ledger_default)

    sub.add_parser(
        "api", help="the reference ingest API, HTTP → Kafka (ingestload api --help)", add_help=False
    )
    sub.add_parser(
        "fanout",
        help="the reference fan-out gateway, Kafka → WebSocket (ingestload fanout --help)",
        add_help=False,
    )

    catalogue = sub.add_parser("catalogue", help="validate a catalogue file and print its mix")
    catalogue.add_argument("path", nargs="?", default=None, help="catalogue YAML (default: the built-in one)")
    catalogue.add_argument("--total", type=int, default=10_000, help="show counts for this many messages")
    return parser


def shown_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with the values of options that may hold secrets replaced by ``***`` (the key of a
    ``KEY=VALUE`` property is kept), for the process title.

    Example::

        >>> shown_argv(["run", "--kafka-config", "sasl.password=hunter2", "--api-header", "X-Key: a=b"])
        ['run', '--kafka-config', 'sasl.password=***', '--api-header', 'X-Key: ***']
    """

    def hide(flag: str, value: str) -> str:
        if flag == "--api-header":
            name, sep, _ = value.partition(":")
            return f"{name}: ***" if sep else "***"
        key, sep, _ = value.partition("=")
        if sep and flag.endswith("-config"):  # a librdkafka property: only secret keys are hidden
            return value if not is_secret_key(key) else f"{key}=***"
        return "***"

    secret = {opt.flag for opt in OPTIONS if opt.secret}
    shown: list[str] = []
    pending: str | None = None  # a secret flag whose value is the next argument
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if pending is not None and not arg.startswith("-"):
            shown.append(hide(pending, arg))
        elif flag in secret and sep:
            shown.append(f"{flag}={hide(flag, value)}")
        else:
            shown.append(arg)
        pending = arg if arg in secret else None
    return shown


def _hide_secrets_from_ps(argv: Sequence[str]) -> None:
    """Rewrite this process's title (what ``ps`` shows) when its arguments carry a secret: the
    environment (``INGESTLOAD_KAFKA_PROP_*``, ``INGESTLOAD_API_TOKEN``…) is the better place."""
    shown = shown_argv(argv)
    if shown != list(argv):
        import setproctitle

        setproctitle.setproctitle(" ".join(["ingestload", *shown]))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _hide_secrets_from_ps(argv)
    if argv[:1] == ["api"]:  # its own parser and options: ingestload.api.config
        from ingestload.api.server import main as api_main

        return api_main(argv[1:])
    if argv[:1] == ["fanout"]:  # its own parser and options: ingestload.fanout.config
        from ingestload.fanout.server import main as fanout_main

        return fanout_main(argv[1:])
    locust_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, locust_args = argv[:split], argv[split + 1 :]
    args = build_parser().parse_args(argv)
    try:
        if args.command == "broker":
            return cmd_broker(args)
        if args.command == "run":
            return cmd_run(args, locust_args)
        if args.command == "verify":
            return cmd_verify(args)
        return cmd_catalogue(args)
    except IngestloadError as e:
        return _error(str(e))


if __name__ == "__main__":
    sys.exit(main())
