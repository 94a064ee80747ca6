"""Settings built from a plain namespace (``ingestload run``/``verify``) read the INGESTLOAD_* variables."""

import argparse

from ingestload.settings import Settings


def test_an_option_left_unset_takes_its_environment_variable() -> None:
    """A run id and a rate not given on ``ingestload run``'s command line come from the environment
    (as they do for Locust's own parser), so the run it prepares is the run Locust makes."""
    settings = Settings.from_options(
        argparse.Namespace(kafka_bootstrap="kafka:9092", run_id=None),
        environ={"INGESTLOAD_RUN_ID": "0123456789abcdef", "INGESTLOAD_RATE": "3000"},
    )
    assert settings.run.run_id == "0123456789abcdef"
    assert settings.rate.target == 3000


def test_a_value_given_on_the_command_line_wins_over_the_environment() -> None:
    """The command line wins; an empty variable counts as unset."""
    settings = Settings.from_options(
        argparse.Namespace(kafka_bootstrap="kafka:9092", rate="500"),
        environ={"INGESTLOAD_RATE": "3000", "INGESTLOAD_RUN_ID": ""},
    )
    assert settings.rate.target == 500
    assert settings.run.run_id is None
