"""The storage hop on a real cluster (issue 21): the ``sink`` component (the reference sink as a
Deployment of its own consumer group) and ``sink-postgres`` (a throwaway PostgreSQL in the cluster)
on top of the ``local`` overlay, a short named run: the Job's verdict covers the table, and the
table holds one row per message of the run that the broker holds — counted by a query of the
test's own in the database's pod and by ``readback.py`` in the broker's, not by the verdict.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.kube.conftest import FACTS, fresh_namespace
from tests.kube.deploy import ROOT, Kube, readback, render, reports, wait_for_run

pytestmark = pytest.mark.kube

NAME = "store"
SMALL = {"INGESTLOAD_JOB_RUN_TIME": "30s", "INGESTLOAD_JOB_USERS": "11", "LOCUST_SPAWN_RATE": "11"}
#: Rows of the run in the table, and copies beyond one per message (a query of the test's own).
COUNT = """
import sys, psycopg
with psycopg.connect("postgresql://ingestload@127.0.0.1:5432/ingestload") as conn:
    rows, ids = conn.execute(
        "SELECT count(*), count(DISTINCT id) FROM ingestload_messages WHERE run_id = %s", (sys.argv[1],)
    ).fetchone()
print(rows, ids)
"""
#: On a failure, what the table holds of the run and of the messages the verdict missed.
LOOK = """
import sys, psycopg
run, wanted = sys.argv[1], sys.argv[2:]
with psycopg.connect("postgresql://ingestload@127.0.0.1:5432/ingestload") as conn:
    print("rows by run_id:", conn.execute(
        "SELECT run_id, count(*) FROM ingestload_messages GROUP BY run_id ORDER BY 2 DESC LIMIT 5"
    ).fetchall())
    print("rows of the run without the envelope member:", conn.execute(
        "SELECT count(*) FROM ingestload_messages WHERE run_id = %s AND NOT body ? '_ingestload'", (run,)
    ).fetchone()[0])
    for item in wanted:
        producer, seq = item.split("#")
        key = f"{run}:{int(producer, 16)}:{seq}"
        print(item, key, conn.execute(
            "SELECT topic, kafka_partition, kafka_offset, left(body::text, 400) FROM ingestload_messages "
            "WHERE id = %s OR body->>'_ingestload' LIKE %s", (key, f"%{producer}%")
        ).fetchmany(3))
"""


def storage_overlay(scratch: str) -> Path:
    """ci + sink + sink-postgres + reference-pipeline, as kube/components/sink's comment says."""
    folder = Path(scratch)
    kube = os.path.relpath(ROOT / "kube", folder)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {kube}/overlays/ci\ncomponents:\n"
        f"  - {kube}/components/sink\n  - {kube}/components/sink-postgres\n"
        f"  - {kube}/components/reference-pipeline\n"
    )
    return folder


def test_a_named_run_with_the_sink_component_judges_the_table_exactly(kube: Kube) -> None:
    """PASS for every hop, the Job Succeeded; the table holds each message the broker holds once."""
    with fresh_namespace(kube, "sink") as namespace, tempfile.TemporaryDirectory() as scratch:
        rendered = render(
            kube, namespace, storage_overlay(scratch), workers=2, name=NAME,
            settings={"INGESTLOAD_RATE": "400"}, master_env=SMALL, cpu_request="50m",
        )  # fmt: skip
        kube.run("apply", "-f", "-", input=rendered)
        outcome = wait_for_run(kube, namespace, job=f"{NAME}-ingestload-master")
        verdict = json.loads(reports(kube, namespace, outcome.run_id, f"{NAME}-ingestload")["verdict.json"])
        sink = verdict["sink"]
        if (outcome.job_status, outcome.exit_code) != ("Succeeded", 0) or sink["status"] != "PASS":
            raise AssertionError(
                f"{outcome.job_status}, exit {outcome.exit_code}; sink {sink}\n"
                f"{look(kube, namespace, outcome, sink)}\n{outcome.log[-3000:]}"
            )
        held = readback(kube, namespace, outcome.run_id, broker=f"{NAME}-ingestload-broker")
        counted = kube.run(
            "exec", "-i", "-n", namespace, f"deploy/{NAME}-ingestload-postgres", "--",
            "python", "-", outcome.run_id, input=COUNT,
        )  # fmt: skip
        rows, ids = (int(n) for n in counted.split())
        assert rows == ids == held["distinct"] == sink["stored"] == sink["acked"] > 5000
        assert "SINK VERDICT: PASS" in outcome.log
        status = kube.run("logs", "-n", namespace, f"deploy/{NAME}-ingestload-sink", "--tail", "1").strip()
        FACTS.append(
            f"storage hop {outcome.run_id}: {rows:,} rows = {held['distinct']:,} messages in Kafka; "
            f"the sink's last line: {status}"
        )


def look(kube: Kube, namespace: str, outcome: Any, sink: dict[str, Any]) -> str:
    """What a failure's reader needs: the table's view of the missed messages, the sink's log."""
    missed = [i for kind in ("lost", "missing") for i in sink.get("first_ids", {}).get(kind, [])]
    parts = []
    for args, text in (
        (["exec", "-i", "-n", namespace, f"deploy/{NAME}-ingestload-postgres", "--", "python", "-",
          outcome.run_id, *missed], LOOK),
        (["logs", "-n", namespace, f"deploy/{NAME}-ingestload-sink", "--tail", "40"], None),
    ):  # fmt: skip
        try:
            parts.append(kube.run(*args, input=text))
        except Exception as e:  # a diagnosis, never the failure itself
            parts.append(f"({' '.join(args[:3])}: {e})")
    return "\n".join(parts)
