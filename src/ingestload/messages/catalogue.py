"""The message catalogue: controller types, message types, the mix, payload templates.

A catalogue is a YAML file (the built-in one is ``mocks/catalogue.yaml``)::

    version: 1
    topic_prefix: gov-                 # topic = prefix + message type
    controllers:
      LCE: {equipment_prefix: LCE, floors: 40}
    message_types: [alarm, fault]
    mix:                               # percent of all messages; must add up to 100
      LCE: {alarm: 60, fault: 40}
    templates:                         # one per message type; "CONTROLLER/type" overrides
      alarm:
        Param: {Timestamp: $timestamp, Code: $int(100, 999)}

Template values that start with ``$`` are generators (``$$`` is a literal ``$``);
:data:`GENERATORS` lists them. ``$timestamp`` is stamped when the message is sent, as
ISO-8601 UTC with milliseconds (``2024-08-09T12:34:56.789Z``); every other generator is
drawn from a seeded random source when the factory is built.

Example::

    catalogue = Catalogue.load("mocks/catalogue.yaml")
    catalogue.calculate("LCE", "alarm", total=10_000)   # seed 000's Percentage.calculate
"""

from __future__ import annotations

import difflib
import math
import random
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ingestload.errors import CatalogueError

#: Stands for the send-time timestamp inside pre-rendered payloads (a private-use character
#: pair that orjson writes raw, so the rendered bytes can be split around it).
TIMESTAMP_SENTINEL = "\ue000ts\ue000"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_PREFIX = re.compile(r"[A-Za-z0-9._-]*\Z")
_GENERATOR = re.compile(r"\$([a-z_]+)(?:\((.*)\))?\Z", re.DOTALL)
_PERCENT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Controller:
    """A controller type that emits messages."""

    name: str
    """Short code, e.g. ``LCE``."""
    equipment_prefix: str
    """Prefix of generated equipment ids (``$equipment_id``)."""
    floors: int
    """Highest floor served (``$floor``)."""
    description: str
    """Free text for people."""


@dataclass(frozen=True)
class Draw:
    """What a generator may use: the seeded random source and the cell it renders for."""

    rng: random.Random
    controller: Controller
    msg_type: str


Generator = Callable[[Draw], Any]


def _no_args(name: str, fn: Generator) -> Callable[[list[str]], Generator]:
    def build(args: list[str]) -> Generator:
        if args:
            raise ValueError(f"${name} takes no arguments")
        return fn

    return build


def _int_gen(args: list[str]) -> Generator:
    if len(args) != 2:
        raise ValueError("$int takes two arguments: $int(LOW, HIGH)")
    low, high = (int(a) for a in args)
    if low > high:
        raise ValueError(f"$int({low}, {high}): LOW must not exceed HIGH")
    return lambda d: d.rng.randint(low, high)


def _float_gen(args: list[str]) -> Generator:
    if len(args) not in (2, 3):
        raise ValueError("$float takes two or three arguments: $float(LOW, HIGH[, DIGITS])")
    low, high = float(args[0]), float(args[1])
    digits = int(args[2]) if len(args) == 3 else 2
    if low > high or not 0 <= digits <= 9:
        raise ValueError("$float(LOW, HIGH, DIGITS) needs LOW ≤ HIGH and 0 ≤ DIGITS ≤ 9")
    return lambda d: round(d.rng.uniform(low, high), digits)


def _choice_gen(args: list[str]) -> Generator:
    if not args or not all(args):
        raise ValueError("$choice takes one or more non-empty values: $choice(A, B, C)")
    options = tuple(args)
    return lambda d: d.rng.choice(options)


def _hex_gen(args: list[str]) -> Generator:
    n = int(args[0]) if len(args) == 1 else -1
    if not 1 <= n <= 64:
        raise ValueError("$hex takes one argument between 1 and 64: $hex(N)")
    return lambda d: f"{d.rng.getrandbits(4 * n):0{n}x}"


def _digits_gen(args: list[str]) -> Generator:
    n = int(args[0]) if len(args) == 1 else -1
    if not 1 <= n <= 32:
        raise ValueError("$digits takes one argument between 1 and 32: $digits(N)")
    return lambda d: "".join(d.rng.choice("0123456789") for _ in range(n))


#: Generator name → (builder from the text arguments, usage shown in errors).
GENERATORS: Mapping[str, tuple[Callable[[list[str]], Generator], str]] = {
    "timestamp": (_no_args("timestamp", lambda d: TIMESTAMP_SENTINEL), "$timestamp"),
    "controller": (_no_args("controller", lambda d: d.controller.name), "$controller"),
    "msg_type": (_no_args("msg_type", lambda d: d.msg_type), "$msg_type"),
    "uuid": (_no_args("uuid", lambda d: str(uuid.UUID(int=d.rng.getrandbits(128), version=4))), "$uuid"),
    "bool": (_no_args("bool", lambda d: d.rng.random() < 0.5), "$bool"),
    "equipment_id": (
        _no_args(
            "equipment_id", lambda d: f"{d.controller.equipment_prefix}-{d.rng.randrange(10**7, 10**8)}"
        ),
        "$equipment_id",
    ),
    "floor": (_no_args("floor", lambda d: d.rng.randint(1, d.controller.floors)), "$floor"),
    "int": (_int_gen, "$int(LOW, HIGH)"),
    "float": (_float_gen, "$float(LOW, HIGH[, DIGITS])"),
    "choice": (_choice_gen, "$choice(A, B, …)"),
    "hex": (_hex_gen, "$hex(N)"),
    "digits": (_digits_gen, "$digits(N)"),
}


class Template:
    """A compiled payload template: a JSON-like tree whose leaves may be generators."""

    def __init__(self, tree: Any, *, has_timestamp: bool) -> None:
        self._tree = tree
        self.has_timestamp = has_timestamp

    def render(self, draw: Draw) -> Any:
        """A new payload object; ``$timestamp`` leaves hold :data:`TIMESTAMP_SENTINEL`."""
        return _render(self._tree, draw)

    def paths(self) -> set[str]:
        """Every member this template writes, as dotted paths (``Header``, ``Header.MessageId``)."""
        return set(_paths(self._tree, ""))


class _Gen:
    __slots__ = ("fn",)

    def __init__(self, fn: Generator) -> None:
        self.fn = fn


def _paths(node: Any, prefix: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield prefix + str(key)
            yield from _paths(value, f"{prefix}{key}.")


def _render(node: Any, draw: Draw) -> Any:
    if isinstance(node, _Gen):
        return node.fn(draw)
    if isinstance(node, dict):
        return {k: _render(v, draw) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, draw) for v in node]
    return node


@dataclass(frozen=True)
class Cell:
    """One (controller, message type) entry of the mix with a non-zero share."""

    controller: Controller
    msg_type: str
    percent: float
    """Share of all messages, in percent."""
    template: Template


class Catalogue:
    """A validated catalogue; build it with :meth:`load` or :meth:`from_mapping`."""

    def __init__(
        self,
        *,
        source: str,
        topic_prefix: str,
        controllers: Mapping[str, Controller],
        message_types: tuple[str, ...],
        cells: tuple[Cell, ...],
    ) -> None:
        self.source = source
        self.topic_prefix = topic_prefix
        self.controllers = dict(controllers)
        self.message_types = message_types
        self.cells = cells

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalogue:
        """Load and validate a catalogue file (default: the built-in catalogue)."""
        path = Path(path) if path is not None else default_catalogue_path()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise CatalogueError(f"{path}: cannot read catalogue: {e.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise CatalogueError(f"{path}{where}: not valid YAML: {problem}") from None
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<catalogue>") -> Catalogue:
        """Validate a parsed catalogue; every problem names the file, the entry and the fix."""
        return _Validator(source).catalogue(data)

    def topic(self, msg_type: str, prefix: str | None = None) -> str:
        """The topic that carries ``msg_type`` (``gov-alarm`` for the built-in catalogue)."""
        return (self.topic_prefix if prefix is None else prefix) + msg_type

    def topics(self, prefix: str | None = None) -> list[str]:
        """Every topic that messages of this catalogue can go to."""
        return sorted({self.topic(c.msg_type, prefix) for c in self.cells})

    def counts(self, total: int) -> dict[tuple[str, str], int]:
        """Split ``total`` messages over the cells exactly (largest remainder), summing to ``total``."""
        if total < 0:
            raise ValueError("total must be ≥ 0")
        exact = [c.percent * total / 100.0 for c in self.cells]
        floors = [math.floor(x) for x in exact]
        short = total - sum(floors)
        # Hand the remaining units to the largest remainders; ties go to the earlier cell.
        order = sorted(range(len(exact)), key=lambda i: (floors[i] - exact[i], i))
        for i in order[:short]:
            floors[i] += 1
        return {(c.controller.name, c.msg_type): n for c, n in zip(self.cells, floors, strict=True)}

    def member_paths(self) -> frozenset[str]:
        """Every member any template writes, as dotted paths: what an API may not remove, and
        beyond which whatever it adds is enrichment."""
        return frozenset(path for cell in self.cells for path in cell.template.paths())

    def type_shares(self) -> dict[str, float]:
        """Each message type's share of all messages (0…1, summing to 1)."""
        shares: dict[str, float] = {}
        for cell in self.cells:
            shares[cell.msg_type] = shares.get(cell.msg_type, 0.0) + cell.percent / 100.0
        return shares

    def calculate(self, controller: str, msg_type: str, total: int) -> int:
        """How many of ``total`` messages are ``controller``/``msg_type`` (0 when not in the mix)."""
        return self.counts(total).get((controller, msg_type), 0)


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> CatalogueError:
        return CatalogueError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {type(value).__name__}")
        return value

    def known(self, name: Any, known: Any, where: str, kind: str) -> str:
        if name in known:
            return str(name)
        hint = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"known {kind}s: {', '.join(map(str, known))}"
        raise self.fail(where, f"unknown {kind} {name!r}; {fix}")

    def catalogue(self, data: Any) -> Catalogue:
        top = self.mapping(data, "top level")
        allowed = {"version", "topic_prefix", "controllers", "message_types", "mix", "templates"}
        for key in top:
            if key not in allowed:
                self.known(key, sorted(allowed), "top level", "key")
        for key in ("controllers", "message_types", "mix", "templates"):
            if key not in top:
                raise self.fail("top level", f"missing {key!r}; see mocks/catalogue.yaml for the layout")
        if top.get("version", 1) != 1:
            raise self.fail("version", f"{top['version']!r} is not supported; use version: 1")

        prefix = top.get("topic_prefix", "")
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise self.fail("topic_prefix", f"{prefix!r} may only contain letters, digits, '.', '_' and '-'")

        controllers = self.controllers(top["controllers"])
        types = self.message_types(top["message_types"])
        templates = self.templates(top["templates"], controllers, types)
        cells = self.mix(top["mix"], controllers, types, templates)
        return Catalogue(
            source=self.source, topic_prefix=prefix, controllers=controllers, message_types=types, cells=cells
        )

    def controllers(self, value: Any) -> dict[str, Controller]:
        if isinstance(value, list):
            value = {name: {} for name in value}
        entries = self.mapping(value, "controllers")
        if not entries:
            raise self.fail("controllers", "empty; list at least one controller type")
        result = {}
        for name, attrs in entries.items():
            where = f"controllers.{name}"
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail(where, "a controller name must be a word (letters, digits, '_')")
            attrs = self.mapping(attrs or {}, where)
            for key in attrs:
                self.known(key, ["equipment_prefix", "floors", "description"], where, "attribute")
            floors = attrs.get("floors", 20)
            if not isinstance(floors, int) or isinstance(floors, bool) or floors < 1:
                raise self.fail(f"{where}.floors", f"{floors!r} must be an integer ≥ 1")
            result[name] = Controller(
                name=name,
                equipment_prefix=str(attrs.get("equipment_prefix", name)),
                floors=floors,
                description=str(attrs.get("description", "")),
            )
        return result

    def message_types(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("message_types", "expected a non-empty list, e.g. [alarm, fault]")
        for name in value:
            if not isinstance(name, str) or not _NAME.match(name):
                raise self.fail("message_types", f"{name!r} must be a word (it becomes part of a topic name)")
        if len(set(value)) != len(value):
            raise self.fail("message_types", "lists a message type twice")
        return tuple(value)

    def templates(
        self, value: Any, controllers: dict[str, Controller], types: tuple[str, ...]
    ) -> dict[tuple[str | None, str], Template]:
        entries = self.mapping(value, "templates")
        result: dict[tuple[str | None, str], Template] = {}
        for key, tree in entries.items():
            where = f"templates.{key}"
            controller: str | None = None
            msg_type = str(key)
            if "/" in msg_type:
                controller, msg_type = msg_type.split("/", 1)
                self.known(controller, list(controllers), where, "controller")
            self.known(msg_type, types, where, "message type")
            if not isinstance(tree, dict):
                raise self.fail(where, "a template must be a mapping (the JSON object to send)")
            found: list[bool] = []
            compiled = self.compile(tree, where, found)
            result[(controller, msg_type)] = Template(compiled, has_timestamp=bool(found))
        return result

    def compile(self, node: Any, where: str, found: list[bool]) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if not isinstance(k, str):
                    raise self.fail(where, f"key {k!r} must be text")
                out[k] = self.compile(v, f"{where}.{k}", found)
            return out
        if isinstance(node, list):
            return [self.compile(v, f"{where}[{i}]", found) for i, v in enumerate(node)]
        if isinstance(node, str) and node.startswith("$$"):
            return node[1:]
        if isinstance(node, str) and node.startswith("$"):
            match = _GENERATOR.match(node)
            name = match.group(1) if match else node[1:].split("(")[0]
            if match is None or name not in GENERATORS:
                hint = difflib.get_close_matches(name, list(GENERATORS), n=1)
                fix = (
                    f"did you mean {GENERATORS[hint[0]][1]}?"
                    if hint
                    else "known: " + ", ".join(usage for _, usage in GENERATORS.values())
                )
                raise self.fail(where, f"unknown generator {node!r}; {fix} (write $$ for a literal $)")
            args = [a.strip() for a in match.group(2).split(",")] if match.group(2) is not None else []
            try:
                fn = GENERATORS[name][0](args)
            except ValueError as e:
                raise self.fail(where, str(e).replace("invalid literal for", "bad number in")) from None
            if name == "timestamp":
                found.append(True)
            return _Gen(fn)
        if node is None or isinstance(node, str | int | float | bool):
            return node
        raise self.fail(where, f"unsupported value of type {type(node).__name__}; use JSON-like values")

    def mix(
        self,
        value: Any,
        controllers: dict[str, Controller],
        types: tuple[str, ...],
        templates: dict[tuple[str | None, str], Template],
    ) -> tuple[Cell, ...]:
        rows = self.mapping(value, "mix")
        cells: list[Cell] = []
        total = 0.0
        for controller_name, row in rows.items():
            where = f"mix.{controller_name}"
            controller = controllers[self.known(controller_name, list(controllers), where, "controller")]
            for msg_type, percent in self.mapping(row, where).items():
                cell_where = f"{where}.{msg_type}"
                self.known(msg_type, types, cell_where, "message type")
                if (
                    isinstance(percent, bool)
                    or not isinstance(percent, int | float)
                    or not math.isfinite(percent)
                ):
                    raise self.fail(cell_where, f"{percent!r} is not a number; give a percentage like 12.5")
                if percent < 0:
                    raise self.fail(cell_where, f"{percent} is negative; a share must be ≥ 0")
                total += percent
                if percent == 0:
                    continue
                template = templates.get((controller.name, msg_type)) or templates.get((None, msg_type))
                if template is None:
                    raise self.fail(
                        cell_where,
                        f"no template for {msg_type!r}; add templates.{msg_type} "
                        f"(or templates.{controller.name}/{msg_type})",
                    )
                cells.append(Cell(controller, msg_type, float(percent), template))
        if abs(total - 100.0) > _PERCENT_TOLERANCE:
            raise self.fail(
                "mix", f"percentages add up to {total:g}, not 100; adjust the shares so they sum to 100"
            )
        return tuple(cells)


def routed_topic(topic_map: Mapping[str, str] | None, msg_type: str, default: str) -> str:
    """The topic an ingest API should write a ``msg_type`` message to: ``topic_map[msg_type]``, else
    ``topic_map["*"]``, else ``default`` (the catalogue's topic for the type).

    Example::

        >>> routed_topic({"alarm": "alarms", "*": "events"}, "fault", "gov-fault")
        'events'
    """
    if not topic_map:
        return default
    return topic_map.get(msg_type, topic_map.get("*", default))


def data_path(relative: str) -> Path:
    """A file shipped with ingestload: from a wheel's ``_data`` or from the source checkout."""
    package = Path(__file__).resolve().parents[1]  # src/ingestload (or site-packages/ingestload)
    for base in (package / "_data", package.parents[1]):
        candidate = base / relative
        if candidate.exists():
            return candidate
    raise CatalogueError(
        f"cannot find the built-in {relative!r}; reinstall ingestload or pass the file explicitly"
    )


def default_catalogue_path() -> Path:
    """The built-in catalogue, ``mocks/catalogue.yaml``."""
    return data_path("mocks/catalogue.yaml")
