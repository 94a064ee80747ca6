"""Locust's statistics count messages in Aggregated: the HTTP path's requests stay in their POST rows."""

import csv
import json
import subprocess

import pytest

from ingestload.api.testing import run_api
from ingestload.testing import describe_output, locust_command

pytestmark = pytest.mark.e2e


def test_aggregated_counts_every_message_of_both_paths_once(kafka, prefix, root, tmp_path):
    """Both paths, batches of 20: Aggregated = KAFKA messages + API messages = what was acknowledged;
    POST rows count requests (up to 20 messages each) and stay out of it. Aggregated used to add the
    Kafka path's messages to the API path's requests (6,967/s for a run that acked 10,000 msg/s)."""
    verdict_file, stats = tmp_path / "v.json", tmp_path / "stats"
    args = (
        f"--headless -u 6 -r 6 -t 4s --rate 1000 --api-batch-size 20 --kafka-bootstrap {kafka} "
        f"--topic-prefix {prefix} --verdict-file {verdict_file} --csv {stats} --min-offered-ratio 0"
    )
    with run_api(kafka, "--topic-prefix", prefix) as api:
        command = locust_command(root / "locustfiles" / "ingest.py", *args.split(), "--host", api.url)
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=root)
    assert done.returncode == 0, describe_output(done)
    rows = list(csv.DictReader((tmp_path / "stats_stats.csv").read_text().splitlines()))
    count = {}
    for row in rows:
        count[row["Type"] or "Aggregated"] = count.get(row["Type"] or "Aggregated", 0) + int(
            row["Request Count"]
        )
    verdict = json.loads(verdict_file.read_text())
    assert count["KAFKA"] > 0, count
    assert count["API"] > 0, count
    assert count["Aggregated"] == count["KAFKA"] + count["API"] == verdict["acked"], (count, verdict["acked"])
    assert 0 < count["POST"] <= count["API"], count  # a request carries one message or more
