"""Message schemas for the ingest API, derived from the catalogue's payload templates.

Seed 001's consumers rejected records whose field count was wrong. The API does the same
check earlier, at the door, and more precisely: a message of type ``T`` must have exactly
the fields of one of ``T``'s templates (the generic one or a controller override), at every
level of nesting — no field missing, none extra — plus, optionally, one envelope member at
the top level (``_ingestload`` by default) that is passed through untouched. Value types are
not checked: ``"Floor": "12"`` is as good as ``"Floor": 12``.

Example::

    schemas = Schemas.from_catalogue(Catalogue.load(), envelope_field="_ingestload")
    schemas.check("alarm", {"Header": {...}, "Param": {...}})     # None when valid
    schemas.check("alarm", {"Header": {...}})                     # "missing field Param (…)"
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingestload.messages.catalogue import Catalogue, Cell, Draw


@dataclass(frozen=True)
class Shape:
    """The field structure of one template: its keys and, for object values, their shapes."""

    keys: frozenset[str]
    """Field names at this level."""
    children: Mapping[str, Shape]
    """Shapes of the fields whose template value is an object."""
    source: str
    """Which template this is, for error messages (``alarm`` or ``KCECPUC/movementData``)."""

    @classmethod
    def of(cls, node: Mapping[str, Any], source: str) -> Shape:
        return cls(
            keys=frozenset(node),
            children={k: cls.of(v, source) for k, v in node.items() if isinstance(v, dict)},
            source=source,
        )

    def matches(self, node: Any) -> bool:
        """True when ``node`` has exactly this structure."""
        # The hot path of every request: plain loops and C-level key-set comparisons.
        if type(node) is not dict or node.keys() != self.keys:
            return False
        for key, child in self.children.items():  # noqa: SIM110 - a loop is cheaper than all(genexpr)
            if not child.matches(node[key]):
                return False
        return True

    def differences(self, node: Any, path: str = "") -> tuple[list[str], list[str], list[str]]:
        """(missing, unexpected, not-an-object) field paths of ``node`` against this shape."""
        if not isinstance(node, dict):
            return [], [], [path or "the message"]
        missing = [path + k for k in sorted(self.keys - node.keys())]
        unexpected = [path + str(k) for k in sorted(node.keys() - self.keys)]
        not_object: list[str] = []
        for key, child in self.children.items():
            if key in node:
                m, u, n = child.differences(node[key], f"{path}{key}.")
                if not isinstance(node[key], dict):
                    n = [path + key]
                missing += m
                unexpected += u
                not_object += n
        return missing, unexpected, not_object

    def structure(self) -> tuple[Any, ...]:
        """The shape as a comparable value (``source`` left out)."""
        return tuple(
            sorted((k, self.children[k].structure() if k in self.children else None) for k in self.keys)
        )

    def field_count(self) -> int:
        """Leaf fields in this shape (what seed 001's consumer counted, at every level)."""
        return sum(self.children[k].field_count() if k in self.children else 1 for k in self.keys)


class Schemas:
    """The accepted shapes of every message type of a catalogue."""

    def __init__(self, shapes: Mapping[str, list[Shape]], envelope_field: str | None) -> None:
        self.shapes = dict(shapes)
        self.envelope_field = envelope_field or None
        extra = frozenset([self.envelope_field]) if self.envelope_field else frozenset()
        # Per type: (top-level keys, the same plus the envelope member, children) of each shape.
        self._compiled = {
            msg_type: [(s.keys, s.keys | extra, tuple(s.children.items())) for s in type_shapes]
            for msg_type, type_shapes in self.shapes.items()
        }

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue, envelope_field: str | None = "_ingestload") -> Schemas:
        """One shape per distinct template of each message type that the catalogue's mix uses."""
        users: dict[int, list[Cell]] = {}
        for cell in catalogue.cells:
            users.setdefault(id(cell.template), []).append(cell)
        shapes: dict[str, list[Shape]] = {}
        for cells in users.values():
            cell = cells[0]
            # A template shared by several controllers is the generic one; a single user is
            # (most likely) a CONTROLLER/type override. Only error messages use the name.
            source = cell.msg_type if len(cells) > 1 else f"{cell.controller.name}/{cell.msg_type}"
            tree = cell.template.render(Draw(random.Random(0), cell.controller, cell.msg_type))
            shape = Shape.of(tree, source)
            known = shapes.setdefault(cell.msg_type, [])
            if all(s.structure() != shape.structure() for s in known):
                known.append(shape)
        return cls(shapes, envelope_field)

    @property
    def message_types(self) -> list[str]:
        return sorted(self.shapes)

    def check(self, msg_type: str, message: Any) -> str | None:
        """``None`` when ``message`` is a valid ``msg_type``, else what is wrong with it (one line).

        ``msg_type`` must be one of :attr:`message_types`.
        """
        if type(message) is dict:
            keys = message.keys()
            for plain, enveloped, children in self._compiled[msg_type]:
                if keys in (plain, enveloped):
                    for key, child in children:
                        if not child.matches(message[key]):
                            break
                    else:
                        return None
            envelope = self.envelope_field
            if envelope is not None and envelope in message:
                message = {k: v for k, v in message.items() if k != envelope}
        else:
            kind = "an array" if isinstance(message, list) else type(message).__name__
            if message is None:
                kind = "null"
            return f"{msg_type}: a message must be a JSON object, got {kind}"
        return self._explain(msg_type, message, self.shapes[msg_type])

    def _explain(self, msg_type: str, message: dict[str, Any], shapes: list[Shape]) -> str:
        best = min(shapes, key=lambda s: sum(len(x) for x in s.differences(message)))
        missing, unexpected, not_object = best.differences(message)
        parts = []
        if not_object:
            parts.append("not an object: " + ", ".join(not_object))
        if missing:
            parts.append("missing field" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
        if unexpected:
            parts.append("unexpected field" + ("s " if len(unexpected) > 1 else " ") + ", ".join(unexpected))
        which = f"template {best.source}" if len(shapes) > 1 else f"the {msg_type} template"
        envelope = f" plus an optional {self.envelope_field!r} member" if self.envelope_field else ""
        return (
            f"{msg_type}: {'; '.join(parts)} (expected the {best.field_count()} fields of {which}{envelope})"
        )
