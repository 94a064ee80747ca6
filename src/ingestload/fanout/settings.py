"""The subscribers' options and settings (the run side of the last hop): gateway, subscription, verdict.

The gateway's own options (``ingestload fanout``) are in :mod:`ingestload.fanout.config`.

Example::

    subscribers = SubscriberSettings.from_values(read(OPTIONS, namespace, os.environ))
    judge(ledgers, expected, subscribers.thresholds)
"""

from __future__ import annotations

import re
from typing import Any

from ingestload.errors import ConfigError
from ingestload.fanout.errors import FanoutError
from ingestload.fanout.filters import FieldFilter
from ingestload.fanout.verdict import FanoutThresholds
from ingestload.options import (
    Option,
    Values,
    build,
    declared,
    number,
    option,
    positive_duration,
    settings_class,
    topic_list,
)


def parse_ws_filter(flag: str, value: Any) -> FieldFilter | None:
    """``"Header.ControllerType=LCE,GCE"`` → a :class:`~ingestload.fanout.filters.FieldFilter` (text
    values; ``None`` or empty stays ``None``).

    Example::

        >>> parse_ws_filter("--ws-filter", "Header.ControllerType=LCE,GCE").to_json()
        {'field': 'Header.ControllerType', 'in': ['GCE', 'LCE']}
    """
    if value is None or not str(value).strip():
        return None
    whole = str(value).strip()
    field_name, sep, values = whole.partition("=")
    chosen = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not chosen:
        raise ConfigError(f"{flag}: {whole!r} is not FIELD=V1,V2…, e.g. Header.ControllerType=LCE,GCE")
    try:
        return FieldFilter.from_json({"field": field_name.strip(), "in": chosen})
    except FanoutError as e:
        raise ConfigError(f"{flag}: {whole!r}: {e}") from None


def _ws_url(flag: str, value: Any) -> str:
    url = str(value).strip()
    if not re.fullmatch(r"ws://[^\s/]+(/\S*)?", url):
        raise ConfigError(f"{flag}: {url!r} must be a ws:// URL, e.g. ws://127.0.0.1:8765/v1/stream")
    return url


def _profile(flag: str, value: Any) -> str | None:
    return str(value).strip() if value else None


def _p99_ms(flag: str, value: Any) -> float | None:
    seconds = positive_duration(flag, value)
    return None if seconds is None else seconds * 1000


_COUNT = number(int, minimum=0, what="an integer ≥ 0")


@settings_class
class SubscriberSettings:
    """What the subscriber users connect to and subscribe to, and how the fan-out verdict judges."""

    url: str = option(
        "--ws-url",
        "ws://127.0.0.1:8765/v1/stream",
        _ws_url,
        "The fan-out gateway's WebSocket URL that WebSocketSubscriberUser connects to.",
        "URL",
    )
    """The fan-out gateway subscribers connect to."""
    topics: tuple[str, ...] | None = option(
        "--ws-topics",
        None,
        topic_list("topic names, e.g. gov-alarm,gov-fault"),
        "Topics every subscriber subscribes to, comma-separated; default: the run's topics "
        "(the catalogue's, with --topic-prefix).",
        "T1,T2",
    )
    """Topics of every subscriber; ``None``: the run's topics."""
    filter: FieldFilter | None = option(
        "--ws-filter",
        None,
        parse_ws_filter,
        "Subscribers receive only messages whose field has one of these values, as FIELD=V1,V2 "
        "(e.g. Header.ControllerType=LCE,GCE); default: every message of the topics.",
        "FIELD=VALUES",
    )
    """Subscribers' filter; ``None``: every message of their topics."""
    reconnect_every: float | None = option(
        "--ws-reconnect-every",
        None,
        positive_duration,
        "Connection churn: each subscriber ends its subscription cleanly and reconnects this often "
        "(e.g. 20s); default: one connection for the whole run.",
        "DURATION",
    )
    """Seconds between a subscriber's clean reconnects (churn); ``None``: never."""
    profile: str | None = option(
        "--ws-subscriber-profile",
        None,
        _profile,
        "A profile YAML (the rate profile's stages) whose values are subscribers: ramps the users of "
        "the subscriber classes while the message rate follows --rate; the run ends with it.",
        "PATH",
    )
    """Profile file whose values are subscribers (``SubscriberShape``)."""
    max_missed: int = option(
        "--max-missed", "0", _COUNT, "Fan-out deliveries missed (all subscribers) tolerated before FAIL.", "N"
    )
    """Missed deliveries tolerated."""
    max_duplicated: int = option(
        "--max-fanout-duplicated", "0", _COUNT, "Duplicate fan-out deliveries tolerated before FAIL.", "N"
    )
    """Duplicate deliveries tolerated."""
    max_out_of_order: int = option(
        "--max-fanout-out-of-order",
        "0",
        _COUNT,
        "Fan-out deliveries out of order tolerated before FAIL.",
        "N",
    )
    """Out-of-order first arrivals tolerated."""
    max_unexpected: int = option(
        "--max-fanout-unexpected",
        "0",
        _COUNT,
        "Deliveries outside a subscription (another filter value, topic or window) tolerated before FAIL.",
        "N",
    )
    """Deliveries outside a subscription tolerated."""
    max_p99_ms: float | None = option(
        "--max-fanout-p99",
        None,
        _p99_ms,
        "Highest acceptable fan-out latency p99 over all subscribers (e.g. 500ms); default: not judged.",
        "DURATION",
    )
    """Highest acceptable latency p99 in ms; ``None``: not judged."""

    @classmethod
    def from_values(cls, values: Values) -> SubscriberSettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`OPTIONS`."""
        return build(cls, values)

    @property
    def thresholds(self) -> FanoutThresholds:
        """Missed, duplicated, out-of-order and unexpected deliveries tolerated, and the latency p99,
        as the fan-out verdict takes them."""
        return FanoutThresholds(
            max_missed=self.max_missed,
            max_duplicated=self.max_duplicated,
            max_out_of_order=self.max_out_of_order,
            max_unexpected=self.max_unexpected,
            max_p99_ms=self.max_p99_ms,
        )


#: The subscribers' options, in the order ``--help`` shows them.
OPTIONS: tuple[Option[Any], ...] = tuple(declared(SubscriberSettings).values())
