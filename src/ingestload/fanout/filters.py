"""Subscription filters: keep the messages whose field, at a dotted path, has one of some values.

On the wire: ``{"field": "Header.ControllerType", "in": ["LCE", "GCE"]}``. The field is a
path of object members into the message JSON; a message matches when the value there is
equal to one of ``in`` (JSON scalars: strings, numbers, booleans, null — ``1`` does not match
``true``). A message without the field, or that is not JSON, does not match.

Example::

    >>> f = FieldFilter.from_json({"field": "Header.ControllerType", "in": ["LCE"]})
    >>> f.matches({"Header": {"ControllerType": "LCE"}}), f.matches({"Header": {}})
    (True, False)
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: Most values one filter may list.
MAX_VALUES = 10_000
_MISSING = object()


def _key(value: Any) -> tuple[str, Any] | None:
    """A hashable key that keeps JSON's types apart (``True`` is not ``1``); ``None`` for non-scalars."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null", None)
    return None


class FieldFilter(NamedTuple):
    """Messages whose field at ``path`` equals one of ``values``."""

    path: tuple[str, ...]
    """Member names from the top of the message JSON, e.g. ``("Header", "ControllerType")``."""
    values: tuple[Any, ...]
    """The accepted values (JSON scalars), sorted by their text, without repeats."""

    @property
    def field(self) -> str:
        """The path as written on the wire, e.g. ``Header.ControllerType``."""
        return ".".join(self.path)

    @classmethod
    def from_json(cls, data: Any) -> FieldFilter:
        """Parse the wire form; a ``ProtocolError`` says what is wrong with it."""
        from ingestload.fanout.errors import ProtocolError

        if not isinstance(data, dict) or set(data) != {"field", "in"}:
            raise ProtocolError(
                "invalid_filter",
                f'a filter is {{"field": "Header.ControllerType", "in": ["LCE", …]}}; got {str(data)[:200]}',
            )
        field, values = data["field"], data["in"]
        if not isinstance(field, str) or not field or any(not part for part in field.split(".")):
            raise ProtocolError(
                "invalid_filter",
                f"'field' must be a dotted path such as Header.ControllerType, got {field!r}",
            )
        if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
            raise ProtocolError(
                "invalid_filter", f"'in' must be a list of 1 to {MAX_VALUES:,} values to match"
            )
        keys = {}
        for value in values:
            key = _key(value)
            if key is None:
                raise ProtocolError(
                    "invalid_filter", f"'in' may hold strings, numbers, booleans or null, not {value!r}"
                )
            keys[key] = value
        ordered = tuple(keys[k] for k in sorted(keys, key=repr))
        return cls(tuple(field.split(".")), ordered)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "in": list(self.values)}

    def keys(self) -> frozenset[tuple[str, Any]]:
        """The accepted values as type-aware keys (see :func:`value_key`)."""
        return frozenset(k for k in map(_key, self.values) if k is not None)

    def matches(self, message: Any) -> bool:
        """True when ``message`` (parsed JSON) has one of the values at the path."""
        return value_key(extract(message, self.path)) in self.keys()


def extract(message: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` in parsed JSON, or a private sentinel when it is not there."""
    node = message
    for name in path:
        if not isinstance(node, dict):
            return _MISSING
        node = node.get(name, _MISSING)
        if node is _MISSING:
            return _MISSING
    return node


def value_key(value: Any) -> tuple[str, Any] | None:
    """The type-aware key of an extracted value (``None`` when missing or not a scalar)."""
    if value is _MISSING:
        return None
    return _key(value)
