"""Whole runs driven by a rate profile (local, --processes 2, master + 2 workers), checked by the
broker timestamps of what landed; the rate guard's exit code; bad profile input."""

import re
import subprocess

import pytest

from ingestload.rate.profile import RateProfile
from ingestload.testing import (
    counts_per_window,
    describe_output,
    processes_args,
    run_timestamps,
    worker_processes,
)
from tests.e2e.test_headless_runs import TOPICS_OF, locust, stopped_line

pytestmark = pytest.mark.e2e

RUN = "0badc0ffee000005"
PROFILE = """
name: e2e ramp
stages:
  - {kind: ramp, from: 500, to: 4000, duration: 6s}
  - {kind: hold, duration: 2s}
"""


def pacing_line(stderr: str, run_id: str) -> str:
    return next(line for line in stderr.splitlines() if f"run {run_id} pacing: " in line)


def assert_follows_profile(kafka: str, prefix: str, done: subprocess.CompletedProcess, profile: RateProfile):
    """The run ended with the profile, sent its integral, and every 2-second window of broker
    timestamps holds the profile's count for that window.

    The bounds check the mechanism (the ramp is followed, nothing is skipped or doubled) with
    room for a busy 2-core CI machine; the precision is measured by bench/rate_accuracy.py.
    """
    assert done.returncode == 0, describe_output(done)
    assert "Shape test completed" in done.stderr
    stamps = run_timestamps({"bootstrap.servers": kafka}, TOPICS_OF(prefix), RUN)
    summary = stopped_line(done.stderr, RUN)
    assert len(stamps) == summary["acked"] == summary["sent"]
    assert abs(len(stamps) - profile.total) <= 0.02 * profile.total, (len(stamps), profile.total)
    assert f"target {profile.total:,.0f} offered {len(stamps):,}" in pacing_line(done.stderr, RUN)
    span = (stamps[-1] - stamps[0]) / 1000
    assert profile.duration - 1.0 <= span <= profile.duration + 1.0, span
    windows = counts_per_window(stamps, stamps[0], 2.0, 4)
    for k, count in enumerate(windows):
        expected = profile.count_until(2 * k + 2) - profile.count_until(2 * k)
        assert abs(count - expected) <= 0.15 * expected, (k, windows)


def profile_run(root, kafka, prefix, path, *extra: str) -> subprocess.CompletedProcess:
    args = f"--headless --only-summary --topic-prefix {prefix} --run-id {RUN} --rate-profile {path}"
    return locust(root, *args.split(), *extra, "--kafka-bootstrap", kafka)


@pytest.fixture
def profile_file(tmp_path):
    path = tmp_path / "ramp.yaml"
    path.write_text(PROFILE)
    return path


@pytest.mark.parametrize("how", ["LocalRunner", "--processes 2"])
def test_profile_run_lands_on_the_profile(kafka, prefix, root, profile_file, how):
    """A ramp profile run (no -t, no -u) ends with the profile; what landed follows it."""
    done = profile_run(
        root, kafka, prefix, profile_file, *(processes_args(2) if how != "LocalRunner" else [])
    )
    assert_follows_profile(kafka, prefix, done, RateProfile.load(profile_file))


def test_profile_run_with_a_master_and_two_workers(kafka, prefix, root, profile_file):
    """A --master with two separately started --worker processes follows the profile together."""
    with worker_processes(root / "locustfiles" / "kafka.py", 2, cwd=root) as port:
        master = f"--master --master-bind-port {port} --expect-workers 2"
        done = profile_run(root, kafka, prefix, profile_file, *master.split())
    assert_follows_profile(kafka, prefix, done, RateProfile.load(profile_file))
    assert "Shape test updating to 2 users" in done.stderr  # one fixed pool: start() entered once
    assert done.stderr.count("Shape test updating") == 1


def test_rate_guard_fails_the_run_with_exit_code_5(kafka, prefix, root):
    """When Kafka cannot keep up (a 10-message local queue, 1.5 s linger) the guard exits 5, names the
    shortfall, and --max-lateness drops instead of bursting; everything offered still lands. (The load
    verdict, which would fail the run with 3 for the same shortfall, is off: --min-offered-ratio 0.)"""
    args = (
        f"--headless --only-summary -u 1 -r 1 -t 6s --rate 1000 --topic-prefix {prefix} --run-id {RUN} "
        "--min-rate-ratio 0.95 --min-rate-window 2s --max-lateness 500ms --drain-timeout 20 "
        "--min-offered-ratio 0"
    )
    slow = ("--kafka-config", "queue.buffering.max.messages=10", "--kafka-config", "linger.ms=1500")
    done = locust(root, *args.split(), *slow, "--kafka-bootstrap", kafka)
    assert done.returncode == 5, describe_output(done)
    assert re.search(r"rate guard: offered \d+/s vs target 1,000/s \(\d+\.\d%\) for \d+s", done.stderr)
    pacing = pacing_line(done.stderr, RUN)
    number = lambda name: int(re.search(rf"{name} ([\d,]+)", pacing).group(1).replace(",", ""))  # noqa: E731
    dropped, offered, target, due = (
        number("dropped"),
        number("offered"),
        number("target"),
        number("still due at stop"),
    )
    assert dropped > 0, pacing
    assert abs(target - (offered + dropped + due)) <= 1, (
        pacing
    )  # nothing absorbed: every due message is accounted
    summary = stopped_line(done.stderr, RUN)
    stamps = run_timestamps({"bootstrap.servers": kafka}, TOPICS_OF(prefix), RUN)
    assert len(stamps) == summary["acked"] == summary["sent"] < 1000


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            ["--rate-profile", "{bad}"],
            "ingestload: error: {bad}: stages[1] (hold).duration: '5min' is not a duration; "
            "did you mean '5m'?",
        ),
        (
            ["--rate-profile", "{bad}", "--rate", "100"],
            "ingestload: error: --rate 100 and --rate-profile {bad}: give only one of them",
        ),
        (
            ["--rate-split", "api=1"],
            "ingestload: error: --rate-split: no user class has path 'api' (paths of this locustfile: kafka)",
        ),
    ],
)
def test_bad_rate_input_fails_before_any_load(kafka, prefix, root, tmp_path, extra, expected):
    """A bad profile, --rate together with a profile, or a split naming a path without users: exit 2."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - {kind: hold, rate: 5, duration: 1s}\n  - {kind: hold, duration: 5min}\n")
    args = [a.format(bad=bad) for a in extra]
    done = locust(root, "--headless", "-t", "5s", "--kafka-bootstrap", kafka, "--topic-prefix", prefix, *args)
    assert done.returncode == 2, describe_output(done)
    assert expected.format(bad=bad) in done.stderr
    assert "Traceback" not in done.stderr
