"""The HTTP path's reader: finds each message of the run in a record an ingest API wrote, and checks it.

An API we did not write may do many things to a message between our POST and its Kafka record:

* re-serialise it (Node.js, Go, Python's ``json.dumps``): checked in canonical form
  (:mod:`ingestload.messages.canonical`), so that this changes nothing;
* add members of its own (``receivedAt``, ``source``): *enrichment*, not corruption — members
  that no template of the catalogue writes are set aside, counted and named, and the message is
  intact if the rest checks out; a member of ours removed or changed is corruption;
* wrap it (``{"meta": {…}, "data": <message>}``): ``--message-path data`` names where it is;
  without it the reader discovers it (the first object holding an envelope, at most 4 levels
  down) and remembers the path for the next records;
* put several in one record (a JSON array, or an object holding one): each counts on its own;
* prefix it with a UTF-8 byte order mark or whitespace;
* take it as a form (``--api-body form``): it then writes a flat object of strings, which is
  what the form message's checksum is computed over (:mod:`ingestload.messages.forms`).

Where the identity is: the ``_ingestload`` member (``--envelope-field``, 82 hex digits of the
envelope), or — for strict schemas — a UUID in a field the message already has
(``--envelope-in Header.MessageId``, :mod:`ingestload.messages.identity`).

Example::

    reader = BodyReader(BodySpec(members=catalogue.member_paths()), run_id)
    for found in reader.read(record_value) or ():
        producer, seq, sent_at_us, intact, meant, enriched, body = found
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ingestload.messages import identity
from ingestload.messages.canonical import quick_checks_out, slow_checks_out
from ingestload.messages.envelope import RUN_ID, SIZE, VERSION

_BOM = b"\xef\xbb\xbf"
_TEXT_SIZE = 2 * SIZE
#: producer, seq, sent_at_us, crc, topic tag — at offset 9 of an envelope.
_TAIL = struct.Struct(">QQqII")
_crc32 = zlib.crc32
_WHITESPACE = b" \t\r\n"
#: How deep discovery looks for a wrapped message.
DISCOVERY_DEPTH = 4


@dataclass(frozen=True)
class BodySpec:
    """How messages travel on the HTTP path, as the verifier needs to know it."""

    envelope_field: str = "_ingestload"
    """The member holding the envelope (ignored with :attr:`envelope_in`)."""
    envelope_in: str | None = None
    """Strict schemas: the dotted path of the field holding the identity UUID."""
    message_path: str | None = None
    """Where the API puts the message (or an array of them) in its record; ``None``: discover."""
    members: frozenset[str] = field(default_factory=frozenset)
    """Every member path the catalogue's templates write (dotted, and form field names);
    members beyond these are enrichment."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "envelope_field": self.envelope_field,
            "envelope_in": self.envelope_in,
            "message_path": self.message_path,
            "members": sorted(self.members),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, envelope_field: str = "_ingestload") -> BodySpec:
        """Read :meth:`to_dict` output (``None``: today's defaults with ``envelope_field``)."""
        data = data or {}
        return cls(
            envelope_field=str(data.get("envelope_field") or envelope_field),
            envelope_in=data.get("envelope_in") or None,
            message_path=data.get("message_path") or None,
            members=frozenset(data.get("members") or ()),
        )

    @classmethod
    def of(
        cls,
        *,
        catalogue: Any = None,
        envelope_field: str = "_ingestload",
        envelope_in: str | None = None,
        message_path: str | None = None,
    ) -> BodySpec:
        """The spec of a run: its catalogue (file, or ``None`` for the built-in one) names our members."""
        from ingestload.messages.catalogue import Catalogue

        members: frozenset[str] = frozenset()
        # A form names a leaf by its dotted path at the top level: those names are ours too. A
        # catalogue that cannot load is reported where it is used.
        with contextlib.suppress(Exception):
            members = Catalogue.load(catalogue).member_paths()
        return cls(envelope_field, envelope_in, message_path, members)


Found = tuple[int, int, int | None, bool, int, tuple[str, ...], Any]
"""One message of the run found in a record, a plain tuple (the verifier's hot path unpacks it):

* producer, seq;
* the send time in µs from the envelope (``None`` in strict mode: the record's timestamp stands in);
* intact;
* the topic tag (32 bits; strict mode: its low 10 bits) of the topic it was meant for;
* the members the API added (paths), set aside before the check;
* the message as found, envelope removed — only when it is not intact (for the report).
"""


def _path(text: str | None) -> tuple[str, ...] | None:
    return tuple(text.split(".")) if text else None


def get_path(obj: Any, path: str, parts: tuple[str, ...]) -> tuple[dict[str, Any], str] | None:
    """(the object holding the field, its key) for a dotted ``path``: a member named by the whole path
    first (a form's flat field), else the nested member."""
    if not isinstance(obj, dict):
        return None
    if path in obj:
        return obj, path
    for part in parts[:-1]:
        obj = obj.get(part)
        if not isinstance(obj, dict):
            return None
    return (obj, parts[-1]) if parts[-1] in obj else None


def strip_unknown(
    obj: dict[str, Any], known: frozenset[str], prefix: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """``obj`` without the members whose path is not in ``known``, and those paths."""
    kept: dict[str, Any] = {}
    removed: list[str] = []
    for key, value in obj.items():
        path = prefix + key
        if path not in known:
            removed.append(path)
        elif isinstance(value, dict):
            inner, gone = strip_unknown(value, known, path + ".")
            kept[key] = inner
            removed += gone
        else:
            kept[key] = value
    return kept, removed


class BodyReader:
    """Finds and checks the run's messages in JSON record values (one per verifier; not thread-safe)."""

    def __init__(self, spec: BodySpec, run_id: str) -> None:
        self.spec = spec
        self.run_id = run_id
        self.strict = spec.envelope_in is not None
        self._field = spec.envelope_field
        self._in = spec.envelope_in or ""
        self._in_parts = _path(spec.envelope_in) or ()
        self._run_mark = identity.run_prefix(run_id)
        self.marker = identity.run_marker(run_id) if self.strict else f'"{spec.envelope_field}"'.encode()
        """Bytes every record holding one of the run's messages contains (a cheap pre-filter)."""
        self._upper = self.marker.upper() if self.strict and self.marker.upper() != self.marker else None
        """An API may write UUIDs in capitals (some .NET and Java stacks do)."""
        self._where = _path(spec.message_path)
        self._found_at: tuple[str, ...] | None = None
        """Discovery: where the last wrapped message was."""
        self.members = spec.members
        self.tag_mask = identity.TAG_MASK if self.strict else 0xFFFFFFFF
        """Mask to apply to a topic tag before comparing it with a :data:`Found`'s."""
        self._run = bytes.fromhex(run_id)

    def read(self, value: bytes | None) -> list[Found] | None:
        """The run's messages in one record value (``None``: none, the record is foreign)."""
        if not value or (self.marker not in value and (self._upper is None or self._upper not in value)):
            return None
        first = value[:1]
        if first != b"{" and first != b"[":
            if value.startswith(_BOM):
                value = value[3:]
            value = value.lstrip(_WHITESPACE)
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        if not self.strict and type(doc) is dict:
            # The usual record: one message with its envelope member. Read here, inline, as fast as
            # the single-message path before issue 17 (an API that forwards our bytes costs no more).
            text = doc.pop(self._field, None)
            if text is not None:
                one = self._member_check(doc, text)
                return None if one is None else [one]
        found = []
        for message in self._messages(doc):
            one = self._check(message)
            if one is not None:
                found.append(one)
        return found or None

    # -- where the messages are --------------------------------------------------------

    def _has_identity(self, obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        if not self.strict:
            return self._field in obj
        return get_path(obj, self._in, self._in_parts) is not None

    def _messages(self, doc: Any) -> list[Any]:
        if self._where is not None:
            return _elements(_descend(doc, self._where))
        if isinstance(doc, list):
            return doc
        if self._has_identity(doc):
            return [doc]
        if self._found_at is not None:
            inner = _elements(_descend(doc, self._found_at))
            if inner and self._has_identity(inner[0]):
                return inner
        at = self._discover(doc, (), DISCOVERY_DEPTH)
        if at is None:
            return []
        self._found_at = at
        return _elements(_descend(doc, at))

    def _discover(self, obj: Any, at: tuple[str, ...], depth: int) -> tuple[str, ...] | None:
        """The path of the first member holding a message (or an array of them), breadth first."""
        if not isinstance(obj, dict) or depth == 0:
            return None
        for key, value in obj.items():
            if self._has_identity(value) or (
                isinstance(value, list) and any(self._has_identity(v) for v in value[:8])
            ):
                return (*at, key)
        for key, value in obj.items():
            if isinstance(value, dict):
                found = self._discover(value, (*at, key), depth - 1)
                if found is not None:
                    return found
        return None

    # -- one message -----------------------------------------------------------------

    def _check(self, message: Any) -> Found | None:
        if not isinstance(message, dict):
            return None
        if self.strict:
            where = get_path(message, self._in, self._in_parts)
            if where is None:
                return None
            holder, key = where
            ident = identity.unpack(holder[key], self._run_mark)
            if ident is None:
                return None
            holder[key] = ""  # the checksum covers the message with the identity field empty
            producer, seq, meant, crc = ident
            sent_at_us: int | None = None
        else:
            return self._member_check(message, message.pop(self._field, None))
        return self._judge(message, producer, seq, sent_at_us, meant, crc)

    def _member_check(self, message: dict[str, Any], text: Any) -> Found | None:
        """A message whose envelope member (``text``, already taken out) is one of this run's."""
        if type(text) is not str or len(text) != _TEXT_SIZE:
            return None
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return None
        if raw[0] != VERSION or raw[RUN_ID] != self._run:
            return None
        producer, seq, sent_at_us, crc, meant = _TAIL.unpack_from(raw, 9)
        try:  # quick_checks_out, inline
            if _crc32(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)) == crc:
                return (producer, seq, sent_at_us, True, meant, (), None)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits: _judge asks rfc8785
            pass
        return self._judge(message, producer, seq, sent_at_us, meant, crc)

    def _judge(
        self, message: dict[str, Any], producer: int, seq: int, sent_at_us: int | None, meant: int, crc: int
    ) -> Found:
        """Intact (maybe enriched) or corrupted."""
        # The quick checks first (what forwarding, Node/Go and enriching APIs write passes them), then
        # RFC 8785 proper: an enriched message costs one orjson pass more, not an rfc8785 call.
        if quick_checks_out(message, crc):
            return (producer, seq, sent_at_us, True, meant, (), None)
        members = self.members
        # Most APIs enrich at the top: try that alone before walking the whole message.
        added = [key for key in message if key not in members] if members else []
        if added:
            kept = {key: value for key, value in message.items() if key in members}
            if quick_checks_out(kept, crc):
                return (producer, seq, sent_at_us, True, meant, tuple(added), None)
        kept, added = strip_unknown(message, members) if members else (message, [])
        if added and quick_checks_out(kept, crc):
            return (producer, seq, sent_at_us, True, meant, tuple(added), None)
        if slow_checks_out(message, crc):
            return (producer, seq, sent_at_us, True, meant, (), None)
        if added and slow_checks_out(kept, crc):
            return (producer, seq, sent_at_us, True, meant, tuple(added), None)
        return (producer, seq, sent_at_us, False, meant, (), message)


def _descend(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _elements(obj: Any) -> list[Any]:
    if isinstance(obj, list):
        return obj
    return [obj] if isinstance(obj, dict) else []
