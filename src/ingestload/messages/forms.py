"""Messages as HTML form fields (``--api-body form``), as seed 001's ``ab -T`` sent them.

A form has no nesting and no types: every field is a name and a string. A message becomes one
field per leaf, named by its path (``Header.MessageId``, ``Param.Floor``), with its value as
text — strings as they are, numbers as RFC 8785 prints them (``59``, ``3.25``), ``true`` /
``false``, ``null`` as an empty string, a list as its canonical JSON. An API that writes
``json.dumps(request.form)`` (seed 001's Flask endpoint) therefore writes a flat JSON object of
strings, and the checksum of the form message is the canonical checksum of exactly that object
(:func:`ingestload.messages.canonical.canonical_checksum` of :func:`flatten`'s result), which the
verifier checks like any other JSON message.

Example::

    >>> flatten({"Header": {"MessageId": "x"}, "Param": {"Floor": 3, "SpeedMps": 1.0, "Active": True}})
    {'Header.MessageId': 'x', 'Param.Floor': '3', 'Param.SpeedMps': '1', 'Param.Active': 'true'}
"""

from __future__ import annotations

from typing import Any

from ingestload.messages.canonical import canonical


def text_of(value: Any) -> str:
    """One leaf as form text."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return canonical(value).decode()


def flatten(message: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The form fields of a JSON object: one per leaf, named by its dotted path."""
    fields: dict[str, str] = {}
    for key, value in message.items():
        name = prefix + key
        if isinstance(value, dict) and value:
            fields.update(flatten(value, name + "."))
        else:
            fields[name] = text_of(value)
    return fields
