"""The ``ingestload`` command.

    ingestload broker [--port 9092]            run the embedded Kafka broker until Ctrl-C
    ingestload run [options] [-- LOCUST_ARGS]  broker + headless Locust run + what landed per topic
    ingestload run --ui                        the same load from Locust's web UI
    ingestload catalogue [PATH]                validate a catalogue and show its mix
    ingestload api [options]                   the reference ingest API (HTTP → Kafka); --help for more

``ingestload run`` starts the embedded broker unless ``--kafka-bootstrap`` (or
``INGESTLOAD_KAFKA_BOOTSTRAP``) names a Kafka to use, creates the topics, runs Locust with
the given locustfile, then prints how many messages landed on each topic and exits
with Locust's exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ingestload.broker import EmbeddedBroker
from ingestload.catalogue import Catalogue, data_path
from ingestload.errors import IngestloadError
from ingestload.kafka import count_run, ensure_topics, high_watermarks
from ingestload.settings import OPTIONS, Settings

DEFAULT_LOCUSTFILE = "locustfiles/kafka.py"


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


def _locustfile(path: str | None) -> Path:
    if path:
        candidate = Path(path)
        if not candidate.is_file():
            raise IngestloadError(f"--locustfile: no such file {path!r}")
        return candidate
    local = Path(DEFAULT_LOCUSTFILE)
    return local if local.is_file() else data_path(DEFAULT_LOCUSTFILE)


def _option_args(args: argparse.Namespace, bootstrap: str) -> list[str]:
    """The ingestload options given to ``run``, as flags for the Locust process."""
    argv = ["--kafka-bootstrap", bootstrap]
    for opt in OPTIONS:
        if opt.dest == "kafka_bootstrap":
            continue
        value = getattr(args, opt.dest)
        if value is None:
            continue
        for item in value if opt.multiple else [value]:
            argv += [opt.flag, str(item)]
    return argv


def cmd_run(args: argparse.Namespace, locust_args: Sequence[str]) -> int:
    bootstrap_given = args.kafka_bootstrap or os.environ.get("INGESTLOAD_KAFKA_BOOTSTRAP")
    # Validate everything before anything starts.
    settings = Settings.from_options(
        argparse.Namespace(**{**vars(args), "kafka_bootstrap": bootstrap_given or "127.0.0.1:1"})
    )
    catalogue = Catalogue.load(settings.catalogue)
    locustfile = _locustfile(args.locustfile)
    topics = catalogue.topics(settings.topic_prefix)

    with _kafka_for(bootstrap_given) as bootstrap:
        settings = Settings.from_options(argparse.Namespace(**{**vars(args), "kafka_bootstrap": bootstrap}))
        config = settings.admin_config()
        if settings.create_topics:
            ensure_topics(config, topics, settings.partitions)
        start = high_watermarks(config, topics)
        run_id = settings.run_id or secrets.token_hex(8)
        args.run_id = run_id

        users = args.users or max(1, args.processes or 1)
        command = [sys.executable, "-m", "locust", "-f", str(locustfile), "-u", str(users), "-r", str(users)]
        if args.ui:
            command += ["--web-host", args.web_host, "--web-port", str(args.web_port)]
        else:
            command += ["--headless", "--only-summary", "-t", args.run_time]
        if args.processes:
            command += ["--processes", str(args.processes)]
        command += _option_args(args, bootstrap) + list(locust_args)
        if args.ui:
            print(f"ingestload: open http://{args.web_host}:{args.web_port} — Ctrl-C to stop", flush=True)
        code = _run_child(command)

        print(f"\ningestload: reading run {run_id} back from Kafka…", flush=True)
        counts = count_run(config, topics, start, run_id)
        width = max([len(t) for t in topics] + [5])
        print(f"Messages of run {run_id} that landed in Kafka ({bootstrap}):")
        for topic in topics:
            print(f"  {topic:<{width}}  {counts.get(topic, 0):>12,}")
        print(f"  {'total':<{width}}  {sum(counts.values()):>12,}")
    return code


def _run_child(command: list[str]) -> int:
    """Run Locust; Ctrl-C reaches it through the terminal, SIGTERM is forwarded."""
    child = subprocess.Popen(command)

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
        "--run-time", "-t", default="1m", help="how long to run headless (Locust syntax; default 1m)"
    )
    run.add_argument("--users", "-u", type=int, default=None, help="Locust users (default: one per process)")
    run.add_argument(
        "--processes", type=int, default=None, help="Locust worker processes (default: one process)"
    )
    run.add_argument("--ui", action="store_true", help="start Locust's web UI instead of a headless run")
    run.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    run.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")
    for opt in OPTIONS:
        run.add_argument(
            opt.flag,
            default=None,
            action="append" if opt.multiple else "store",
            metavar=opt.metavar,
            help=opt.help,
        )

    sub.add_parser(
        "api", help="the reference ingest API, HTTP → Kafka (ingestload api --help)", add_help=False
    )

    catalogue = sub.add_parser("catalogue", help="validate a catalogue file and print its mix")
    catalogue.add_argument("path", nargs="?", default=None, help="catalogue YAML (default: the built-in one)")
    catalogue.add_argument("--total", type=int, default=10_000, help="show counts for this many messages")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["api"]:  # its own parser and options: ingestload.api.config
        from ingestload.api.server import main as api_main

        return api_main(argv[1:])
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
        return cmd_catalogue(args)
    except IngestloadError as e:
        return _error(str(e))


if __name__ == "__main__":
    sys.exit(main())
