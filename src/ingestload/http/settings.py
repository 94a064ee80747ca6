"""The HTTP path's options and settings, as a client of an ingest API: paths, batching, auth, routing.

Example::

    http = HttpSettings.from_values(read(OPTIONS, namespace, os.environ))
    path = (http.batch_path if http.batch_size > 1 else http.path).format(msgType="alarm")
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ingestload.errors import ConfigError
from ingestload.options import (
    Option,
    Values,
    as_list,
    build,
    declared,
    number,
    option,
    optional_text,
    pairs,
    path_template,
    settings_class,
)


def parse_topic_map(flag: str, value: Any) -> dict[str, str] | None:
    """``"alarm=alarms,*=events"`` → ``{"alarm": "alarms", "*": "events"}`` (``None`` stays ``None``).

    Example::

        >>> parse_topic_map("--api-topic-map", "*=ingest-all")
        {'*': 'ingest-all'}
    """
    found = pairs(flag, value, "TYPE=TOPIC[,TYPE=TOPIC…], e.g. *=ingest-all")
    if found is None:
        return None
    for _, topic in found:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic):
            raise ConfigError(f"{flag}: {topic!r} is not a topic name (letters, digits, '.', '_', '-')")
    return dict(found)


def _headers(flag: str, value: Any) -> dict[str, str]:
    headers = {}
    for line in as_list(value):
        name, sep, text = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name.strip()):
            raise ConfigError(f"{flag}: {name.strip()!r}… is not 'Name: value'")
        headers[name.strip()] = text.strip()
    return headers


def _body(flag: str, value: Any) -> str:
    body = str(value).strip().lower()
    if body not in ("json", "form"):
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected json or form")
    return body


@settings_class
class HttpSettings:
    """How the ingest API user talks to the API."""

    batch_size: int = option(
        "--api-batch-size",
        "1",
        number(int, minimum=1, what="an integer ≥ 1"),
        "Messages per HTTP request for the ingest API user (1 = single).",
        "N",
        web_ui=True,
    )
    """Messages per HTTP request (1 = the single-message endpoint)."""
    path: str = option(
        "--api-path",
        "/v1/messages/{msgType}",
        path_template,
        "Path template for one message ({msgType} is filled).",
        "PATH",
    )
    """Path template for one message."""
    batch_path: str = option(
        "--api-batch-path",
        "/v1/messages/{msgType}:batch",
        path_template,
        "Path template for a batch (a JSON array): with {msgType}, one request per message type "
        "in a take; without, one request with every type (for APIs that route each message).",
        "PATH",
    )
    """Path template for a batch."""
    topic_map: Mapping[str, str] | None = option(
        "--api-topic-map",
        None,
        parse_topic_map,
        "Where the ingest API writes each message type, as TYPE=TOPIC[,TYPE=TOPIC…] with * for every "
        "other type (e.g. *=ingest-all); default: the catalogue's topic per type. A message found "
        "elsewhere is misrouted.",
        "MAP",
    )
    """Message type (or ``*``) → the topic the ingest API writes it to; ``None``: the catalogue's."""
    headers: Mapping[str, str] = option(
        "--api-header",
        None,
        _headers,
        "An extra HTTP header 'Name: value' (repeatable); values are never shown.",
        "HEADER",
        secret=True,
        repeatable=True,
    )
    """Extra HTTP headers (values never printed)."""
    token: str | None = option(
        "--api-token",
        None,
        optional_text,
        "Bearer token for the ingest API (sent as Authorization); better from INGESTLOAD_API_TOKEN.",
        "TOKEN",
        secret=True,
    )
    """Bearer token (never printed)."""
    timeout: float = option(
        "--api-timeout",
        "30",
        number(float, minimum=0.001, what="seconds > 0"),
        "Seconds before an ingest API request counts as timed out (outcome unknown); keep it above "
        "the API's own request timeout (the reference API's: 15 s).",
        "S",
    )
    """Seconds before a request's outcome is unknown."""

    body: str = option(
        "--api-body",
        "json",
        _body,
        "How the ingest API user sends a message: json (a JSON object; an array per batch) or form "
        "(application/x-www-form-urlencoded, one field per leaf named by its dotted path, all values "
        "text, as seed 001's ab -T posted them; one message per request).",
        "json|form",
    )
    """``json`` or ``form``: the body of an ingest API request."""

    @classmethod
    def from_values(cls, values: Values) -> HttpSettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`OPTIONS`; a form body
        with batches is refused (a form carries one message)."""
        settings = build(cls, values)
        if settings.body == "form" and settings.batch_size != 1:
            raise ConfigError(
                f"--api-body form with --api-batch-size {settings.batch_size}: a form carries one "
                "message; use --api-batch-size 1 (or --api-body json for batches)"
            )
        return settings

    @property
    def batch_per_type(self) -> bool:
        """Whether a take of due messages is posted as one batch per message type (the batch path
        has ``{msgType}``) rather than one batch holding every type."""
        return "{msgType}" in self.batch_path


#: The HTTP client's options, in the order ``--help`` shows them.
OPTIONS: tuple[Option[Any], ...] = tuple(declared(HttpSettings).values())
