"""Options: each declared once, where its feature lives, and read by one rule.

An :class:`Option` is everything about one option: its flag, its default (as text, parsed like
any user value), the function that turns text into the typed value (raising a one-line
:class:`~ingestload.errors.ConfigError` that names the flag, the value and what is allowed),
its environment variable (the command's prefix + the flag, ``--rate`` ↔ ``INGESTLOAD_RATE``),
its help, and whether it is secret, repeatable or shown in Locust's web UI. A feature declares
its options on the fields of its settings object (:func:`settings_class`, :func:`option`): the
field, its option and its doc are one place, and the parsers, the reader, ``docs/options.md``
and the web UI form all follow from it. This module knows no feature, and nothing of Locust.

:func:`read` is the one reader. For each option, in this order: the namespace's attribute
(Locust's ``parsed_options``, a plain argparse namespace of ``ingestload run/verify/api/fanout``,
or the web UI's form), unless it is missing or ``None`` (or ``''`` for an option of the web UI's
form); then its environment variable (an empty one counts as unset; for the Locust plugin's
options ``INGESTLOAD_RATE``, else Locust's ``LOCUST_RATE``); then its default. A repeatable
option takes the environment's items first (one per line), then the command line's.

Example::

    @settings_class
    class PoolSettings:
        size: int = option("--pool-size", "4", number(int, minimum=1, what="an integer ≥ 1"),
                           "Connections in the pool.", "N")
        \"\"\"Connections in the pool.\"\"\"

    values = read(declared(PoolSettings).values(), parser.parse_args(), os.environ)
    build(PoolSettings, values).size               # 4, or --pool-size, or INGESTLOAD_POOL_SIZE
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast, dataclass_transform

from ingestload.durations import parse_duration
from ingestload.errors import ConfigError

T = TypeVar("T")
S = TypeVar("S")
T_co = TypeVar("T_co", covariant=True)
N = TypeVar("N", int, float)

#: The environment variables of the Locust plugin's and ``ingestload run``'s options.
ENV_PREFIX = "INGESTLOAD_"
#: Locust's convention for its options' variables; the plugin's options read it too, after ours.
LOCUST_ENV_PREFIX = "LOCUST_"

#: How an option's text becomes its value: ``parse(flag, value)``; ``value`` is the text given
#: (or the default, or ``None`` when there is neither; a list of texts for a repeatable option).
Parse = Callable[[str, Any], T]


@dataclass(frozen=True)
class Option(Generic[T_co]):
    """One option, declared once: registered on the parsers, read back by :func:`read`, documented
    in ``docs/options.md``."""

    flag: str
    """Command-line flag, e.g. ``--rate``."""
    default: str | None
    """Default as text (``None``: unset), parsed like any user value."""
    parse: Parse[T_co]
    """Text → typed value; a bad value raises a one-line ConfigError naming the flag."""
    help: str
    """Help text (``--help``, ``docs/options.md``)."""
    metavar: str | None = None
    """Placeholder shown in help."""
    secret: bool = False
    """May hold a secret: never shown in the web UI, logs or a child's argv (environment only)."""
    repeatable: bool = False
    """May be given several times (``action="append"``; the environment: one item per line)."""
    web_ui: bool = False
    """Shown under "Custom parameters" in Locust's web UI: what a tester changes between tests.
    Expert and file options stay on the command line and in the environment; a secret never shows.
    An empty field there means the option's default."""
    env_prefix: str = ENV_PREFIX
    """Prefix of the environment variable: the command's (``INGESTLOAD_API_`` for ``ingestload api``)."""

    @property
    def dest(self) -> str:
        """Attribute name on a parsed namespace: ``--rate-split`` → ``rate_split``."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        """Environment variable: ``INGESTLOAD_RATE_SPLIT``."""
        return self.env_prefix + self.dest.upper()

    @property
    def env_names(self) -> tuple[str, ...]:
        """Every environment variable read, first found wins: :attr:`env`, then for the Locust
        plugin's options (prefix ``INGESTLOAD_``) Locust's convention, ``LOCUST_RATE_SPLIT`` — Locust
        users set ``LOCUST_<OPTION>`` for every option (a server command's own prefix has no twin)."""
        if self.env_prefix != ENV_PREFIX:
            return (self.env,)
        return (self.env, LOCUST_ENV_PREFIX + self.dest.upper())

    def from_environ(self, environ: Mapping[str, str]) -> str | None:
        """The option's text in ``environ`` (``None``: unset or empty), by :attr:`env_names`."""
        for name in self.env_names:
            if environ.get(name):
                return environ[name]
        return None


_SPEC = "ingestload.option"
_DECLARED = "__ingestload_options__"


def option(
    flag: str,
    default: str | None,
    parse: Parse[Any],
    help: str,
    metavar: str | None = None,
    *,
    secret: bool = False,
    repeatable: bool = False,
    web_ui: bool = False,
) -> Any:
    """A field of a :func:`settings_class` declared by its option (the arguments of :class:`Option`):
    the field's value is what :func:`read` makes of the option. A secret field is left out of repr.

    Example::

        @settings_class
        class RateSettings:
            batch_max: int = option("--batch-max", "1000", number(int, minimum=1, what="an integer ≥ 1"),
                                    "Most messages a user sends per wake-up before yielding.", "N")
            \"\"\"Most messages one user sends per wake-up.\"\"\"
    """
    spec = Option(flag, default, parse, help, metavar, secret=secret, repeatable=repeatable, web_ui=web_ui)
    return dataclasses.field(repr=not secret, metadata={_SPEC: spec})


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, option))
def settings_class(cls: type[S]) -> type[S]:
    """A frozen dataclass whose :func:`option` fields are its declarations (:func:`declared`);
    a class attribute ``env_prefix`` (a ``ClassVar``) gives their variables a command's prefix."""
    made = dataclasses.dataclass(frozen=True)(cls)
    prefix = getattr(made, "env_prefix", ENV_PREFIX)
    specs = {
        f.name: dataclasses.replace(f.metadata[_SPEC], env_prefix=prefix)
        for f in dataclasses.fields(cast(Any, made))
        if _SPEC in f.metadata
    }
    setattr(made, _DECLARED, specs)
    return made


def declared(cls: type[Any]) -> dict[str, Option[Any]]:
    """The options a :func:`settings_class` declares, by field name, in field order."""
    return dict(getattr(cls, _DECLARED))


def build(cls: type[S], values: Values, **computed: Any) -> S:
    """An instance of a :func:`settings_class`: each option field from ``values``, the other
    fields (and any option field whose value needs more than its option) from ``computed``."""
    fields = {name: values[opt] for name, opt in declared(cls).items() if name not in computed}
    return cls(**fields, **computed)


class Values:
    """The typed values of some options, as :func:`read` found them; index by the declaration.

    Example::

        values[RATE]           # float | None, as RATE's parse returns
        values.given(RATE)     # False: from the default
    """

    def __init__(self, values: Mapping[str, Any], given: Iterable[str], texts: Mapping[str, Any]) -> None:
        self._values = dict(values)
        self._given = frozenset(given)
        self._texts = dict(texts)

    def __getitem__(self, opt: Option[T]) -> T:
        try:
            return cast(T, self._values[opt.env])
        except KeyError:
            raise KeyError(f"{opt.flag} was not read (not among the options passed to read())") from None

    def given(self, opt: Option[Any]) -> bool:
        """Whether the user gave ``opt`` (namespace or environment), rather than its default applying."""
        return opt.env in self._given

    def text(self, opt: Option[Any]) -> Any:
        """What the user gave or the default, before parsing (for messages about two options)."""
        return self._texts[opt.env]


def read(options: Iterable[Option[Any]], namespace: Any, environ: Mapping[str, str]) -> Values:
    """The typed values of ``options`` from ``namespace`` (``None``: nothing given) and ``environ``,
    by the one rule in this module's docstring. The first bad value raises its ConfigError."""
    values: dict[str, Any] = {}
    texts: dict[str, Any] = {}
    given: list[str] = []
    for opt in options:
        value = getattr(namespace, opt.dest, None) if namespace is not None else None
        if opt.web_ui and isinstance(value, str) and not value.strip():
            value = None  # an empty field of the web UI's form: not given
        if opt.repeatable:
            # The environment's items first (one per line), then the command line's: later wins.
            text: Any = [*env_items(opt.from_environ(environ)), *as_list(value)]
            found = bool(text)
        else:
            if value is None:
                value = opt.from_environ(environ)
            found = value is not None
            text = value if found else opt.default
        if found:
            given.append(opt.env)
        texts[opt.env] = text
        values[opt.env] = opt.parse(opt.flag, text)
    return Values(values, given, texts)


# -- parsers -----------------------------------------------------------------------------------


def add_locust_arguments(parser: Any, options: Iterable[Option[Any]]) -> None:
    """Register ``options`` on Locust's (configargparse) parser, in the "ingestload" group."""
    group = parser.add_argument_group("ingestload", "Kafka load with message-level verification")
    for opt in options:
        kwargs: dict[str, Any] = {"default": opt.default, "help": opt.help, "metavar": opt.metavar}
        if opt.repeatable:
            # Repeatable: the environment variable (one item per line) is read by read() itself.
            kwargs["action"] = "append"
        else:
            kwargs["env_var"] = opt.env
            # configargparse reads one variable per option: Locust's twin becomes the default, so
            # that INGESTLOAD_… still wins and the value reaches workers with the master's options.
            kwargs["default"] = opt.from_environ(os.environ) or opt.default
        action = group.add_argument(opt.flag, **kwargs)
        # Locust's web UI shows options whose action carries these attributes (argument groups
        # do not set them): only what a tester changes between tests, never a secret (the UI
        # would echo it back).
        action.include_in_web_ui = opt.web_ui and not opt.secret
        action.is_secret = False
        action.is_required = False
        action.is_multiple = False


def add_plain_argument(parser: Any, opt: Option[Any], help: str | None = None) -> None:
    """Register ``opt`` on a plain argparse parser (``ingestload run/verify/api/fanout``): no
    default, so that only what the user typed is passed on (:func:`read` applies the rest);
    repeatable options append."""
    parser.add_argument(
        opt.flag,
        default=None,
        action="append" if opt.repeatable else "store",
        metavar=opt.metavar,
        help=opt.help if help is None else help,
    )


def add_server_arguments(parser: Any, own: Iterable[Option[Any]], shared: Iterable[Option[Any]]) -> None:
    """A server command's own options (help shows the default and the variable), then the Kafka
    and catalogue options it shares with every command (``ingestload api``, ``ingestload fanout``)."""
    for opt in own:
        shown = f" (default {opt.default})" if opt.default not in (None, "") else ""
        add_plain_argument(parser, opt, f"{opt.help}{shown} [{opt.env}]")
    for opt in shared:
        add_plain_argument(parser, opt, opt.help + ("" if opt.repeatable else f" [{opt.env}]"))


# -- parse helpers: text → typed value, or a one-line ConfigError naming the flag ----------------


def number(
    kind: type[N], *, minimum: float, what: str, maximum: float | None = None
) -> Callable[[str, Any], N]:
    """An ``int`` or ``float`` in ``[minimum, maximum]``; ``what`` says what is allowed.

    Example::

        >>> number(int, minimum=1, what="an integer ≥ 1")("--partitions", "0")
        Traceback (most recent call last):
        ...
        ingestload.errors.ConfigError: --partitions: '0' is not allowed; expected an integer ≥ 1
    """

    def parse(flag: str, value: Any) -> N:
        try:
            result = kind(str(value).strip())
        except (TypeError, ValueError):
            raise ConfigError(f"{flag}: {value!r} is not valid; expected {what}") from None
        if (
            (isinstance(result, float) and not math.isfinite(result))
            or result < minimum
            or (maximum is not None and result > maximum)
        ):
            raise ConfigError(f"{flag}: {value!r} is not allowed; expected {what}")
        return result

    return parse


def optional(parse: Callable[[str, Any], T]) -> Callable[[str, Any], T | None]:
    """``parse``, except that no value (``None`` or blank) is ``None``."""

    def parse_optional(flag: str, value: Any) -> T | None:
        if value is None or str(value).strip() == "":
            return None
        return parse(flag, value)

    return parse_optional


def text(flag: str, value: Any) -> str:
    """The text as given (``None`` becomes ``''``)."""
    return "" if value is None else str(value)


def optional_text(flag: str, value: Any) -> str | None:
    """The text as given; none or empty is ``None``."""
    return str(value) if value else None


def items(flag: str, value: Any) -> tuple[str, ...]:
    """A repeatable option's items, in order."""
    return tuple(as_list(value))


def boolean(flag: str, value: Any) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` (any case)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{flag}: {value!r} is not a boolean; use true or false")


def duration(flag: str, value: Any) -> float:
    """A duration ≥ 0 in seconds (``0`` allowed), written as ``90s``, ``5m``, ``250ms`` or seconds."""
    seconds = parse_duration(value, where=flag)
    if seconds < 0:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected a duration ≥ 0, e.g. 5s")
    return seconds


def positive_duration(flag: str, value: Any) -> float | None:
    """A duration > 0 in seconds; none (``None`` or blank) is ``None``."""
    if value is None or str(value).strip() == "":
        return None
    seconds = parse_duration(value, where=flag)
    if seconds <= 0:
        raise ConfigError(f"{flag}: {value!r} is not allowed; expected a duration > 0, e.g. 10s")
    return seconds


def path_template(flag: str, value: Any) -> str:
    """A URL path starting with ``/`` that may use the placeholder ``{msgType}``."""
    path = str(value)
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise ConfigError(f"{flag}: {path!r} must be a path starting with '/', e.g. /v1/messages/{{msgType}}")
    try:
        path.format(msgType="x")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{flag}: {path!r} may only use the placeholder {{msgType}}") from None
    return path


def pairs(flag: str, value: Any, syntax: str) -> list[tuple[str, str]] | None:
    """The ``KEY=VALUE`` items of a comma-separated option (``None`` when it is empty); an item
    without ``=`` or a key, or a key given twice, is a one-line error naming ``syntax``.

    Example::

        >>> pairs("--rate-split", "kafka=7, api=3", "PATH=W,…")
        [('kafka', '7'), ('api', '3')]
    """
    if value is None or not str(value).strip():
        return None
    whole = str(value).strip()
    found: list[tuple[str, str]] = []
    for item in whole.split(","):
        key, sep, val = (part.strip() for part in item.partition("="))
        if not sep or not key or key in {k for k, _ in found}:
            raise ConfigError(f"{flag}: {whole!r} is not valid; expected {syntax}")
        found.append((key, val))
    return found


TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
"""A Kafka topic name."""


def topic_list(example: str, *, blank: bool = True) -> Callable[[str, Any], tuple[str, ...] | None]:
    """Comma-separated topic names, sorted and without repeats; none is ``None`` (blank text too,
    unless ``blank`` is false: then only ``''``)."""

    def parse(flag: str, value: Any) -> tuple[str, ...] | None:
        if not value or (blank and not str(value).strip()):
            return None
        topics = tuple(sorted({t.strip() for t in str(value).split(",") if t.strip()}))
        if not topics or not all(TOPIC_NAME.fullmatch(t) for t in topics):
            raise ConfigError(f"{flag}: {value!r} must be comma-separated {example}")
        return topics

    return parse


def env_items(value: str | None) -> list[str]:
    """The items of a repeatable option's environment variable: one per line."""
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def as_list(value: Any) -> list[str]:
    """A namespace's value of a repeatable option as a list (``None``: none, a text: one)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def markdown(
    title: str,
    intro: str,
    options: Sequence[Option[Any]],
    defaults: Mapping[str, str] | None = None,
    level: int = 2,
) -> str:
    """A section of ``docs/options.md``: a heading, ``intro`` and a table of ``options`` (option,
    environment variable, default, meaning; secret, repeatable and web UI options marked);
    ``defaults`` overrides the default shown for a flag (e.g. "the embedded broker")."""

    def cell(value: str) -> str:
        return value.replace("|", "\\|").replace("\n", " ")

    lines = ["#" * level + " " + title, ""]
    lines += [intro, ""] if intro else []
    lines += ["| Option | Environment variable | Default | Meaning |", "|---|---|---|---|"]
    for opt in options:
        default = f"`{opt.default}`" if opt.default not in (None, "") else "—"
        default = (defaults or {}).get(opt.flag, default)
        flag = f"`{opt.flag} {opt.metavar}`" if opt.metavar else f"`{opt.flag}`"
        marks = [m for m, on in (("secret", opt.secret), ("repeatable", opt.repeatable)) if on]
        marks += ["web UI"] if opt.web_ui and not opt.secret else []
        meaning = cell(opt.help) + (f" *({', '.join(marks)})*" if marks else "")
        lines.append(f"| {cell(flag)} | `{opt.env}` | {cell(default)} | {meaning} |")
    return "\n".join(lines) + "\n"
