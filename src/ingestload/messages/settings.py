"""What is sent: the catalogue, the topic prefix, the factory's seed and the envelope's member.

Example::

    messages = MessageSettings.from_values(read(OPTIONS, namespace, os.environ))
    catalogue = Catalogue.load(messages.catalogue)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ingestload.errors import ConfigError
from ingestload.options import Option, Values, build, declared, number, option, settings_class


def _catalogue(flag: str, value: Any) -> Path | None:
    if not value:
        return None
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{flag}: no such file {str(path)!r}")
    return path


def _topic_prefix(flag: str, value: Any) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]*", value):
        raise ConfigError(f"{flag}: {value!r} may only contain letters, digits, '.', '_' and '-'")
    return None if value is None else str(value)


def _envelope_field(flag: str, value: Any) -> str:
    name = str(value)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", name):
        raise ConfigError(f"{flag}: {name!r} must be a JSON member name like _ingestload")
    return name


_DOTTED = re.compile(r"[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*")


def dotted_path(flag: str, value: Any) -> str | None:
    """A dotted path of JSON member names (``Header.MessageId``, ``data``); empty: ``None``."""
    text = str(value).strip() if value is not None else ""
    if not text:
        return None
    if not _DOTTED.fullmatch(text):
        raise ConfigError(
            f"{flag}: {text!r} is not a dotted path of member names (e.g. Header.MessageId, data)"
        )
    return text


@settings_class
class MessageSettings:
    """What the message factory makes and where it goes."""

    catalogue: Path | None = option(
        "--catalogue",
        None,
        _catalogue,
        "Message catalogue YAML (controllers, mix, templates); default: the built-in one.",
        "PATH",
    )
    """Catalogue file; ``None`` selects the built-in catalogue."""
    topic_prefix: str | None = option(
        "--topic-prefix",
        None,
        _topic_prefix,
        "Topic name prefix (topic = prefix + message type); default: the catalogue's.",
        "PREFIX",
    )
    """Overrides the catalogue's topic prefix when set."""
    seed: int = option(
        "--seed",
        "0",
        number(int, minimum=0, what="an integer ≥ 0"),
        "Seed for the message factory; the same seed gives the same messages.",
        "INT",
    )
    """Message factory seed."""
    envelope_field: str = option(
        "--envelope-field",
        "_ingestload",
        _envelope_field,
        "JSON member that carries the envelope on the HTTP path.",
        "NAME",
    )
    """JSON member carrying the envelope on the HTTP path."""
    envelope_in: str | None = option(
        "--envelope-in",
        None,
        dotted_path,
        "Strict schemas: carry each message's identity and checksum as a UUID inside this existing "
        "string field (dotted path, e.g. Header.MessageId) instead of adding the --envelope-field "
        "member, so the message has exactly its template's fields.",
        "FIELD",
    )
    """Strict schemas: the field carrying the identity UUID; ``None``: the envelope member."""

    @classmethod
    def from_values(cls, values: Values) -> MessageSettings:
        """The settings from :func:`~ingestload.options.read`'s values of :data:`OPTIONS`."""
        return build(cls, values)


#: The message options, in the order ``--help`` shows them.
OPTIONS: tuple[Option[Any], ...] = tuple(declared(MessageSettings).values())
CATALOGUE, TOPIC_PREFIX = declared(MessageSettings)["catalogue"], declared(MessageSettings)["topic_prefix"]
#: What the servers (``ingestload api``, ``ingestload fanout``) show on their command line.
SERVER_OPTIONS: tuple[Option[Any], ...] = (CATALOGUE, TOPIC_PREFIX)
