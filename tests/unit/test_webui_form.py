"""The web UI's swarm form: empty fields mean the default, bad values are refused with one line,
good values are what runs; and what the form shows (only what a tester changes, nothing secret)."""

from types import SimpleNamespace

import pytest

from ingestload.locust.rate import RateControl
from ingestload.settings import OPTIONS, Settings, namespace
from ingestload.webui.form import FORM_OPTIONS, check_swarm_form, form_options

#: What Locust's form posts when "Custom parameters" is left as it is: every field, empty.
EMPTY_FORM = dict.fromkeys(FORM_OPTIONS, "") | {"user_count": "1", "spawn_rate": "1", "host": ""}


class KafkaUser:
    ingestload_path = "kafka"


def rate_control() -> RateControl:
    """The rate machinery of a local process with one Kafka user class and no profile shape."""
    environment = SimpleNamespace(user_classes=[KafkaUser], shape_class=None)
    return RateControl(environment, None, "local", Settings.defaults())


def test_an_all_empty_form_runs_with_the_defaults():
    """Locust posts empty fields as '': each means the option's default, never an error."""
    options = form_options(namespace(), EMPTY_FORM)
    assert check_swarm_form(namespace(), EMPTY_FORM, also=rate_control().check) is None
    settings = Settings.from_options(options, environ={})
    defaults = Settings.from_options(namespace(), environ={})
    assert settings == defaults
    assert (
        settings.rate.target,
        settings.rate.min_ratio,
        settings.rate.max_lateness,
        settings.run.run_id,
    ) == (
        1000.0,
        None,
        None,
        None,
    )


def test_an_empty_field_falls_back_to_the_environment_like_the_command_line():
    """An empty field is "not given": the option's environment variable (or default) applies."""
    options = form_options(namespace(), {**EMPTY_FORM, "rate": ""})
    assert Settings.from_options(options, environ={"INGESTLOAD_RATE": "250"}).rate.target == 250.0


def test_what_the_form_says_is_what_runs():
    """Valid values in the form replace the start-up options (the command line said 100 msg/s)."""
    form = {**EMPTY_FORM, "rate": "1000", "max_lateness": "2s", "max_lost": "3", "verify": "false"}
    options = form_options(namespace(rate="100"), form)
    assert check_swarm_form(namespace(rate="100"), form, also=rate_control().check) is None
    settings = Settings.from_options(options, environ={})
    assert (
        settings.rate.target,
        settings.rate.max_lateness,
        settings.verify.thresholds.max_lost,
        settings.verify.enabled,
    ) == (
        1000.0,
        2.0,
        3,
        False,
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("rate", "-5", "--rate: '-5' is not allowed; expected messages per second ≥ 0"),
        ("rate", "fast", "--rate: 'fast' is not valid"),
        ("min_rate_ratio", "2", "--min-rate-ratio: '2'"),
        ("max_lateness", "soon", "--max-lateness: 'soon'"),
        ("max_lost", "-1", "--max-lost: '-1' is not allowed"),
        ("run_id", "xyz", "--run-id: 'xyz' must be exactly 16 hex digits"),
        ("verify", "maybe", "--verify: 'maybe' is not a boolean"),
        ("rate_split", "kafka=1,udp=1", "--rate-split"),
        ("rate_profile", "/no/such/profile.yaml", "--rate-profile"),
    ],
)
def test_a_bad_value_is_refused_with_one_line_naming_the_option(field, value, expected):
    """The form check returns the settings' own one-line error; nothing would start."""
    error = check_swarm_form(namespace(), {**EMPTY_FORM, field: value}, also=rate_control().check)
    assert error is not None
    assert error.startswith(expected), error
    assert "\n" not in error


def test_one_bad_field_refuses_the_form_even_with_good_ones():
    """No partial update: a single bad value refuses the whole form."""
    form = {**EMPTY_FORM, "rate": "1000", "max_lost": "many"}
    assert check_swarm_form(namespace(), form).startswith("--max-lost: 'many'")


def test_the_form_check_leaves_the_running_options_alone():
    """Checking a form is only a check: the options Locust holds are not changed by it."""
    options = namespace(rate="100")
    check_swarm_form(options, {**EMPTY_FORM, "rate": "1000"})
    assert options.rate == "100"


def test_fields_that_are_not_ingestloads_are_left_to_locust():
    """Locust's own fields (users, host…) and options not in the form are not touched."""
    options = form_options(namespace(kafka_bootstrap="10.0.0.1:9092"), {"kafka_bootstrap": "x", "host": "h"})
    assert options.kafka_bootstrap == "10.0.0.1:9092"
    assert not hasattr(options, "host")


def test_the_form_shows_what_a_tester_changes_and_nothing_secret_or_expert():
    """Custom parameters: rate, profile, split, lateness, API batch size, verify, thresholds (the
    load verdict's included), min-rate ratio/window, run id — no file paths, Kafka properties or
    HTTP headers."""
    assert set(FORM_OPTIONS) == {
        "rate",
        "rate_profile",
        "rate_split",
        "max_lateness",
        "min_rate_ratio",
        "min_rate_window",
        "min_offered_ratio",
        "max_failed_ratio",
        "run_id",
        "verify",
        "max_lost",
        "max_duplicated",
        "max_corrupted",
        "max_misrouted",
        "api_batch_size",
    }
    secret = {opt.dest for opt in OPTIONS if opt.secret}
    assert "api_header" in secret
    assert not secret & set(FORM_OPTIONS)
    for dest in ("api_header", "kafka_config", "verdict_file", "ledger_file", "catalogue", "gc_threshold"):
        assert dest not in FORM_OPTIONS


def test_locusts_parser_shows_only_the_forms_options():
    """Locust lists under Custom parameters the options its parser marks: exactly the form's."""
    from locust.argument_parser import get_empty_argument_parser

    from ingestload.settings import add_arguments

    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    add_arguments(parser)
    ours = {opt.dest for opt in OPTIONS}
    assert set(parser.args_included_in_web_ui) & ours == set(FORM_OPTIONS)
    assert not set(parser.secret_args_included_in_web_ui) & ours
