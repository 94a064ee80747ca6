"""Settings: parsing, validation messages, Kafka properties and secret redaction."""

from pathlib import Path

import pytest

from ingestload.errors import ConfigError
from ingestload.settings import PRODUCER_DEFAULTS, Settings, namespace, parse_properties, redact_config, scrub


def error(**values: object) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_options(namespace(**values), environ={})
    return str(info.value)


def test_defaults():
    """With nothing given, settings are the documented defaults."""
    s = Settings.from_options(namespace(), environ={})
    assert (s.kafka_bootstrap, s.rate, s.batch_max, s.partitions, s.create_topics) == (
        "127.0.0.1:9092",
        1000.0,
        1000,
        3,
        True,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"rate": "-5"}, "--rate: '-5' is not allowed; expected messages per second ≥ 0 (0 = unlimited)"),
        ({"rate": "fast"}, "--rate: 'fast' is not valid; expected messages per second ≥ 0 (0 = unlimited)"),
        ({"rate": "nan"}, "--rate: 'nan' is not allowed"),
        ({"batch_max": "0"}, "--batch-max: '0' is not allowed; expected an integer ≥ 1"),
        ({"partitions": "2.5"}, "--partitions: '2.5' is not valid; expected an integer ≥ 1"),
        ({"create_topics": "maybe"}, "--create-topics: 'maybe' is not a boolean; use true or false"),
        ({"kafka_bootstrap": "localhost"}, "--kafka-bootstrap: 'localhost' is not HOST:PORT"),
        ({"run_id": "xyz"}, "--run-id: 'xyz' must be exactly 16 hex digits"),
        ({"topic_prefix": "a b"}, "--topic-prefix: 'a b' may only contain"),
        ({"catalogue": "/no/such.yaml"}, "--catalogue: no such file '/no/such.yaml'"),
        ({"kafka_config": ["acks"]}, "--kafka-config:1: expected KEY=VALUE, got 'acks'"),
        (
            {"kafka_config": ["bootstrap.servers=x:1"]},
            "--kafka-config: set bootstrap servers with --kafka-bootstrap",
        ),
    ],
)
def test_bad_values_name_the_option_the_value_and_what_is_allowed(values, expected):
    """Every invalid value gives a one-line error that starts with the option name."""
    message = error(**values)
    assert message.startswith(expected)
    assert "\n" not in message


def test_kafka_properties_precedence_file_then_env_then_flag(tmp_path: Path):
    """The properties file is overridden by INGESTLOAD_KAFKA_PROP_* which is overridden by --kafka-config."""
    props = tmp_path / "client.properties"
    props.write_text("# SASL as in seed 000\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=PLAIN\nacks=1\n")
    s = Settings.from_options(
        namespace(kafka_config_file=str(props), kafka_config=["acks=all"]),
        environ={
            "INGESTLOAD_KAFKA_PROP_SASL_PASSWORD": "s3cret",
            "INGESTLOAD_KAFKA_PROP_SASL_MECHANISMS": "SCRAM",
        },
    )
    assert s.kafka_config == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM",
        "sasl.password": "s3cret",
        "acks": "all",
    }


def test_unreadable_properties_file_is_a_clear_error(tmp_path: Path):
    """A missing properties file is named in the error."""
    assert error(kafka_config_file=str(tmp_path / "x.properties")).startswith(
        "--kafka-config-file: cannot read"
    )


def test_producer_config_keeps_safe_defaults_unless_overridden():
    """acks=all and idempotence are on by default; user properties override them."""
    s = Settings.from_options(namespace(kafka_config=["linger.ms=20"]), environ={})
    config = s.producer_config("me")
    assert config["acks"] == PRODUCER_DEFAULTS["acks"] == "all"
    assert config["enable.idempotence"] == "true"
    assert config["linger.ms"] == "20"
    assert config["client.id"] == "me"
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert "acks" not in s.admin_config()


def test_secrets_are_redacted_in_describe():
    """describe() never shows a password, token or secret."""
    s = Settings.from_options(
        namespace(
            kafka_config=[
                "sasl.username=alice",
                "sasl.password=hunter2",
                "sasl.oauthbearer.client.secret=abc123",
                "ssl.key.password=kpw",
            ]
        ),
        environ={},
    )
    text = s.describe()
    for secret in ("hunter2", "abc123", "kpw"):
        assert secret not in text
    assert "sasl.username=alice" in text
    assert "sasl.password=***" in text


def test_redact_and_scrub():
    """redact_config masks secret keys; scrub removes secret values from arbitrary text."""
    config = {"sasl.password": "hunter2", "client.id": "x"}
    assert redact_config(config) == {"sasl.password": "***", "client.id": "x"}
    assert scrub("auth failed for hunter2@x", config) == "auth failed for ***@x"


def test_malformed_properties_line_hides_secret_values():
    """A malformed line that looks like a secret is not echoed back."""
    with pytest.raises(ConfigError) as info:
        parse_properties(["sasl.password hunter2"], "f.properties")
    assert "hunter2" not in str(info.value)
    assert str(info.value).startswith("f.properties:1: expected KEY=VALUE")
