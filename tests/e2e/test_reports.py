"""Every report of a run tells the same story as the console, and is written only where asked."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from ingestload.testing import describe_output, locust_command, processes_args

pytestmark = pytest.mark.e2e


def locust(root: Path, locustfile: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = locust_command(root / "locustfiles" / locustfile, *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=root)


def console_pacing(stderr: str) -> tuple[int, int]:
    """Target and offered of the "run … pacing: target N offered M" line."""
    match = re.search(r"pacing: target ([\d,]+) offered ([\d,]+)", stderr)
    assert match, stderr[-3000:]
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


def report_snapshot(path: Path) -> dict:
    """ingestload's data inlined in an HTML report."""
    match = re.search(r"window\.INGESTLOAD_SNAPSHOT = (.*?);</script>", path.read_text(), re.S)
    assert match, "no ingestload block in the report"
    return json.loads(match[1])


def pacing_rows(snapshot: dict) -> dict[str, list[str]]:
    (section,) = (s for s in snapshot["sections"] if s["key"] == "pacing")
    return {row[0]: row[1:] for row in section["rows"]}


def test_the_html_report_shows_the_console_pacing_account_with_two_workers(kafka, prefix, root, tmp_path):
    """`--processes 2 --html`: the report's pacing account is the console's (target, offered). Workers
    are told to stop twice (the drain, then Locust's stop at quit, after the verdict) and kept
    reporting; the report, written at quit, showed a target grown by the seconds to quit (issue 22)."""
    html, report = tmp_path / "r.html", tmp_path / "report.html"
    args = f"--headless -u 2 -r 2 -t 4s --rate 1000 --kafka-bootstrap {kafka} --topic-prefix {prefix}"
    reports = ["--html", str(html), "--report-file", str(report)]
    done = locust(root, "kafka.py", *args.split(), *reports, *processes_args(2))
    assert done.returncode == 0, describe_output(done)
    target, offered = console_pacing(done.stderr)
    for path in (html, report):  # written at quit, and at the test's stop
        rows = pacing_rows(report_snapshot(path))
        assert list(rows) == ["kafka"]
        assert rows["kafka"][:2] == [f"{target:,}", f"{offered:,}"], (path.name, rows, target, offered)
    assert target <= 4 * 1000 * 1.05  # the target of a 4 s run, not of the time until quit


def test_csv_files_with_processes_end_without_an_error(kafka, prefix, root, tmp_path):
    """`--processes 2 --csv`: no `ValueError: I/O operation on closed file` after the verdict. Locust's
    CSV writer ran on while the master exited (it yields then), after the files were closed; the
    locustfile makes that exit take 1.5 s, so the race that hit 2 runs of 5 hits every run."""
    csv = tmp_path / "stats"
    args = f"--headless -u 2 -r 2 -t 3s --rate 500 --kafka-bootstrap {kafka} --topic-prefix {prefix}"
    done = locust(
        root, "../tests/e2e/locustfiles/slow_exit.py", *args.split(), "--csv", str(csv), *processes_args(2)
    )
    assert done.returncode == 0, describe_output(done)
    assert "I/O operation on closed file" not in done.stderr, describe_output(done)
    assert "Unhandled exception in greenlet" not in done.stderr, describe_output(done)
    stats = Path(f"{csv}_stats.csv").read_text()
    assert "\nE2E," in stats  # the verdict's rows reached the file before it closed


def test_a_verdict_file_writes_no_report_beside_it_and_report_file_writes_one(kafka, prefix, root, tmp_path):
    """`--verdict-file DIR/v.json` writes the verdict only (it used to write DIR/report.html too);
    `--report-file` writes the HTML report where it says, `{run_id}` filled in."""
    args = f"--headless -u 1 -r 1 -t 2s --rate 200 --kafka-bootstrap {kafka} --topic-prefix {prefix}"
    quiet, asked = tmp_path / "quiet", tmp_path / "asked"
    done = locust(root, "kafka.py", *args.split(), "--verdict-file", str(quiet / "v.json"))
    assert done.returncode == 0, describe_output(done)
    assert sorted(p.name for p in quiet.iterdir()) == ["v.json"]

    done = locust(
        root,
        "kafka.py",
        *args.split(),
        "--run-id",
        "0badc0ffee0000aa",
        "--report-file",
        str(asked / "{run_id}" / "report.html"),
    )
    assert done.returncode == 0, describe_output(done)
    report = asked / "0badc0ffee0000aa" / "report.html"
    snapshot = report_snapshot(report)
    assert snapshot["run_id"] == "0badc0ffee0000aa"
    assert snapshot["status"] == "PASS"
