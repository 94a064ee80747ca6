"""One typed settings object, built from Locust's parsed options and the environment.

Every option has a command-line flag and an ``INGESTLOAD_…`` environment variable (for a
repeatable option, one item per line; its command-line items come after them).
Values arrive as text (from the CLI, the environment, a ``locust.conf`` or the web UI)
and are validated here, up front, so that a bad value stops the run before any load
starts with a one-line error naming the option, the value and what is allowed.

Example::

    settings = Settings.from_options(environment.parsed_options)
    producer = Producer(settings.producer_config(client_id="me"))
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ingestload.errors import ConfigError
from ingestload.fanout.errors import FanoutError
from ingestload.fanout.filters import FieldFilter
from ingestload.kafka.config import (
    CONSUMER_DEFAULTS,
    PRODUCER_DEFAULTS,
    kafka_properties,
    parse_properties,
    redact_config,
)
from ingestload.messages.catalogue import Catalogue, routed_topic
from ingestload.rate.durations import parse_duration

ENV_PREFIX = "INGESTLOAD_"


@dataclass(frozen=True)
class Option:
    """One ingestload option, registered with Locust's parser and read back by :class:`Settings`."""

    flag: str
    """Command-line flag, e.g. ``--rate``."""
    default: str | None
    """Default as text (``None``: unset); parsed like any user value."""
    help: str
    """Help text shown by ``locust --help``."""
    metavar: str | None = None
    """Placeholder shown in help."""
    secret: bool = False
    """Never shown in the web UI or logs."""
    multiple: bool = False
    """May be given several times (``action="append"``)."""
    web_ui: bool = False
    """Shown under "Custom parameters" in Locust's web UI: what a tester changes between tests.
    Expert and file options stay on the command line and in the environment; a secret never shows.
    An empty field there means the option's default (see :meth:`Settings.from_options`)."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    Option(
        "--kafka-bootstrap", "127.0.0.1:9092", "Kafka bootstrap servers, HOST:PORT[,HOST:PORT…].", "SERVERS"
    ),
    Option(
        "--kafka-config",
        None,
        "A librdkafka property as KEY=VALUE (repeatable), e.g. security.protocol=SASL_SSL. "
        "Also INGESTLOAD_KAFKA_PROP_<KEY> env vars (dots as underscores). Secrets are redacted.",
        "KEY=VALUE",
        secret=True,
        multiple=True,
    ),
    Option(
        "--verifier-config",
        None,
        "A librdkafka property for the verifier's consumer only, as KEY=VALUE (repeatable), "
        "e.g. fetch.wait.max.ms=500; wins over --kafka-config.",
        "KEY=VALUE",
        secret=True,
        multiple=True,
    ),
    Option(
        "--kafka-config-file",
        None,
        "A librdkafka properties file (KEY=VALUE lines, # comments); --kafka-config wins on conflicts.",
        "PATH",
    ),
    Option(
        "--rate",
        None,
        "Target messages per second for the whole run (all workers); 0 = as fast as possible. "
        "Default 1000; not together with --rate-profile.",
        "MSGS_PER_S",
        web_ui=True,
    ),
    Option(
        "--rate-profile",
        None,
        "A rate profile YAML (stages: ramp, hold, step, spike; see mocks/profiles/) that drives the "
        "target rate instead of --rate; the run ends when the profile ends.",
        "PATH",
        web_ui=True,
    ),
    Option(
        "--rate-split",
        None,
        "How the target divides between paths, as weights, e.g. kafka=0.7,api=0.3; "
        "default: by the weights of the user classes of each path.",
        "PATH=W,…",
        web_ui=True,
    ),
    Option(
        "--max-lateness",
        None,
        "Drop (never send, count as dropped) messages further behind their intended time than this, "
        "e.g. 2s; default: send them late (catch up).",
        "DURATION",
        web_ui=True,
    ),
    Option(
        "--min-rate-ratio",
        None,
        "Fail the run (exit code 5) when the offered rate stays below this share of the target "
        "(e.g. 0.95) for longer than --min-rate-window; default: off.",
        "RATIO",
        web_ui=True,
    ),
    Option(
        "--min-rate-window",
        "10s",
        "How long the offered rate may stay below --min-rate-ratio.",
        "DURATION",
        web_ui=True,
    ),
    Option("--batch-max", "1000", "Most messages a user sends per wake-up before yielding.", "N"),
    Option(
        "--gc-threshold",
        "50000",
        "Python's generation-0 GC threshold in processes that send (Python's default: 700); "
        "at 100k+ msg/s collections cost a sixth of the throughput. 0 = leave Python's GC alone.",
        "N",
    ),
    Option(
        "--catalogue",
        None,
        "Message catalogue YAML (controllers, mix, templates); default: the built-in one.",
        "PATH",
    ),
    Option(
        "--topic-prefix",
        None,
        "Topic name prefix (topic = prefix + message type); default: the catalogue's.",
        "PREFIX",
    ),
    Option("--seed", "0", "Seed for the message factory; the same seed gives the same messages.", "INT"),
    Option("--partitions", "3", "Partitions for topics that ingestload creates.", "N"),
    Option("--create-topics", "true", "Create missing topics before the run (true/false).", "BOOL"),
    Option("--status-interval", "5", "Seconds between status lines in headless mode; 0 = off.", "SECONDS"),
    Option(
        "--drain-timeout",
        "45",
        "Seconds to wait at stop for in-flight messages to be acknowledged.",
        "SECONDS",
    ),
    Option(
        "--run-id",
        None,
        "Run id stamped on every message (16 hex digits); default: random per test.",
        "HEX",
        web_ui=True,
    ),
    Option(
        "--verify",
        "true",
        "Verify every acknowledged message end to end; end with a verdict (true/false).",
        "BOOL",
        web_ui=True,
    ),
    Option("--max-lost", "0", "Lost messages tolerated before the verdict is FAIL.", "N", web_ui=True),
    Option(
        "--max-duplicated", "0", "Duplicate copies tolerated before the verdict is FAIL.", "N", web_ui=True
    ),
    Option(
        "--max-corrupted", "0", "Corrupted messages tolerated before the verdict is FAIL.", "N", web_ui=True
    ),
    Option(
        "--max-misrouted",
        "0",
        "Copies on a topic other than their own tolerated before the verdict is FAIL.",
        "N",
        web_ui=True,
    ),
    Option(
        "--late-grace",
        "5s",
        "How long the verifier keeps reading after the drain before it takes the topics' end offsets, "
        "so that late copies (a pipeline's retries, delayed duplicates) count in the verdict.",
        "DURATION",
    ),
    Option(
        "--verdict-file",
        None,
        "Write the verdict as JSON to this file ({run_id} in it: the test's run id).",
        "PATH",
    ),
    Option(
        "--ledger-file",
        None,
        "Write the run's ack ledger as JSON (for `ingestload verify --ledger`; {run_id} in it: "
        "the test's run id).",
        "PATH",
    ),
    Option(
        "--envelope-field", "_ingestload", "JSON member that carries the envelope on the HTTP path.", "NAME"
    ),
    Option(
        "--api-batch-size",
        "1",
        "Messages per HTTP request for the ingest API user (1 = single).",
        "N",
        web_ui=True,
    ),
    Option(
        "--api-path", "/v1/messages/{msgType}", "Path template for one message ({msgType} is filled).", "PATH"
    ),
    Option(
        "--api-batch-path",
        "/v1/messages/{msgType}:batch",
        "Path template for a batch (a JSON array): with {msgType}, one request per message type "
        "in a take; without, one request with every type (for APIs that route each message).",
        "PATH",
    ),
    Option(
        "--api-topic-map",
        None,
        "Where the ingest API writes each message type, as TYPE=TOPIC[,TYPE=TOPIC…] with * for every "
        "other type (e.g. *=ingest-all); default: the catalogue's topic per type. A message found "
        "elsewhere is misrouted.",
        "MAP",
    ),
    Option(
        "--api-header",
        None,
        "An extra HTTP header 'Name: value' (repeatable); values are never shown.",
        "HEADER",
        secret=True,
        multiple=True,
    ),
    Option(
        "--api-token",
        None,
        "Bearer token for the ingest API (sent as Authorization); better from INGESTLOAD_API_TOKEN.",
        "TOKEN",
        secret=True,
    ),
    Option(
        "--api-timeout",
        "30",
        "Seconds before an ingest API request counts as timed out (outcome unknown); keep it above "
        "the API's own request timeout (the reference API's: 15 s).",
        "S",
    ),
    # -- the last hop: WebSocketSubscriberUser and the fan-out verdict --------------------------
    Option(
        "--ws-url",
        "ws://127.0.0.1:8765/v1/stream",
        "The fan-out gateway's WebSocket URL that WebSocketSubscriberUser connects to.",
        "URL",
    ),
    Option(
        "--ws-topics",
        None,
        "Topics every subscriber subscribes to, comma-separated; default: the run's topics "
        "(the catalogue's, with --topic-prefix).",
        "T1,T2",
    ),
    Option(
        "--ws-filter",
        None,
        "Subscribers receive only messages whose field has one of these values, as FIELD=V1,V2 "
        "(e.g. Header.ControllerType=LCE,GCE); default: every message of the topics.",
        "FIELD=VALUES",
    ),
    Option(
        "--ws-reconnect-every",
        None,
        "Connection churn: each subscriber ends its subscription cleanly and reconnects this often "
        "(e.g. 20s); default: one connection for the whole run.",
        "DURATION",
    ),
    Option(
        "--ws-subscriber-profile",
        None,
        "A profile YAML (the rate profile's stages) whose values are subscribers: ramps the users of "
        "the subscriber classes while the message rate follows --rate; the run ends with it.",
        "PATH",
    ),
    Option("--max-missed", "0", "Fan-out deliveries missed (all subscribers) tolerated before FAIL.", "N"),
    Option("--max-fanout-duplicated", "0", "Duplicate fan-out deliveries tolerated before FAIL.", "N"),
    Option("--max-fanout-out-of-order", "0", "Fan-out deliveries out of order tolerated before FAIL.", "N"),
    Option(
        "--max-fanout-unexpected",
        "0",
        "Deliveries outside a subscription (another filter value, topic or window) tolerated before FAIL.",
        "N",
    ),
    Option(
        "--max-fanout-p99",
        None,
        "Highest acceptable fan-out latency p99 over all subscribers (e.g. 500ms); default: not judged.",
        "DURATION",
    ),
    # -- real ingest APIs (issue 17): how a message travels through an API of someone else's design.
    # One block, ported as a whole; see docs/your-api.md and ingestload.verify.body.
    Option(
        "--api-body",
        "json",
        "How the ingest API user sends a message: json (a JSON object; an array per batch) or form "
        "(application/x-www-form-urlencoded, one field per leaf named by its dotted path, all values "
        "text, as seed 001's ab -T posted them; one message per request).",
        "json|form",
    ),
    Option(
        "--envelope-in",
        None,
        "Strict schemas: carry each message's identity and checksum as a UUID inside this existing "
        "string field (dotted path, e.g. Header.MessageId) instead of adding the --envelope-field "
        "member, so the message has exactly its template's fields.",
        "FIELD",
    ),
    Option(
        "--message-path",
        None,
        "Where the ingest API puts the message in its Kafka record, as a dotted path (e.g. data for "
        '{"meta": …, "data": <message>}); there may be one message or an array. Default: the record '
        "itself or an array of messages, else the wrapper is found by looking.",
        "PATH",
    ),
)


def add_arguments(parser: Any) -> None:
    """Register every ingestload option on a Locust (configargparse) parser."""
    group = parser.add_argument_group("ingestload", "Kafka load with message-level verification")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"default": opt.default, "help": opt.help, "metavar": opt.metavar}
        if opt.multiple:
            # Repeatable: the environment variable (one item per line) is read by Settings itself.
            kwargs["action"] = "append"
        else:
            kwargs["env_var"] = opt.env
        action = group.add_argument(opt.flag, **kwargs)
        # Locust's web UI shows options whose action carries these attributes (argument groups
        # do not set them): only what a tester changes between tests, never a secret (the UI
        # would echo it back).
        action.include_in_web_ui = opt.web_ui and not opt.secret
        action.is_secret = False
        action.is_required = False
        action.is_multiple = False


def add_plain_argument(parser: Any, opt: Option, help: str | None = None) -> None:
    """Register ``opt`` on a plain argparse parser (``ingestload run/verify/api``): no default, so
    that only what the user typed is passed on; repeatable options append."""
    parser.add_argument(
        opt.flag,
        default=None,
        action="append" if opt.multiple else "store",
        metavar=opt.metavar,
        help=opt.help if help is None else help,
    )


@dataclass(frozen=True)
class Settings:
    """Validated ingestload settings for one process."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    """Bootstrap servers."""
    kafka_config: Mapping[str, str] = field(default_factory=dict, repr=False)
    """User librdkafka properties (file, env, then ``--kafka-config``), secrets included (not in repr)."""
    verifier_config: Mapping[str, str] = field(default_factory=dict, repr=False)
    """``--verifier-config`` properties: the verifier's consumer only."""
    rate: float = 1000.0
    """Target messages per second for the whole run; 0 means as fast as possible."""
    rate_profile: str | None = None
    """Rate profile file that drives the run instead of :attr:`rate` (loaded where it is used:
    on the master or the local process, never on workers, which receive its stages)."""
    rate_split: Mapping[str, float] | None = None
    """Weight per path (``kafka``, ``api``) of the target; ``None``: by user class weights."""
    max_lateness: float | None = None
    """Seconds behind schedule after which messages are dropped; ``None``: catch up."""
    min_rate_ratio: float | None = None
    """Rate guard: lowest acceptable offered ÷ target; ``None`` turns the guard off."""
    min_rate_window: float = 10.0
    """Rate guard: seconds the offered rate may stay below the ratio before the run fails."""
    batch_max: int = 1000
    gc_threshold: int = 50_000
    """Most messages one user sends per wake-up."""
    catalogue: Path | None = None
    """Catalogue file; ``None`` selects the built-in catalogue."""
    topic_prefix: str | None = None
    """Overrides the catalogue's topic prefix when set."""
    seed: int = 0
    """Message factory seed."""
    partitions: int = 3
    """Partitions of topics created by ingestload."""
    create_topics: bool = True
    """Create missing topics at start."""
    status_interval: float = 5.0
    """Seconds between status lines (0 = off)."""
    drain_timeout: float = 45.0
    """Seconds to wait at stop for in-flight messages."""
    run_id: str | None = None
    """Fixed run id (16 hex digits) or ``None`` for a random one per test."""
    verify: bool = True
    """Run the verifier and end with a verdict."""
    max_lost: int = 0
    """Lost messages tolerated."""
    max_duplicated: int = 0
    """Duplicate copies tolerated."""
    max_corrupted: int = 0
    """Corrupted messages tolerated."""
    max_misrouted: int = 0
    """Copies on a wrong topic tolerated."""
    late_grace: float = 5.0
    """Seconds the verifier reads on after the drain before it takes the end offsets."""
    verdict_file: str | None = None
    """Where to write the verdict JSON."""
    ledger_file: str | None = None
    """Where to write the ledger JSON."""
    envelope_field: str = "_ingestload"
    """JSON member carrying the envelope on the HTTP path."""
    api_batch_size: int = 1
    """Messages per HTTP request (1 = the single-message endpoint)."""
    api_path: str = "/v1/messages/{msgType}"
    """Path template for one message."""
    api_batch_path: str = "/v1/messages/{msgType}:batch"
    """Path template for a batch."""
    api_topic_map: Mapping[str, str] | None = None
    """Message type (or ``*``) → the topic the ingest API writes it to; ``None``: the catalogue's."""
    api_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Extra HTTP headers (values never printed)."""
    api_token: str | None = field(default=None, repr=False)
    """Bearer token (never printed)."""
    api_timeout: float = 30.0
    """Seconds before a request's outcome is unknown."""
    ws_url: str = "ws://127.0.0.1:8765/v1/stream"
    """The fan-out gateway subscribers connect to."""
    ws_topics: tuple[str, ...] | None = None
    """Topics of every subscriber; ``None``: the run's topics."""
    ws_filter: FieldFilter | None = None
    """Subscribers' filter; ``None``: every message of their topics."""
    ws_reconnect_every: float | None = None
    """Seconds between a subscriber's clean reconnects (churn); ``None``: never."""
    ws_subscriber_profile: str | None = None
    """Profile file whose values are subscribers (:class:`~ingestload.fanout.shape.SubscriberShape`)."""
    max_missed: int = 0
    """Fan-out: missed deliveries tolerated."""
    max_fanout_duplicated: int = 0
    """Fan-out: duplicate deliveries tolerated."""
    max_fanout_out_of_order: int = 0
    """Fan-out: out-of-order deliveries tolerated."""
    max_fanout_unexpected: int = 0
    """Fan-out: deliveries outside a subscription tolerated."""
    max_fanout_p99_ms: float | None = None
    """Fan-out: highest acceptable latency p99 in ms; ``None``: not judged."""
    # -- real ingest APIs (issue 17) ---------------------------------------------------------
    api_body: str = "json"
    """``json`` or ``form``: the body of an ingest API request."""
    envelope_in: str | None = None
    """Strict schemas: the dotted path of the field carrying the identity UUID; ``None``: the member."""
    message_path: str | None = None
    """Where the API puts the message in its record (dotted path); ``None``: found by looking."""

    @classmethod
    def from_options(cls, options: Any, environ: Mapping[str, str] | None = None) -> Settings:
        """Build and validate settings from Locust's ``parsed_options`` (or any namespace).

        Attributes that are missing (or ``None``) fall back to their ``INGESTLOAD_<NAME>``
        variable, then to the defaults — so the plain parsers of ``ingestload run`` and ``verify``
        honour the same variables as Locust's (repeatable options: only from the command line);
        ``environ`` also supplies ``INGESTLOAD_KAFKA_PROP_*`` properties (default: ``os.environ``).
        An option of the web UI's form (:attr:`Option.web_ui`) left empty there arrives as ``''``
        and counts as not given, like an empty environment variable.
        """
        environ = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        for opt in OPTIONS:
            value = getattr(options, opt.dest, None)
            if opt.web_ui and isinstance(value, str) and not value.strip():
                value = None
            if opt.multiple:
                # The environment's items first (one per line), then the command line's: later wins.
                value = [*_env_items(environ.get(opt.env)), *_as_list(value)]
            elif value is None:  # not given: its environment variable, as Locust's parser reads it
                value = environ.get(opt.env) or None
            raw[opt.dest] = opt.default if value is None else value

        kafka_config = kafka_properties(raw["kafka_config_file"], _as_list(raw["kafka_config"]), environ)

        bootstrap = str(raw["kafka_bootstrap"] or "").strip()
        if not re.fullmatch(r"[^\s,]+:\d+(,[^\s,]+:\d+)*", bootstrap):
            raise ConfigError(
                f"--kafka-bootstrap: {bootstrap!r} is not HOST:PORT[,HOST:PORT…] (e.g. 127.0.0.1:9092)"
            )

        catalogue = Path(raw["catalogue"]) if raw["catalogue"] else None
        if catalogue is not None and not catalogue.is_file():
            raise ConfigError(f"--catalogue: no such file {str(catalogue)!r}")

        prefix = raw["topic_prefix"]
        if prefix is not None and not re.fullmatch(r"[A-Za-z0-9._-]*", prefix):
            raise ConfigError(
                f"--topic-prefix: {prefix!r} may only contain letters, digits, '.', '_' and '-'"
            )

        run_id = raw["run_id"]
        if run_id is not None:
            run_id = str(run_id).lower()
            if not re.fullmatch(r"[0-9a-f]{16}", run_id):
                raise ConfigError(
                    f"--run-id: {raw['run_id']!r} must be exactly 16 hex digits (e.g. 5f3a9c0b12d4e6f7)"
                )

        envelope_field = str(raw["envelope_field"])
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", envelope_field):
            raise ConfigError(
                f"--envelope-field: {envelope_field!r} must be a JSON member name like _ingestload"
            )
        profile = str(raw["rate_profile"]).strip() if raw["rate_profile"] else None
        if profile is not None and raw["rate"] is not None:
            raise ConfigError(
                f"--rate {raw['rate']} and --rate-profile {profile}: give only one of them "
                "(the profile sets the rate over time)"
            )
        ratio = raw["min_rate_ratio"]
        if ratio is not None:
            ratio = _number("--min-rate-ratio", ratio, float, minimum=0, what="a ratio in (0, 1], e.g. 0.95")
            if not 0 < ratio <= 1:
                raise ConfigError(
                    f"--min-rate-ratio: {raw['min_rate_ratio']!r} is not allowed; "
                    "expected a ratio in (0, 1], e.g. 0.95"
                )

        return cls(
            kafka_bootstrap=bootstrap,
            kafka_config=kafka_config,
            verifier_config=parse_properties(_as_list(raw["verifier_config"]), "--verifier-config"),
            rate=_number(
                "--rate",
                "1000" if raw["rate"] is None else raw["rate"],
                float,
                minimum=0,
                what="messages per second ≥ 0 (0 = unlimited)",
            ),
            rate_profile=profile,
            rate_split=parse_rate_split(raw["rate_split"]),
            max_lateness=_positive_duration("--max-lateness", raw["max_lateness"]),
            min_rate_ratio=ratio,
            min_rate_window=_positive_duration("--min-rate-window", raw["min_rate_window"]) or 10.0,
            batch_max=_number("--batch-max", raw["batch_max"], int, minimum=1, what="an integer ≥ 1"),
            gc_threshold=_number(
                "--gc-threshold", raw["gc_threshold"], int, minimum=0, what="an integer ≥ 0 (0 = Python's)"
            ),
            catalogue=catalogue,
            topic_prefix=prefix,
            seed=_number("--seed", raw["seed"], int, minimum=0, what="an integer ≥ 0"),
            partitions=_number("--partitions", raw["partitions"], int, minimum=1, what="an integer ≥ 1"),
            create_topics=_boolean("--create-topics", raw["create_topics"]),
            status_interval=_number(
                "--status-interval", raw["status_interval"], float, minimum=0, what="seconds ≥ 0"
            ),
            drain_timeout=_number(
                "--drain-timeout", raw["drain_timeout"], float, minimum=0, what="seconds ≥ 0"
            ),
            run_id=run_id,
            verify=_boolean("--verify", raw["verify"]),
            max_lost=_number("--max-lost", raw["max_lost"], int, minimum=0, what="an integer ≥ 0"),
            max_duplicated=_number(
                "--max-duplicated", raw["max_duplicated"], int, minimum=0, what="an integer ≥ 0"
            ),
            max_corrupted=_number(
                "--max-corrupted", raw["max_corrupted"], int, minimum=0, what="an integer ≥ 0"
            ),
            max_misrouted=_number(
                "--max-misrouted", raw["max_misrouted"], int, minimum=0, what="an integer ≥ 0"
            ),
            late_grace=_duration("--late-grace", raw["late_grace"]),
            verdict_file=raw["verdict_file"] or None,
            ledger_file=raw["ledger_file"] or None,
            envelope_field=envelope_field,
            api_batch_size=_number(
                "--api-batch-size", raw["api_batch_size"], int, minimum=1, what="an integer ≥ 1"
            ),
            api_path=_path_template("--api-path", raw["api_path"]),
            api_batch_path=_path_template("--api-batch-path", raw["api_batch_path"]),
            api_topic_map=parse_topic_map(raw["api_topic_map"]),
            api_headers=_headers(_as_list(raw["api_header"])),
            api_token=str(raw["api_token"]) if raw["api_token"] else None,
            api_timeout=_number(
                "--api-timeout", raw["api_timeout"], float, minimum=0.001, what="seconds > 0"
            ),
            **_fanout_settings(raw),
            **_real_api_settings(raw),
        )

    def for_run(self, run_id: str) -> Settings:
        """These settings for one test run: ``{run_id}`` in ``--verdict-file`` and ``--ledger-file``
        replaced, so that every test of a web UI session writes its own files.

        Example::

            >>> settings = Settings(verdict_file="reports/{run_id}/verdict.json")
            >>> settings.for_run("5f3a9c0b12d4e6f7").verdict_file
            'reports/5f3a9c0b12d4e6f7/verdict.json'
        """
        verdict, ledger = (
            None if path is None else path.replace("{run_id}", run_id)
            for path in (self.verdict_file, self.ledger_file)
        )
        return replace(self, verdict_file=verdict, ledger_file=ledger)

    def topics(self, catalogue: Catalogue, paths: Iterable[str] = ("kafka", "api")) -> list[str]:
        """The topics a run reads: the catalogue's topic per message type for the Kafka path, and
        where the ingest API writes each type (``--api-topic-map``) for the HTTP path."""
        found: set[str] = set()
        for msg_type in catalogue.message_types:
            own = catalogue.topic(msg_type, self.topic_prefix)
            if "kafka" in paths:
                found.add(own)
            if "api" in paths:
                found.add(routed_topic(self.api_topic_map, msg_type, own))
        return sorted(found)

    def producer_config(self, client_id: str | None = None) -> dict[str, str]:
        """The full librdkafka producer config: safe defaults, then the user's properties."""
        config = dict(PRODUCER_DEFAULTS)
        config["client.id"] = client_id or f"ingestload-{socket.gethostname()}-{os.getpid()}"
        config.update(self.kafka_config)
        config["bootstrap.servers"] = self.kafka_bootstrap
        return config

    def admin_config(self) -> dict[str, str]:
        """Connection-only config (security settings included) for admin and consumer clients."""
        producer_only = set(PRODUCER_DEFAULTS) | {
            "enable.idempotence",
            "transactional.id",
            "compression.type",
        }
        config = {k: v for k, v in self.kafka_config.items() if k not in producer_only}
        config["bootstrap.servers"] = self.kafka_bootstrap
        return config

    @property
    def api_batch_per_type(self) -> bool:
        """Whether a take of due messages is posted as one batch per message type (the batch path
        has ``{msgType}``) rather than one batch holding every type."""
        return "{msgType}" in self.api_batch_path

    def consumer_config(self) -> dict[str, str]:
        """Config for the verifier's consumer: fast-fetch defaults, the user's properties, then
        ``--verifier-config``."""
        return {**CONSUMER_DEFAULTS, **self.admin_config(), **self.verifier_config}

    def describe(self) -> str:
        """A one-line, secret-free summary for logs."""
        rate = "unlimited" if self.rate == 0 else f"{self.rate:g} msg/s"
        if self.rate_profile:
            rate = f"profile {self.rate_profile}"
        if self.rate_split:
            rate += " split " + ",".join(f"{k}={v:g}" for k, v in self.rate_split.items())
        props = ", ".join(f"{k}={v}" for k, v in sorted(redact_config(self.kafka_config).items()))
        return (
            f"kafka={self.kafka_bootstrap} rate={rate} catalogue={self.catalogue or 'built-in'}"
            + (f" topic_prefix={self.topic_prefix}" if self.topic_prefix is not None else "")
            + (f" kafka_config=[{props}]" if props else "")
            + (f" api_batch_size={self.api_batch_size}" if self.api_batch_size != 1 else "")
        )


def _real_api_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The issue-17 block: --api-body, --envelope-in, --message-path."""
    body = str(raw["api_body"] or "json").strip().lower()
    if body not in ("json", "form"):
        raise ConfigError(f"--api-body: {raw['api_body']!r} is not allowed; expected json or form")
    if body == "form" and int(raw["api_batch_size"] or 1) != 1:
        raise ConfigError(
            f"--api-body form with --api-batch-size {raw['api_batch_size']}: a form carries one "
            "message; use --api-batch-size 1 (or --api-body json for batches)"
        )
    paths = {}
    for flag in ("--envelope-in", "--message-path"):
        dest = flag.lstrip("-").replace("-", "_")
        value = str(raw[dest]).strip() if raw[dest] else None
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*", value):
            raise ConfigError(
                f"{flag}: {value!r} is not a dotted path of member names (e.g. Header.MessageId, data)"
            )
        paths[dest] = value
    return {"api_body": body, **paths}


def _fanout_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The subscriber and fan-out verdict fields of :class:`Settings` from raw option values."""
    url = str(raw["ws_url"]).strip()
    if not re.fullmatch(r"ws://[^\s/]+(/\S*)?", url):
        raise ConfigError(f"--ws-url: {url!r} must be a ws:// URL, e.g. ws://127.0.0.1:8765/v1/stream")
    topics = None
    if raw["ws_topics"] is not None and str(raw["ws_topics"]).strip():
        topics = tuple(sorted({t.strip() for t in str(raw["ws_topics"]).split(",") if t.strip()}))
        if not topics or not all(re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t) for t in topics):
            raise ConfigError(
                f"--ws-topics: {raw['ws_topics']!r} must be comma-separated topic names, "
                "e.g. gov-alarm,gov-fault"
            )
    p99 = _positive_duration("--max-fanout-p99", raw["max_fanout_p99"])
    profile = str(raw["ws_subscriber_profile"]).strip() if raw["ws_subscriber_profile"] else None
    if profile is not None and raw["rate_profile"]:
        raise ConfigError(
            f"--ws-subscriber-profile {profile} and --rate-profile {raw['rate_profile']}: give only one "
            "(with subscribers ramping, the message rate is --rate)"
        )
    thresholds = {
        dest: _number(f"--{dest.replace('_', '-')}", raw[dest], int, minimum=0, what="an integer ≥ 0")
        for dest in (
            "max_missed",
            "max_fanout_duplicated",
            "max_fanout_out_of_order",
            "max_fanout_unexpected",
        )
    }
    return {
        "ws_url": url,
        "ws_topics": topics,
        "ws_filter": parse_ws_filter(raw["ws_filter"]),
        "ws_reconnect_every": _positive_duration("--ws-reconnect-every", raw["ws_reconnect_every"]),
        "ws_subscriber_profile": profile,
        "max_fanout_p99_ms": None if p99 is None else p99 * 1000,
        **thresholds,
    }


def parse_ws_filter(value: Any) -> FieldFilter | None:
    """``"Header.ControllerType=LCE,GCE"`` → a :class:`~ingestload.fanout.filters.FieldFilter` (text
    values; ``None`` or empty stays ``None``).

    Example::

        >>> parse_ws_filter("Header.ControllerType=LCE,GCE").to_json()
        {'field': 'Header.ControllerType', 'in': ['GCE', 'LCE']}
    """
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    field_name, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not items:
        raise ConfigError(f"--ws-filter: {text!r} is not FIELD=V1,V2…, e.g. Header.ControllerType=LCE,GCE")
    try:
        return FieldFilter.from_json({"field": field_name.strip(), "in": items})
    except FanoutError as e:
        raise ConfigError(f"--ws-filter: {text!r}: {e}") from None


def parse_rate_split(value: Any) -> dict[str, float] | None:
    """``"kafka=0.7,api=0.3"`` → ``{"kafka": 0.7, "api": 0.3}`` (weights; ``None`` stays ``None``).

    Example::

        >>> parse_rate_split("kafka=7, api=3")
        {'kafka': 7.0, 'api': 3.0}
    """
    syntax = "PATH=WEIGHT[,PATH=WEIGHT…], e.g. kafka=0.7,api=0.3"
    items = _pairs("--rate-split", value, syntax)
    if items is None:
        return None
    hint = f"--rate-split: {str(value).strip()!r} is not valid; expected {syntax}"
    split: dict[str, float] = {}
    for path, weight in items:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", path):
            raise ConfigError(hint)
        try:
            number = float(weight)
        except ValueError:
            raise ConfigError(hint) from None
        if not math.isfinite(number) or number < 0:
            raise ConfigError(f"--rate-split: {path}={weight} is not allowed; weights are numbers ≥ 0")
        split[path] = number
    if not any(split.values()):
        raise ConfigError(
            f"--rate-split: {str(value).strip()!r} gives every path weight 0; give at least one a weight > 0"
        )
    return split


def _pairs(flag: str, value: Any, syntax: str) -> list[tuple[str, str]] | None:
    """The ``KEY=VALUE`` items of a comma-separated option (``None`` when it is empty); an item
    without ``=`` or a key, or a key given twice, is a one-line error naming ``syntax``."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    items: list[tuple[str, str]] = []
    for item in text.split(","):
        key, sep, val = (part.strip() for part in item.partition("="))
        if not sep or not key or key in {k for k, _ in items}:
            raise ConfigError(f"{flag}: {text!r} is not valid; expected {syntax}")
        items.append((key, val))
    return items


def parse_topic_map(value: Any) -> dict[str, str] | None:
    """``"alarm=alarms,*=events"`` → ``{"alarm": "alarms", "*": "events"}`` (``None`` stays ``None``).

    Example::

        >>> parse_topic_map("*=ingest-all")
        {'*': 'ingest-all'}
    """
    items = _pairs("--api-topic-map", value, "TYPE=TOPIC[,TYPE=TOPIC…], e.g. *=ingest-all")
    if items is None:
        return None
    for _, topic in items:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
            raise ConfigError(
                f"--api-topic-map: {topic!r} is not a topic name (letters, digits, '.', '_', '-')"
            )
    return dict(items)


def _duration(flag: str, value: Any) -> float:
    """A duration ≥ 0 (``0`` allowed)."""
    seconds = parse_duration(value, where=flag)
    if seconds < 0:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected a duration ≥ 0, e.g. 5s")
    return seconds


def _positive_duration(flag: str, value: Any) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    seconds = parse_duration(value, where=flag)
    if seconds <= 0:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected a duration > 0, e.g. 10s")
    return seconds


def _env_items(text: str | None) -> list[str]:
    """The items of a repeatable option's environment variable: one per line."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _as_list(value: Any) -> Sequence[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _number(flag: str, value: Any, kind: type[int] | type[float], *, minimum: float, what: str) -> Any:
    try:
        number = kind(str(value).strip())
    except (TypeError, ValueError):
        raise ConfigError(f"{flag}: {value!r} is not valid; expected {what}") from None
    if (isinstance(number, float) and not math.isfinite(number)) or number < minimum:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected {what}")
    return number


def _path_template(flag: str, value: Any) -> str:
    text = str(value)
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise ConfigError(f"{flag}: {text!r} must be a path starting with '/', e.g. /v1/messages/{{msgType}}")
    try:
        text.format(msgType="x")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{flag}: {text!r} may only use the placeholder {{msgType}}") from None
    return text


def _headers(lines: Sequence[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name.strip()):
            raise ConfigError(f"--api-header: {name.strip()!r}… is not 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def _boolean(flag: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{flag}: {value!r} is not a boolean; use true or false")


def namespace(**values: Any) -> argparse.Namespace:
    """A namespace with every option at its default, overridden by ``values`` (handy in tests).

    Example::

        settings = Settings.from_options(namespace(rate="50", kafka_bootstrap="127.0.0.1:9092"))
    """
    ns = argparse.Namespace(**{opt.dest: opt.default for opt in OPTIONS})
    for key, value in values.items():
        if not hasattr(ns, key):
            raise TypeError(f"unknown ingestload option {key!r}")
        setattr(ns, key, value)
    return ns
