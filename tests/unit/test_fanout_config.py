"""``ingestload fanout`` settings: flags, INGESTLOAD_FANOUT_* variables, validation, secrets."""

import pytest

from ingestload.errors import ConfigError
from ingestload.fanout.config import FanoutSettings

SECRET = "hunter2-fanout"


def test_defaults_and_environment():
    """Defaults apply; INGESTLOAD_FANOUT_<NAME> sets an option; a flag wins over the variable."""
    settings = FanoutSettings.from_args([], environ={})
    assert (settings.port, settings.workers, settings.slow_policy, settings.queue_limit) == (
        8765,
        1,
        "drop-oldest",
        10_000,
    )
    assert settings.embedded_broker
    env = {"INGESTLOAD_FANOUT_SLOW_POLICY": "disconnect", "INGESTLOAD_FANOUT_QUEUE_LIMIT": "50"}
    settings = FanoutSettings.from_args(["--queue-limit", "70", "--kafka-bootstrap", "k:9092"], environ=env)
    assert (settings.slow_policy, settings.queue_limit, settings.embedded_broker) == ("disconnect", 70, False)
    assert FanoutSettings.from_args(["--topics", "b, a,b"], environ={}).topics == ("a", "b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--slow-policy", "nap"],
            "--slow-policy: 'nap' is not allowed; expected one of drop-oldest, disconnect",
        ),
        (["--port", "70000"], "--port: '70000' is not allowed"),
        (["--queue-limit", "0"], "--queue-limit"),
        (["--topics", "a b"], "--topics"),
        (["--fault-skip-every", "-1"], "--fault-skip-every"),
        (["--write-buffer", "10"], "bytes ≥ 1024"),
        (["--host", " "], "--host: empty"),
    ],
)
def test_bad_values_name_the_option_and_the_fix(argv, message):
    """Every bad value raises a ConfigError naming the option (exit code 2 before anything starts)."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        FanoutSettings.from_args(argv, environ={})


def test_consumer_uses_assignment_and_secrets_stay_hidden():
    """The consumer never commits; Kafka properties from the environment reach it and never the log line."""
    settings = FanoutSettings.from_args(
        ["--kafka-bootstrap", "k:9092", "--fault-skip-every", "3", "--fault-id", "v"],
        environ={"INGESTLOAD_KAFKA_PROP_SASL_PASSWORD": SECRET},
    )
    config = settings.consumer_config()
    assert config["enable.auto.commit"] == "false"
    assert config["sasl.password"] == SECRET
    assert config["bootstrap.servers"] == "k:9092"
    line = settings.describe()
    assert SECRET not in line
    assert "sasl.password=***" in line
    assert "skip every 3 (id=v)" in line
