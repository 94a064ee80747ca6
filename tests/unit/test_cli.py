"""The `ingestload` command's pure parts: what its process title and its children's argv may show."""

import argparse

from ingestload.cli import _option_args, shown_argv
from ingestload.settings import OPTIONS


def test_the_process_title_hides_secret_values():
    """Values of secret options are replaced, in both spellings; other properties stay readable."""
    argv = [
        "run",
        "--kafka-config",
        "sasl.password=hunter2",
        "--kafka-config=acks=all",
        "--api-token=t0ken",
        "--api-header",
        "Authorization: Basic c2VjcmV0",
        "--rate",
        "100",
    ]
    shown = " ".join(shown_argv(argv))
    for secret in ("hunter2", "t0ken", "c2VjcmV0"):
        assert secret not in shown
    assert "acks=all" in shown
    assert "--rate 100" in shown


def test_children_get_secret_options_through_the_environment_not_argv():
    """`ingestload run` passes --kafka-config, --api-token, --api-header to Locust only as env vars."""
    values = {opt.dest: None for opt in OPTIONS}
    values.update(
        kafka_config=["sasl.password=hunter2"],
        api_token="t0ken",
        api_header=["Authorization: Basic c2VjcmV0"],
        rate="50",
    )
    argv, env = _option_args(argparse.Namespace(**values), "127.0.0.1:9092")
    assert not any(s in " ".join(argv) for s in ("hunter2", "t0ken", "c2VjcmV0"))
    assert argv[argv.index("--rate") : argv.index("--rate") + 2] == ["--rate", "50"]
    assert env["INGESTLOAD_KAFKA_CONFIG"].endswith("sasl.password=hunter2")
    assert env["INGESTLOAD_API_TOKEN"] == "t0ken"
    assert env["INGESTLOAD_API_HEADER"] == "Authorization: Basic c2VjcmV0"
