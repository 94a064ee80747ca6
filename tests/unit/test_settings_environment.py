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


def test_no_kafka_named_is_the_embedded_broker_not_an_address():
    """``ingestload run`` without --kafka-bootstrap (or its variable) gets EMBEDDED, an explicit
    value with no address until the broker runs; a named Kafka is used as given."""
    import pytest

    from ingestload.errors import ConfigError
    from ingestload.kafka.settings import EMBEDDED

    kafka = Settings.from_options(argparse.Namespace(), environ={}, embedded=True).kafka
    assert kafka.bootstrap is EMBEDDED
    assert kafka.embedded
    with pytest.raises(ConfigError, match="embedded broker"):
        kafka.producer_config()
    assert kafka.with_bootstrap("127.0.0.1:41000").admin_config()["bootstrap.servers"] == "127.0.0.1:41000"
    named = Settings.from_options(
        argparse.Namespace(), environ={"INGESTLOAD_KAFKA_BOOTSTRAP": "kafka:9092"}, embedded=True
    ).kafka
    assert (named.embedded, named.address) == (False, "kafka:9092")
    assert Settings.from_options(argparse.Namespace(), environ={}).kafka.bootstrap == "127.0.0.1:9092"
