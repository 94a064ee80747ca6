"""What the reference sink makes of one Kafka record: its messages, each checked against its type,
each with the key that makes writing it twice harmless.

Seed 001's handler counted a record's fields and logged "字段不符合要求" (the fields are not as
required) for the others. The reference sink does the same per message *type*: a message must be a
JSON object holding every leaf field its type's template writes (:class:`Validator`); members
beyond those (an envelope, an API's enrichment) are allowed. A form post's flat object of strings
(``"Header.MessageId": "…"``) counts too. A message that fails goes to the dead-letter table with
the reason, never silently nowhere.

The key of a row (:func:`message_key`) is the message's identity when it carries one — the
``ingestload`` Kafka header, or the envelope member in the JSON (``_ingestload``) — so that a
record read again after a restart, or the same message produced twice upstream, is one row; a
message without an identity is keyed by where it was read (topic, partition, offset, index).

Example::

    validator = Validator.of(catalogue)
    for found in split(record_value):
        problem = validator.problem(topic, found)       # None: valid
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestload.messages.catalogue import Catalogue
from ingestload.messages.envelope import RUN_ID, SIZE, VERSION, header_of

_TEXT_SIZE = 2 * SIZE


def leaf_paths(paths: Iterable[str]) -> frozenset[str]:
    """The paths among ``paths`` that no other one continues (``Header.MessageId``, not ``Header``)."""
    every = set(paths)
    return frozenset(p for p in every if not any(q.startswith(p + ".") for q in every))


def _has(message: Mapping[str, Any], path: str, parts: tuple[str, ...] | None = None) -> bool:
    """``path`` is in ``message``: a member named by the whole path (a form's flat field) or nested
    (``parts``: ``path`` split at its dots, when the caller has it already)."""
    if path in message:
        return True
    node: Any = message
    for part in path.split(".") if parts is None else parts:
        # dict first: parsed JSON is dicts, and an ABC's isinstance check costs ten times as much
        if not isinstance(node, (dict, Mapping)) or part not in node:
            return False
        node = node[part]
    return True


_Tree = tuple[frozenset[str], tuple[tuple[str, Any], ...]]
"""The members an object must have, and for those that are objects themselves, their tree."""


def _tree(paths: Iterable[tuple[str, tuple[str, ...]]]) -> _Tree:
    nested: dict[str, Any] = {}
    for _, parts in paths:
        node = nested
        for part in parts:
            node = node.setdefault(part, {})

    def freeze(node: dict[str, Any]) -> _Tree:
        return frozenset(node), tuple((name, freeze(sub)) for name, sub in node.items() if sub)

    return freeze(nested)


def _holds(node: Any, tree: _Tree) -> bool:
    """``node`` (parsed JSON) has every member of ``tree``, nested as there: a few set comparisons
    in C per object, where :func:`_has` walks each path in Python."""
    names, children = tree
    if type(node) is not dict or not node.keys() >= names:
        return False
    for name, sub in children:  # noqa: SIM110 - a loop: all() over a generator costs a third more here
        if not _holds(node[name], sub):
            return False
    return True


@dataclass(frozen=True)
class Validator:
    """Each message type's templates (its required fields), and which topic carries which type."""

    required: Mapping[str, tuple[frozenset[str], ...]]
    """Message type → the leaf fields of each template of that type (controllers may differ)."""
    topic_prefix: str
    """Topic = prefix + message type (``gov-alarm``)."""
    type_field: str = "Header.MessageType"
    """Where a message names its type, for a topic that names none."""
    _trees: Mapping[str, tuple[_Tree, ...]] = field(init=False, repr=False, compare=False)
    """:attr:`required` as trees of member names, for the sink's hot path (:func:`_holds`)."""
    _split: Mapping[str, tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]] = field(
        init=False, repr=False, compare=False
    )
    """:attr:`required` with each path split at its dots once."""

    def __post_init__(self) -> None:
        split = {
            t: tuple(tuple((p, tuple(p.split("."))) for p in sorted(shape)) for shape in shapes)
            for t, shapes in self.required.items()
        }
        object.__setattr__(self, "_split", split)
        object.__setattr__(
            self, "_trees", {t: tuple(_tree(shape) for shape in shapes) for t, shapes in split.items()}
        )

    @classmethod
    def of(cls, catalogue: Catalogue, topic_prefix: str | None = None) -> Validator:
        required: dict[str, set[frozenset[str]]] = {}
        for cell in catalogue.cells:
            required.setdefault(cell.msg_type, set()).add(leaf_paths(cell.template.paths()))
        return cls(
            {t: tuple(sorted(shapes, key=sorted)) for t, shapes in required.items()},
            catalogue.topic_prefix if topic_prefix is None else topic_prefix,
        )

    def type_of(self, topic: str, message: Mapping[str, Any]) -> str | None:
        """The message's type: from the topic's name, else from its own type field."""
        if topic.startswith(self.topic_prefix) and topic[len(self.topic_prefix) :] in self.required:
            return topic[len(self.topic_prefix) :]
        named = _at(message, self.type_field)
        return named if isinstance(named, str) and named in self.required else None

    def problem(self, topic: str, message: Any) -> str | None:
        """Why ``message`` (parsed JSON) read from ``topic`` is not valid; ``None`` when it is: it
        holds every field of one of its type's templates."""
        if not isinstance(message, (dict, Mapping)):
            return f"not a JSON object but {type(message).__name__}"
        msg_type = self.type_of(topic, message)
        if msg_type is None:
            named = _at(message, self.type_field)
            return f"no known message type (topic {topic!r}, {self.type_field} {named!r})"
        for tree in self._trees[msg_type]:
            if _holds(message, tree):
                return None
        for split in self._split[msg_type]:  # a form's flat members, other mappings
            for path, parts in split:
                if not _has(message, path, parts):
                    break
            else:
                return None
        closest: list[str] | None = None
        for shape in self.required[msg_type]:
            missing = sorted(p for p in shape if not _has(message, p))
            if not missing:
                return None
            if closest is None or len(missing) < len(closest):
                closest = missing
        assert closest is not None
        shown = ", ".join(closest[:5]) + (f" and {len(closest) - 5} more" if len(closest) > 5 else "")
        return f"{msg_type}: fields missing: {shown}"


def _at(message: Mapping[str, Any], path: str) -> Any:
    if path in message:
        return message[path]
    node: Any = message
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def split(value: bytes | None) -> tuple[list[Any], str | None]:
    """The messages of a record value — one object, or each element of an array — and, when the
    value is not JSON, why (then no message)."""
    if value is None:
        return [], "an empty record (no value)"
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        return [], f"not JSON ({str(e).split(':')[0]})"
    if isinstance(doc, list):
        return doc, None
    return [doc], None


def message_key(
    message: Any,
    headers: list[tuple[str, bytes]] | None,
    coordinates: tuple[str, int, int, int],
    envelope_field: str = "_ingestload",
    single: bool = True,
) -> str:
    """The row key of one message: ``<run>:<producer>:<seq>`` from its envelope (the Kafka header
    when the record holds this one message, else the JSON member), else
    ``<topic>/<partition>@<offset>#<i>``."""
    raw = header_of(headers) if single else None
    if raw is None or len(raw) != SIZE or raw[0] != VERSION:
        text = message.get(envelope_field) if isinstance(message, Mapping) else None
        raw = None
        if isinstance(text, str) and len(text) == _TEXT_SIZE:
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = None
        if raw is None or raw[0] != VERSION:
            topic, partition, offset, index = coordinates
            return f"{topic}/{partition}@{offset}#{index}"
    producer = int.from_bytes(raw[9:17], "big")
    seq = int.from_bytes(raw[17:25], "big")
    return f"{raw[RUN_ID].hex()}:{producer}:{seq}"
