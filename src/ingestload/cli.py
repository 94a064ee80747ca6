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
    ingestload sink [options]                  the reference sink (Kafka → PostgreSQL), until Ctrl-C
    ingestload run --sink                      the run + a PostgreSQL and the reference sink; every hop judged
    ingestload verify --ledger F --sink DSN    judge the storage hop (a table) of a finished run too

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
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ingestload.errors import IngestloadError
from ingestload.kafka import settings as kafka
from ingestload.kafka.admin import ensure_topics, history_missing
from ingestload.kafka.broker import EmbeddedBroker
from ingestload.kafka.config import is_secret_key
from ingestload.launch import (
    DEFAULT_LOCUSTFILE,
    DEFAULT_SUBSCRIBERS,
    FANOUT_LOCUSTFILE,
    RunPlan,
    check_kafka,
    check_sink,
    probe_kafka,
    start,
)
from ingestload.locust.publish import write_json
from ingestload.messages.catalogue import Catalogue
from ingestload.messages.ledger import AckLedger
from ingestload.options import add_plain_argument
from ingestload.settings import DRAIN_TIMEOUT, OPTIONS, RUN_OPTIONS, Settings
from ingestload.sink import settings as sink
from ingestload.sink.verdict import SinkVerdict
from ingestload.verdicts import INCONCLUSIVE, combine, exit_code
from ingestload.verify import settings as verify
from ingestload.verify.body import BodySpec
from ingestload.verify.readback import Readback
from ingestload.verify.verdict import Thresholds

#: The options of ``ingestload verify`` (the others do not apply to a finished run).
VERIFY_OPTIONS = {
    kafka.BOOTSTRAP,
    kafka.CONFIG,
    kafka.CONFIG_FILE,
    kafka.VERIFIER_CONFIG,
    verify.MAX_LOST,
    verify.MAX_DUPLICATED,
    verify.MAX_CORRUPTED,
    verify.MAX_MISROUTED,
    DRAIN_TIMEOUT,
    verify.VERDICT_FILE,
    *sink.OPTIONS,
}
#: The options of ``ingestload sink``: Kafka, the database and table, the catalogue, status lines.
SINK_COMMAND_OPTIONS = {
    kafka.BOOTSTRAP,
    kafka.CONFIG,
    kafka.CONFIG_FILE,
    *(
        opt
        for opt in sink.OPTIONS
        if opt.flag in {"--sink", "--sink-table", "--sink-dead-letters", "--sink-group", "--sink-topics"}
    ),
    *(
        opt
        for opt in OPTIONS
        if opt.flag in {"--catalogue", "--topic-prefix", "--envelope-field", "--partitions"}
    ),
    *(opt for opt in RUN_OPTIONS if opt.flag == "--status-interval"),
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


def cmd_run(args: argparse.Namespace, locust_args: Sequence[str]) -> int:
    """``ingestload run``: a checked plan first (nothing starts on bad input), then start it."""
    plan = RunPlan.from_args(args, locust_args)
    check_kafka(plan)
    check_sink(plan)
    return start(plan)


# -- verify ------------------------------------------------------------------------------


def _verify_thresholds(
    args: argparse.Namespace, settings: Settings, recorded: Mapping[str, object]
) -> Thresholds:
    """The run's thresholds as its ledger file recorded them (one command re-judges a run as it was
    judged), each overridden by a ``--max-…`` given on this command line."""
    values = {name: int(str(recorded[name])) for name in Thresholds.__dataclass_fields__ if name in recorded}
    for name in ("max_lost", "max_duplicated", "max_corrupted", "max_misrouted"):
        if getattr(args, name, None) is not None or name not in values:
            values[name] = int(getattr(settings.verify, name))
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
        f"against {settings.kafka.address}…",
        flush=True,
    )
    # A Kafka that does not answer, or that is not the one that held the run (another cluster, a
    # fresh broker without its topics), cannot judge it: everything would look lost.
    config = settings.kafka.consumer_config()
    try:
        probe_kafka(config, settings.kafka.address)
        missing = history_missing(config, topics, start, document.get("cluster_id"))
    except IngestloadError as e:
        missing = [str(e)]
    if missing:
        return _cannot_judge(run_id, ledger, settings.kafka.address, missing, settings.verify.verdict_file)
    run = Readback(
        config,
        topics,
        run_id,
        start=start,
        envelope_field=document.get("envelope_field") or settings.messages.envelope_field,
        body=document.get("body"),
        thresholds=_verify_thresholds(args, settings, document.get("thresholds") or {}),
        record_latency=False,
    )
    # Long after the run, nothing is late any more: read to the end as it is now.
    verdict = run.finish(
        ledger,
        drain_timeout=settings.run.drain_timeout,
        missing_workers=document.get("missing_workers", []),
        late_grace=0.0,
    )
    print(verdict.report(), flush=True)
    document_out = verdict.to_dict()
    code = verdict.exit_code
    if settings.sink.enabled:
        stored = _verify_sink(settings, document, run_id, topics, ledger, verdict.thresholds)
        document_out["sink"] = stored.to_dict()
        status = combine(verdict.status, stored.status)
        document_out["overall"] = {"status": status, "exit_code": exit_code(status)}
        code = exit_code(status)
    if settings.verify.verdict_file:
        write_json(settings.verify.verdict_file, document_out)
    return code


def _verify_sink(
    settings: Settings,
    document: Mapping[str, Any],
    run_id: str,
    topics: Sequence[str],
    ledger: AckLedger,
    thresholds: Thresholds,
) -> SinkVerdict:
    """The storage hop of a finished run: its table read back and judged against the ledger."""
    from ingestload.sink.progress import judge_table

    s = settings.sink
    if s.dsn == sink.EMBEDDED:
        raise IngestloadError("--sink: name the database (postgresql://…); a run's own ended with it")
    target = s.target()
    target.check()
    spec = BodySpec.from_dict(document.get("body"), str(document.get("envelope_field") or "_ingestload"))
    print(f"ingestload: reading table {target.name} back…", flush=True)
    verdict = judge_table(
        target,
        settings.kafka.consumer_config(),
        list(s.topics or topics),
        group=s.group,
        run_id=run_id,
        ledger=ledger,
        spec=spec,
        thresholds=thresholds,
        wait=s.wait,
        missing_workers=list(document.get("missing_workers") or []),
        on_wait=lambda line: print(f"ingestload: {line}", flush=True),
    )
    print(verdict.report(), flush=True)
    return verdict


def _cannot_judge(
    run_id: str, ledger: AckLedger, address: str, reasons: Sequence[str], verdict_file: str | None
) -> int:
    """INCONCLUSIVE, without reading: this Kafka cannot tell what became of the run's messages."""
    why = [f"the Kafka at {address} cannot judge run {run_id}: {r}" for r in reasons]
    acked = ledger.totals()["acked"]
    print(f"VERDICT: INCONCLUSIVE  acked={acked:,}", flush=True)
    for reason in why:
        print(f"  reason: {reason}", flush=True)
    code = exit_code(INCONCLUSIVE)
    if verdict_file:
        document = {"status": INCONCLUSIVE, "run_id": run_id, "acked": acked, "exit_code": code}
        write_json(verdict_file, {**document, "reasons": why})
    return code


# -- sink ----------------------------------------------------------------------------------


def cmd_sink(args: argparse.Namespace) -> int:
    """``ingestload sink``: the reference sink, Kafka → PostgreSQL, until SIGTERM or Ctrl-C."""
    import threading

    from ingestload.sink.records import Validator
    from ingestload.sink.running import READY
    from ingestload.sink.writer import ReferenceSink

    settings = Settings.from_options(args)
    s = settings.sink
    if s.dsn is None or s.dsn == sink.EMBEDDED:
        raise IngestloadError(
            "ingestload sink needs a database: INGESTLOAD_SINK=postgresql://user@host/db "
            "(or --sink; a password belongs in PGPASSWORD or ~/.pgpass, not on the command line)"
        )
    catalogue = Catalogue.load(settings.messages.catalogue)
    topics = list(s.topics or settings.topics(catalogue))
    config = settings.kafka.admin_config()
    probe_kafka(config, settings.kafka.address)
    writer = ReferenceSink(
        s.dsn,
        config,
        topics,
        Validator.of(catalogue, settings.messages.topic_prefix),
        group=s.group or sink.GROUP,
        table=s.table,
        dead_letters=s.dead_letters or "ingestload_dead_letters",
        envelope_field=settings.messages.envelope_field,
        on_status=lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True),
        status_interval=settings.run.status_interval or 5.0,
    )
    # Its topics exist before it subscribes: a group told of a topic only later would see it
    # after the next metadata refresh, minutes on.
    ensure_topics(config, topics, settings.kafka.partitions)
    writer.prepare()
    stop = threading.Event()
    if args.port:
        _serve_health(args.port, stop)

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(writer.describe(), flush=True)
    print(READY, flush=True)
    stats = writer.run(stop)
    print(f"ingestload sink: stopped; {stats.line(None, 0).removeprefix('sink: ')}", flush=True)
    return 0


def _serve_health(port: int, stop: object) -> None:
    """``/healthz`` and ``/readyz`` on ``port`` (a daemon thread): 200 while the sink runs, so that a
    Kubernetes master can wait for it (its tables exist, it has subscribed)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            known = self.path in ("/healthz", "/readyz")
            self.send_response(200 if known else 404)
            self.end_headers()
            self.wfile.write(b"ok\n" if known else b"not found\n")

        def log_message(self, format: str, *args: object) -> None:  # probes are not news
            pass

    server = ThreadingHTTPServer(("0.0.0.0", port), Health)
    threading.Thread(target=server.serve_forever, name="ingestload-sink-health", daemon=True).start()


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
        if opt is sink.SINK:  # alone: the run's own PostgreSQL and the reference sink
            run.add_argument(
                opt.flag,
                nargs="?",
                const=sink.EMBEDDED,
                default=None,
                metavar="DSN",
                help="The storage hop too. Alone: start a PostgreSQL (Debian's server binaries) and the "
                "reference sink for the run. With a DSN (better: INGESTLOAD_SINK): judge the table "
                "your sink writes in that database (--sink-table, --sink-column or --sink-query).",
            )
            continue
        add_plain_argument(run, opt)

    verify = sub.add_parser(
        "verify",
        help="judge a finished run again from its ledger file and what is in Kafka now",
        description="Exit code: 0 PASS, 3 FAIL, 4 INCONCLUSIVE, 2 bad input.",
    )
    verify.add_argument("--ledger", required=True, help="the ledger file a run wrote (--ledger-file)")
    for opt in OPTIONS:
        if opt in VERIFY_OPTIONS:
            ledger_default = " Default: the one in the ledger file." if opt is kafka.BOOTSTRAP else ""
            add_plain_argument(verify, opt, opt.help + ledger_default)

    sub.add_parser(
        "api", help="the reference ingest API, HTTP → Kafka (ingestload api --help)", add_help=False
    )
    sub.add_parser(
        "fanout",
        help="the reference fan-out gateway, Kafka → WebSocket (ingestload fanout --help)",
        add_help=False,
    )

    sink_command = sub.add_parser(
        "sink",
        help="the reference sink, Kafka → PostgreSQL (a consumer group; run more to scale out)",
        description="Reads the run's topics in a consumer group, checks each message against its type "
        "(invalid ones go to the dead-letter table with the reason), writes batches keyed by the "
        "message's identity and commits offsets only after the database committed. Give the database "
        "as INGESTLOAD_SINK (or --sink).",
    )
    for opt in OPTIONS:
        if opt in SINK_COMMAND_OPTIONS:
            add_plain_argument(sink_command, opt)
    sink_command.add_argument(
        "--port", type=int, default=0, help="serve /healthz and /readyz on this port (default 0: none)"
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
        if args.command == "sink":
            return cmd_sink(args)
        return cmd_catalogue(args)
    except IngestloadError as e:
        return _error(str(e))


if __name__ == "__main__":
    sys.exit(main())
