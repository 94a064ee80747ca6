"""One typed settings object for a Locust process or ``ingestload run/verify``: a composition of
the features' own settings, each built from the options its feature declares.

Every option has a command-line flag and an ``INGESTLOAD_…`` environment variable (for a
repeatable option, one item per line; its command-line items come after them). Values arrive
as text (from the CLI, the environment, a ``locust.conf`` or the web UI) and are validated up
front, where each option is declared (:mod:`ingestload.options` reads them), so that a bad value
stops the run before any load starts with a one-line error naming the option, the value and
what is allowed. The options themselves: ``docs/options.md`` (``make docs``).

Example::

    settings = Settings.from_options(environment.parsed_options)
    producer = Producer(settings.kafka.producer_config(client_id="me"))
    settings.rate.target, settings.verify.thresholds, settings.run.drain_timeout
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from ingestload import options as opts
from ingestload.errors import ConfigError
from ingestload.fanout import settings as fanout
from ingestload.fanout.settings import SubscriberSettings
from ingestload.http import settings as http
from ingestload.http.settings import HttpSettings
from ingestload.kafka import settings as kafka
from ingestload.kafka.settings import KafkaSettings
from ingestload.messages import settings as messages
from ingestload.messages.catalogue import Catalogue, routed_topic
from ingestload.messages.settings import MessageSettings
from ingestload.options import Option, Values, boolean, number, option, settings_class
from ingestload.rate import settings as rate
from ingestload.rate.settings import RateSettings
from ingestload.sink import settings as sink
from ingestload.sink.settings import SinkSettings
from ingestload.verify import settings as verify
from ingestload.verify.body import BodySpec
from ingestload.verify.settings import VerifySettings


def _run_id(flag: str, value: Any) -> str | None:
    if value is None:
        return None
    run_id = str(value).lower()
    if not re.fullmatch(r"[0-9a-f]{16}", run_id):
        raise ConfigError(f"{flag}: {value!r} must be exactly 16 hex digits (e.g. 5f3a9c0b12d4e6f7)")
    return run_id


@settings_class
class RunSettings:
    """What belongs to the run as a whole: its id, status lines, the drain, GC, topic creation."""

    gc_threshold: int = option(
        "--gc-threshold",
        "50000",
        number(int, minimum=0, what="an integer ≥ 0 (0 = Python's)"),
        "Python's generation-0 GC threshold in processes that send (Python's default: 700); "
        "at 100k+ msg/s collections cost a sixth of the throughput. 0 = leave Python's GC alone.",
        "N",
    )
    """Python's generation-0 GC threshold in sending processes (0 = Python's own)."""
    create_topics: bool = option(
        "--create-topics", "true", boolean, "Create missing topics before the run (true/false).", "BOOL"
    )
    """Create missing topics at start."""
    status_interval: float = option(
        "--status-interval",
        "5",
        number(float, minimum=0, what="seconds ≥ 0"),
        "Seconds between status lines in headless mode; 0 = off.",
        "SECONDS",
    )
    """Seconds between status lines (0 = off)."""
    drain_timeout: float = option(
        "--drain-timeout",
        "45",
        number(float, minimum=0, what="seconds ≥ 0"),
        "Seconds to wait at stop for in-flight messages to be acknowledged.",
        "SECONDS",
    )
    """Seconds to wait at stop for in-flight messages."""
    run_id: str | None = option(
        "--run-id",
        None,
        _run_id,
        "Run id stamped on every message (16 hex digits); default: random per test.",
        "HEX",
        web_ui=True,
    )
    """Fixed run id (16 hex digits) or ``None`` for a random one per test."""

    @classmethod
    def from_values(cls, values: Values) -> RunSettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`RUN_OPTIONS`."""
        return opts.build(cls, values)


#: The run-level options, in the order ``--help`` shows them.
RUN_OPTIONS: tuple[Option[Any], ...] = tuple(opts.declared(RunSettings).values())
DRAIN_TIMEOUT = opts.declared(RunSettings)["drain_timeout"]

#: Every option of the Locust plugin and ``ingestload run``, by feature, in the order ``--help`` shows.
SECTIONS: tuple[tuple[str, tuple[Option[Any], ...]], ...] = (
    ("Kafka connection", kafka.OPTIONS),
    ("Rate", rate.OPTIONS),
    ("Messages and catalogue", messages.OPTIONS),
    ("Run", RUN_OPTIONS),
    ("Verification", verify.OPTIONS),
    ("HTTP path (the ingest API user)", http.OPTIONS),
    ("Subscribers and the fan-out verdict", fanout.OPTIONS),
    ("The storage hop (Kafka → database)", sink.OPTIONS),
)
OPTIONS: tuple[Option[Any], ...] = tuple(opt for _, section in SECTIONS for opt in section)


def add_arguments(parser: Any) -> None:
    """Register every ingestload option on a Locust (configargparse) parser."""
    opts.add_locust_arguments(parser, OPTIONS)


@settings_class
class Settings:
    """Validated ingestload settings for one process: one object per feature."""

    kafka: KafkaSettings
    """Where Kafka is and how to talk to it."""
    messages: MessageSettings
    """Catalogue, topic prefix, seed, envelope member."""
    rate: RateSettings
    """Target or profile, split, lateness, the rate guard."""
    run: RunSettings
    """Run id, status lines, drain timeout, GC, topic creation."""
    verify: VerifySettings
    """Verification on or off, thresholds, verdict and ledger files."""
    http: HttpSettings
    """The ingest API user's paths, batching, auth and routing."""
    fanout: SubscriberSettings
    """The subscriber users and the fan-out verdict."""
    sink: SinkSettings
    """The storage hop: the sink's database, table and consumer group."""

    @classmethod
    def from_options(
        cls, options: Any, environ: Mapping[str, str] | None = None, *, embedded: bool = False
    ) -> Settings:
        """Build and validate settings from Locust's ``parsed_options`` (or any namespace).

        Attributes that are missing (or ``None``) fall back to their ``INGESTLOAD_<NAME>``
        variable, then to the defaults (:func:`ingestload.options.read`) — so the plain parsers
        of ``ingestload run`` and ``verify`` honour the same variables as Locust's; ``environ``
        also supplies ``INGESTLOAD_KAFKA_PROP_*`` properties (default: ``os.environ``). With
        ``embedded``, no bootstrap given means the embedded broker
        (:data:`~ingestload.kafka.settings.EMBEDDED`).
        """
        environ = os.environ if environ is None else environ
        values = opts.read(OPTIONS, options, environ)
        subscribers = SubscriberSettings.from_values(values)
        rates = RateSettings.from_values(values)
        if subscribers.profile is not None and rates.profile is not None:
            raise ConfigError(
                f"--ws-subscriber-profile {subscribers.profile} and --rate-profile "
                f"{values.text(rate.PROFILE)}: give only one "
                "(with subscribers ramping, the message rate is --rate)"
            )
        return cls(
            kafka=KafkaSettings.from_values(values, environ, embedded=embedded),
            messages=MessageSettings.from_values(values),
            rate=rates,
            run=RunSettings.from_values(values),
            verify=VerifySettings.from_values(values),
            http=HttpSettings.from_values(values),
            fanout=subscribers,
            sink=SinkSettings.from_values(values),
        )

    @classmethod
    def defaults(cls) -> Settings:
        """Every option at its default (no command line, no environment)."""
        return cls.from_options(None, environ={})

    def body_spec(self) -> BodySpec:
        """How messages travel through the ingest API, for the verifier (:mod:`ingestload.verify.body`)."""
        return BodySpec.of(
            catalogue=self.messages.catalogue,
            envelope_field=self.messages.envelope_field,
            envelope_in=self.messages.envelope_in,
            message_path=self.verify.message_path,
        )

    def for_run(self, run_id: str) -> Settings:
        """These settings for one test run: ``{run_id}`` in ``--verdict-file`` and ``--ledger-file``
        replaced, so that every test of a web UI session writes its own files.

        Example::

            >>> settings = Settings.from_options(namespace(verdict_file="reports/{run_id}/verdict.json"))
            >>> settings.for_run("5f3a9c0b12d4e6f7").verify.verdict_file
            'reports/5f3a9c0b12d4e6f7/verdict.json'
        """
        return replace(self, verify=self.verify.for_run(run_id))

    def topics(self, catalogue: Catalogue, paths: Iterable[str] = ("kafka", "api")) -> list[str]:
        """The topics a run reads: the catalogue's topic per message type for the Kafka path, and
        where the ingest API writes each type (``--api-topic-map``) for the HTTP path."""
        found: set[str] = set()
        for msg_type in catalogue.message_types:
            own = catalogue.topic(msg_type, self.messages.topic_prefix)
            if "kafka" in paths:
                found.add(own)
            if "api" in paths:
                found.add(routed_topic(self.http.topic_map, msg_type, own))
        return sorted(found)

    def describe(self) -> str:
        """A one-line, secret-free summary for logs."""
        props = self.kafka.shown_properties()
        prefix = self.messages.topic_prefix
        return (
            f"kafka={self.kafka.shown_bootstrap} rate={self.rate.describe()} "
            f"catalogue={self.messages.catalogue or 'built-in'}"
            + (f" topic_prefix={prefix}" if prefix is not None else "")
            + (f" kafka_config=[{props}]" if props else "")
            + (f" api_batch_size={self.http.batch_size}" if self.http.batch_size != 1 else "")
        )


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
