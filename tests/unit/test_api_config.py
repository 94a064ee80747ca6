"""Settings of `ingestload api`: flags, environment, validation, producer config, secrets."""

import pytest

from ingestload.api.config import ApiSettings
from ingestload.errors import ConfigError


def parse(*argv: str, **environ: str) -> ApiSettings:
    return ApiSettings.from_args(list(argv), environ=environ)


def error(*argv: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(*argv, **environ)
    return str(info.value)


def test_defaults():
    """Without options: port 8080, one worker, embedded broker, faults off, 15 s request timeout."""
    s = parse()
    assert (s.host, s.port, s.workers, s.embedded_broker) == ("127.0.0.1", 8080, 1, True)
    assert (s.request_timeout, s.max_in_flight, s.max_batch_items, s.envelope_field) == (
        15.0,
        100_000,
        1000,
        "_ingestload",
    )
    assert not s.faults.active


def test_flags_and_environment():
    """Every API option reads INGESTLOAD_API_<NAME>; flags win; Kafka options keep their names."""
    s = parse(
        "--port",
        "9000",
        INGESTLOAD_API_PORT="1",
        INGESTLOAD_API_WORKERS="3",
        INGESTLOAD_API_FAULT_DROP="0.25",
        INGESTLOAD_API_FAULT_SEED="5",
        INGESTLOAD_KAFKA_BOOTSTRAP="k:9092",
        INGESTLOAD_TOPIC_PREFIX="x-",
    )
    assert (s.port, s.workers, s.faults.drop, s.faults.seed) == (9000, 3, 0.25, 5)
    assert (s.kafka.bootstrap, s.topic_prefix, s.embedded_broker) == ("k:9092", "x-", False)


def test_message_timeout_is_derived_below_the_request_timeout():
    """message.timeout.ms defaults to the request timeout less one second; linger is librdkafka's 5 ms."""
    # No Kafka named: the embedded broker, whose address the server gives once it runs.
    config = parse("--request-timeout", "10").with_bootstrap("127.0.0.1:9092").producer_config()
    assert config["message.timeout.ms"] == "9000"
    assert (config["acks"], config["enable.idempotence"], config["linger.ms"]) == ("all", "true", "5")


def test_user_properties_win_over_api_defaults():
    """A --kafka-config value overrides the API's producer defaults."""
    config = (
        parse("--kafka-config", "linger.ms=7", "--kafka-config", "message.timeout.ms=5000")
        .with_bootstrap("127.0.0.1:9092")
        .producer_config()
    )
    assert (config["linger.ms"], config["message.timeout.ms"]) == ("7", "5000")


def test_message_timeout_must_stay_below_the_request_timeout():
    """message.timeout.ms at or above the request timeout is refused, saying what to change."""
    assert "must be below --request-timeout (15 s)" in error("--kafka-config", "message.timeout.ms=30000")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--fault-drop", "2"], "--fault-drop: '2' is not allowed; expected a fraction between 0 and 1"),
        (["--fault-duplicate", "x"], "--fault-duplicate: 'x' is not valid"),
        (["--port", "70000"], "--port: '70000' is not allowed"),
        (["--workers", "0"], "--workers: '0' is not allowed; expected an integer ≥ 1"),
        (
            ["--max-batch-items", "50", "--max-in-flight", "10"],
            "raise --max-in-flight or lower --max-batch-items",
        ),
        (["--create-topics", "maybe"], "--create-topics: 'maybe' is not a boolean"),
        (["--envelope-field", "a b"], "--envelope-field: 'a b' must be 1–64 characters"),
        (["--kafka-bootstrap", "nohost"], "--kafka-bootstrap: 'nohost' is not HOST:PORT"),
    ],
)
def test_bad_values_name_the_option(argv, expected):
    """A bad value stops startup with the option, the value and what is allowed."""
    assert expected in error(*argv)


def test_secrets_stay_out_of_the_description():
    """The startup line redacts secret properties, whether from flags or the environment."""
    s = parse(
        "--kafka-config", "sasl.password=hunter2", INGESTLOAD_KAFKA_PROP_SASL_OAUTHBEARER_CONFIG="tok=abc"
    )
    line = s.describe()
    assert "hunter2" not in line
    assert "tok=abc" not in line
    assert "sasl.password=***" in line
