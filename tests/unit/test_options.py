"""The one option reader: namespace, then environment variable, then default; parse helpers."""

import argparse
import dataclasses
from typing import ClassVar

import pytest

from ingestload.errors import ConfigError
from ingestload.options import (
    Option,
    add_plain_argument,
    boolean,
    build,
    declared,
    duration,
    items,
    number,
    option,
    optional,
    optional_text,
    pairs,
    path_template,
    positive_duration,
    read,
    settings_class,
)

RATE = Option("--rate", "1000", number(float, minimum=0, what="msg/s ≥ 0"), "Target.", web_ui=True)
SEED = Option("--seed", "0", number(int, minimum=0, what="an integer ≥ 0"), "Seed.")
TAG = Option("--tag", None, items, "A tag (repeatable).", repeatable=True)
PORT = Option(
    "--port", "8080", number(int, minimum=0, maximum=65535, what="a port"), "Port.", env_prefix="X_"
)


def test_the_namespace_wins_then_the_environment_then_the_default():
    """A value given wins over its variable; missing or None: the variable, else the default."""
    env = {"INGESTLOAD_RATE": "30", "INGESTLOAD_SEED": "7"}
    values = read([RATE, SEED], argparse.Namespace(rate="50", seed=None), env)
    assert (values[RATE], values[SEED]) == (50.0, 7)
    values = read([RATE, SEED], argparse.Namespace(), {})
    assert (values[RATE], values[SEED]) == (1000.0, 0)
    assert not values.given(RATE)


def test_an_empty_variable_counts_as_unset():
    """INGESTLOAD_SEED='' leaves the default, rather than being an invalid value."""
    assert read([SEED], None, {"INGESTLOAD_SEED": ""})[SEED] == 0


def test_an_empty_web_ui_field_means_the_default():
    """A web UI option arriving as '' (an empty form field) is not given; other options keep ''."""
    values = read([RATE], argparse.Namespace(rate="  "), {"INGESTLOAD_RATE": "20"})
    assert values[RATE] == 20.0
    with pytest.raises(ConfigError, match="--seed: '' is not valid"):
        read([SEED], argparse.Namespace(seed=""), {})


def test_repeatable_options_take_the_environment_items_then_the_command_line():
    """One item per line in the variable, before the command line's items."""
    values = read([TAG], argparse.Namespace(tag=["c"]), {"INGESTLOAD_TAG": "a\n\n b \n"})
    assert values[TAG] == ("a", "b", "c")
    assert values.given(TAG)
    assert read([TAG], None, {})[TAG] == ()


def test_the_prefix_names_the_variable():
    """A command's prefix makes its variables: --port ↔ X_PORT."""
    assert PORT.env == "X_PORT"
    assert read([PORT], None, {"X_PORT": "9000", "INGESTLOAD_PORT": "1"})[PORT] == 9000


def test_locusts_variable_names_are_read_too_and_ours_win():
    """LOCUST_RATE sets --rate as Locust users expect (it was silently ignored: issue 22); with
    INGESTLOAD_RATE set too, ours wins; a server command's own prefix has no LOCUST_ twin."""
    assert read([RATE], None, {"LOCUST_RATE": "777"})[RATE] == 777.0
    assert read([RATE], None, {"LOCUST_RATE": "777", "INGESTLOAD_RATE": "5"})[RATE] == 5.0
    assert read([RATE], argparse.Namespace(rate="9"), {"LOCUST_RATE": "777"})[RATE] == 9.0
    assert read([TAG], None, {"LOCUST_TAG": "a\nb"})[TAG] == ("a", "b")
    assert read([PORT], None, {"LOCUST_PORT": "9000"})[PORT] == 8080


def test_locusts_parser_takes_the_locust_variable_as_the_default(monkeypatch):
    """On Locust's parser LOCUST_RATE becomes the default (so a master sends it to its workers),
    INGESTLOAD_RATE still wins, and the command line wins over both."""
    import configargparse

    from ingestload.options import add_locust_arguments

    def parse(*args: str) -> argparse.Namespace:
        parser = configargparse.ArgumentParser()
        add_locust_arguments(parser, [RATE])
        return parser.parse_args(list(args))

    monkeypatch.setenv("LOCUST_RATE", "777")
    monkeypatch.delenv("INGESTLOAD_RATE", raising=False)
    assert parse().rate == "777"
    assert parse("--rate", "3").rate == "3"
    monkeypatch.setenv("INGESTLOAD_RATE", "5")
    assert parse().rate == "5"


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (
            number(int, minimum=1, what="an integer ≥ 1"),
            "x",
            "--f: 'x' is not valid; expected an integer ≥ 1",
        ),
        (
            number(int, minimum=1, what="an integer ≥ 1"),
            "0",
            "--f: '0' is not allowed; expected an integer ≥ 1",
        ),
        (number(float, minimum=0, maximum=1, what="a fraction"), "1.5", "--f: '1.5' is not allowed"),
        (number(float, minimum=0, what="seconds"), "inf", "--f: 'inf' is not allowed"),
        (boolean, "maybe", "--f: 'maybe' is not a boolean; use true or false"),
        (duration, "-1s", "--f: "),
        (positive_duration, "0", "--f: '0' is not allowed; expected a duration > 0"),
        (path_template, "v1/x", "--f: 'v1/x' must be a path starting with '/'"),
        (path_template, "/v1/{type}", "--f: '/v1/{type}' may only use the placeholder {msgType}"),
    ],
)
def test_bad_values_are_one_line_naming_the_flag_the_value_and_what_is_allowed(parse, value, message):
    """Every helper's error starts with the flag and fits on one line."""
    with pytest.raises(ConfigError) as info:
        parse("--f", value)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_helpers_accept_what_people_write():
    """Durations with units, booleans in several spellings, optional values, KEY=VALUE pairs."""
    assert (duration("--f", "1m30s"), positive_duration("--f", ""), positive_duration("--f", "250ms")) == (
        90.0,
        None,
        0.25,
    )
    assert [boolean("--f", v) for v in ("yes", "Off", "1", True)] == [True, False, True, True]
    assert optional(number(int, minimum=0, what="n"))("--f", " ") is None
    assert pairs("--f", "a=1, b=2", "K=V") == [("a", "1"), ("b", "2")]
    with pytest.raises(ConfigError, match="expected K=V"):
        pairs("--f", "a=1,a=2", "K=V")


def test_a_plain_parser_passes_on_only_what_was_typed():
    """No default on a plain parser: the reader applies the environment and the default afterwards."""
    parser = argparse.ArgumentParser()
    for opt in (RATE, TAG):
        add_plain_argument(parser, opt)
    ns = parser.parse_args(["--tag", "x", "--tag", "y"])
    assert (ns.rate, ns.tag) == (None, ["x", "y"])


@settings_class
class Pool:
    env_prefix: ClassVar[str] = "POOL_"

    size: int = option("--pool-size", "4", number(int, minimum=1, what="an integer ≥ 1"), "Size.", "N")
    """Connections."""
    password: str | None = option("--pool-password", None, optional_text, "Secret.", secret=True)
    """Never in repr."""
    label: str
    """Not an option: computed by the caller."""


def test_a_settings_class_declares_its_options_on_its_fields():
    """Each option field is a declaration (the class's prefix names its variables); build() reads
    them and takes the other fields as given; a secret field stays out of repr."""
    options = declared(Pool)
    assert [(opt.flag, opt.env) for opt in options.values()] == [
        ("--pool-size", "POOL_POOL_SIZE"),
        ("--pool-password", "POOL_POOL_PASSWORD"),
    ]
    values = read(options.values(), argparse.Namespace(pool_password="hunter2"), {"POOL_POOL_SIZE": "8"})
    pool = build(Pool, values, label="x")
    assert (pool.size, pool.password, pool.label) == (8, "hunter2", "x")
    assert "hunter2" not in repr(pool)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pool.size = 1


def test_no_locust_twin_is_one_of_locusts_own_variables():
    """LOCUST_<NAME> of every plugin option is free: none is a variable of Locust's own options."""
    from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

    from ingestload.settings import OPTIONS

    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    locusts = {getattr(action, "env_var", None) for action in parser._actions} - {None}
    twins = {name for opt in OPTIONS for name in opt.env_names if name.startswith("LOCUST_")}
    assert len(twins) == len(OPTIONS)
    assert not twins & locusts
