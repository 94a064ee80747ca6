"""Settings: parsing, validation messages, Kafka properties and secret redaction."""

from pathlib import Path

import pytest

from ingestload.errors import ConfigError
from ingestload.kafka.config import PRODUCER_DEFAULTS, parse_properties, redact_config, scrub
from ingestload.settings import OPTIONS, Settings, namespace


def error(**values: object) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_options(namespace(**values), environ={})
    return str(info.value)


def test_defaults():
    """With nothing given, settings are the documented defaults."""
    s = Settings.from_options(namespace(), environ={})
    assert (s.kafka.bootstrap, s.rate.target, s.rate.batch_max, s.kafka.partitions, s.run.create_topics) == (
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
        ({"gc_threshold": "-1"}, "--gc-threshold: '-1' is not allowed; expected an integer ≥ 0"),
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
        ({"api_topic_map": "alarm"}, "--api-topic-map: 'alarm' is not valid; expected TYPE=TOPIC"),
        ({"api_topic_map": "*=a b"}, "--api-topic-map: 'a b' is not a topic name"),
        ({"api_topic_map": "a=x,a=y"}, "--api-topic-map: 'a=x,a=y' is not valid"),
        ({"late_grace": "-1s"}, "--late-grace: '-1s'"),
        ({"max_misrouted": "-1"}, "--max-misrouted: '-1' is not allowed"),
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
    assert s.kafka.config == {
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
    config = s.kafka.producer_config("me")
    assert config["acks"] == PRODUCER_DEFAULTS["acks"] == "all"
    assert config["enable.idempotence"] == "true"
    assert config["linger.ms"] == "20"
    assert config["client.id"] == "me"
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert "acks" not in s.kafka.admin_config()


def test_verifier_config_reaches_only_the_verifiers_consumer_and_wins():
    """--verifier-config: consumer-only properties over the defaults and over --kafka-config."""
    s = Settings.from_options(
        namespace(
            kafka_config=["fetch.wait.max.ms=100", "security.protocol=SSL"],
            verifier_config=["fetch.wait.max.ms=250", "fetch.min.bytes=262144"],
        ),
        environ={},
    )
    consumer = s.kafka.consumer_config()
    assert (consumer["fetch.wait.max.ms"], consumer["fetch.min.bytes"]) == ("250", "262144")
    assert consumer["security.protocol"] == "SSL"
    assert consumer["fetch.queue.backoff.ms"] == "10"  # the defaults stay
    assert "fetch.min.bytes" not in s.kafka.producer_config("me")
    with pytest.raises(ConfigError, match="--verifier-config"):
        Settings.from_options(namespace(verifier_config=["no-equals-sign"]), environ={})


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


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"rate": "2775", "rate_profile": "p.yaml"},
            "--rate 2775 and --rate-profile p.yaml: give only one of them",
        ),
        ({"rate_split": "kafka=0.7;api=0.3"}, "--rate-split: 'kafka=0.7;api=0.3' is not valid; expected"),
        ({"rate_split": "kafka=lots"}, "--rate-split: 'kafka=lots' is not valid"),
        ({"rate_split": "kafka=1,kafka=2"}, "--rate-split: 'kafka=1,kafka=2' is not valid"),
        ({"rate_split": "kafka=-1"}, "--rate-split: kafka=-1 is not allowed; weights are numbers ≥ 0"),
        ({"rate_split": "kafka=0,api=0"}, "--rate-split: 'kafka=0,api=0' gives every path weight 0"),
        ({"min_rate_ratio": "95%"}, "--min-rate-ratio: '95%' is not valid; expected a ratio in (0, 1]"),
        ({"min_rate_ratio": "1.5"}, "--min-rate-ratio: '1.5' is not allowed; expected a ratio in (0, 1]"),
        ({"min_rate_ratio": "0"}, "--min-rate-ratio: '0' is not allowed"),
        (
            {"min_rate_window": "10 secs"},
            "--min-rate-window: '10 secs' is not a duration; did you mean '10s'?",
        ),
        ({"min_rate_window": "0s"}, "--min-rate-window: '0s' is not allowed; expected a duration > 0"),
        ({"max_lateness": "2 minutes"}, "--max-lateness: '2 minutes' is not a duration; did you mean '2m'?"),
    ],
)
def test_bad_rate_options_say_how_to_fix_them(values, expected):
    """Rate options are validated up front with a one-line fix."""
    message = error(**values)
    assert message.startswith(expected)
    assert "\n" not in message


def test_rate_options_parsed():
    """A profile instead of --rate, a split, a lateness bound and a guard are read as typed values."""
    s = Settings.from_options(
        namespace(
            rate_profile="mocks/profiles/knee.yaml",
            rate_split="kafka=7, api=3",
            max_lateness="1500ms",
            min_rate_ratio="0.95",
            min_rate_window="1m",
        ),
        environ={},
    )
    assert s.rate.profile == "mocks/profiles/knee.yaml"
    assert s.rate.split == {"kafka": 7.0, "api": 3.0}
    assert (s.rate.max_lateness, s.rate.min_ratio, s.rate.min_window) == (1.5, 0.95, 60.0)
    assert "rate=profile mocks/profiles/knee.yaml split kafka=7,api=3" in s.describe()
    default = Settings.from_options(namespace(), environ={}).rate
    assert (default.profile, default.split, default.max_lateness, default.min_ratio) == (
        None,
        None,
        None,
        None,
    )
    assert default.min_window == 10.0


@pytest.mark.parametrize("command", ["run", "verify", "api"])
def test_every_help_text_renders(command, capsys):
    """argparse %-formats help texts: a bare '%' in an option's help crashes --help."""
    from ingestload.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "--kafka-bootstrap" in capsys.readouterr().out


def test_every_option_renders_in_locusts_help():
    import configargparse

    from ingestload.settings import add_arguments

    parser = configargparse.ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    assert all(opt.flag in text for opt in OPTIONS)


def test_secret_keys_include_passphrases_and_key_material():
    """Passphrases and inline private keys are secrets too, whatever their prefix."""
    from ingestload.kafka.config import is_secret_key

    for key in (
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "sasl.oauthbearer.assertion.private.key.pem",
        "ssl.key.pem",
        "ssl.keystore.password",
    ):
        assert is_secret_key(key), key
    assert not is_secret_key("sasl.mechanisms")


def test_repeatable_options_read_their_environment_variable_one_item_per_line():
    """INGESTLOAD_KAFKA_CONFIG / _API_HEADER hold one item per line; command-line items come after (win)."""
    environ = {
        "INGESTLOAD_KAFKA_CONFIG": "acks=1\nsasl.password=from-env\n",
        "INGESTLOAD_API_HEADER": "X-Tenant: qa\nAuthorization: Basic abc",
    }
    s = Settings.from_options(namespace(kafka_config=["acks=all"]), environ=environ)
    assert (s.kafka.config["acks"], s.kafka.config["sasl.password"]) == ("all", "from-env")
    assert s.http.headers == {"X-Tenant": "qa", "Authorization": "Basic abc"}
    assert "abc" not in repr(s)
    assert "from-env" not in repr(s)
    assert "from-env" not in s.describe()


def test_topics_of_a_run_follow_the_api_topic_map():
    """The run reads the catalogue's topics for the Kafka path and the mapped ones for the HTTP path."""
    from ingestload.messages.catalogue import Catalogue

    catalogue = Catalogue.load()
    s = Settings.from_options(namespace(api_topic_map="alarm=alarms,*=everything"), environ={})
    assert s.topics(catalogue, ["api"]) == ["alarms", "everything"]
    assert set(s.topics(catalogue)) == {"alarms", "everything", *catalogue.topics()}
    assert Settings.from_options(namespace(), environ={}).topics(catalogue) == catalogue.topics()
