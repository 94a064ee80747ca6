"""The `ingestload` command's pure parts: what its process title and its children's argv may show,
and the plan `ingestload run` makes (and checks) before it starts anything."""

import copy

import pytest

from ingestload.cli import build_parser, shown_argv
from ingestload.errors import IngestloadError
from ingestload.launch import RunPlan


def plan_of(*argv: str) -> RunPlan:
    return RunPlan.from_args(build_parser().parse_args(["run", *argv]), [])


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
    plan = plan_of(
        "--kafka-config",
        "sasl.password=hunter2",
        "--api-token",
        "t0ken",
        "--api-header",
        "Authorization: Basic c2VjcmV0",
        "--rate",
        "50",
    )
    argv, env = plan.locust_command("127.0.0.1:9092", "http://127.0.0.1:8080", None)
    assert not any(s in " ".join(argv) for s in ("hunter2", "t0ken", "c2VjcmV0"))
    assert argv[argv.index("--rate") : argv.index("--rate") + 2] == ["--rate", "50"]
    assert env["INGESTLOAD_KAFKA_CONFIG"].endswith("sasl.password=hunter2")
    assert env["INGESTLOAD_API_TOKEN"] == "t0ken"
    assert env["INGESTLOAD_API_HEADER"] == "Authorization: Basic c2VjcmV0"


def test_the_plan_leaves_the_parsed_arguments_as_they_were():
    """Parse → a frozen plan: nothing is written back into the arguments (run id, files, API)."""
    args = build_parser().parse_args(["run", "--rate", "100", "--fanout"])
    before = copy.deepcopy(vars(args))
    plan = RunPlan.from_args(args, [])
    assert vars(args) == before
    assert plan.start_gateway  # --fanout: device → Kafka → gateway
    assert not plan.start_api
    assert plan.option("verdict_file") == str(plan.reports / "verdict.json")
    assert plan.option("run_id") == plan.run_id


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run-time", "5x"], "--run-time: '5x' is not a duration; expected e.g. 90s, 5m or 1h30m"),
        (["--run-time", "0s"], "--run-time: '0s' is not allowed"),
        (["--kafka-config", "bogus.property=1"], "--kafka-config: rejected by the Kafka producer"),
        (
            ["--verifier-config", "fetch.wait.max.ms=x"],
            "--kafka-config or --verifier-config: rejected by the Kafka consumer",
        ),
        (["--subscribers", "5"], "--subscribers: only with --fanout"),
        (["--processes", "0"], "--processes: 0 is not allowed; expected an integer ≥ 1"),
        (["--locustfile", "no/such.py"], "--locustfile: no such file 'no/such.py'"),
        (["--rate", "-5"], "--rate: '-5' is not allowed"),
    ],
)
def test_bad_input_is_one_line_before_anything_starts(argv, message):
    """Every value `ingestload run` hands on is checked while the plan is made (no broker, no API yet)."""
    with pytest.raises(IngestloadError) as raised:
        plan_of(*argv)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
