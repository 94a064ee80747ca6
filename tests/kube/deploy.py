"""Apply the shipped overlays to the cluster under test and read what happened.

The overlays are applied as users apply them, through a kustomization of the test's own that
changes only what a cluster without a registry needs and the replica counts: the image name,
``imagePullPolicy``, the worker replicas (and the master's ``LOCUST_EXPECT_WORKERS`` to match),
plus, where a check needs one, a fault switch of the reference API.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
READBACK = Path(__file__).with_name("readback.py")
SHIPPED_IMAGE = "registry.example.com/ingestload"
JOB = "ingestload-master"
WORKERS = "ingestload-worker"
WORKER_SELECTOR = "app.kubernetes.io/name=ingestload,app.kubernetes.io/component=worker"


class Kube:
    """``kubectl`` against the cluster under test (``prefix`` is how to call it there)."""

    def __init__(self, prefix: Sequence[str], image: str, pull_policy: str) -> None:
        self.prefix = list(prefix)
        self.image = image
        self.pull_policy = pull_policy

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        completed = subprocess.run(
            [*self.prefix, *args], input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr.strip()[-2000:]}")
        return completed.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))


def test_kustomization(
    kube: Kube, namespace: str, overlay: str, workers: int, api_env: Mapping[str, str]
) -> str:
    name, _, tag = kube.image.rpartition(":")
    patches = []
    for kind in ("Deployment", "Job"):
        patches.append(
            {
                "target": {"kind": kind},
                "patch": json.dumps(
                    [
                        {
                            "op": "add",
                            "path": "/spec/template/spec/containers/0/imagePullPolicy",
                            "value": kube.pull_policy,
                        }
                    ]
                ),
            }
        )
    for key, value in api_env.items():
        patches.append(
            {
                "target": {"kind": "Deployment", "name": "ingestload-api"},
                "patch": json.dumps(
                    [
                        {
                            "op": "add",
                            "path": "/spec/template/spec/containers/0/env/-",
                            "value": {"name": key, "value": value},
                        }
                    ]
                ),
            }
        )
    return json.dumps(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": ["OVERLAY"],
            "images": [{"name": SHIPPED_IMAGE, "newName": name, "newTag": tag}],
            "replicas": [{"name": WORKERS, "count": workers}],
            "configMapGenerator": [
                {
                    "name": "ingestload-master",
                    "behavior": "merge",
                    "literals": [f"LOCUST_EXPECT_WORKERS={workers}"],
                }
            ],
            "patches": patches,
        }
    ).replace('"OVERLAY"', json.dumps(overlay))


def apply(
    kube: Kube,
    namespace: str,
    overlay: str = "local",
    workers: int = 3,
    api_env: Mapping[str, str] | None = None,
) -> None:
    """Render ``kube/overlays/<overlay>`` for this cluster and apply it in ``namespace``."""
    with tempfile.TemporaryDirectory() as scratch:
        relative = os.path.relpath(ROOT / "kube" / "overlays" / overlay, scratch)
        (Path(scratch) / "kustomization.yaml").write_text(
            test_kustomization(kube, namespace, relative, workers, api_env or {})
        )
        rendered = subprocess.run(
            ["kubectl", "kustomize", scratch], capture_output=True, text=True, check=True
        ).stdout
    kube.run("apply", "-f", "-", input=rendered)


@dataclass
class Outcome:
    """How a headless run ended, as Kubernetes and the master's pod tell it."""

    job_status: str
    """``Succeeded`` or ``Failed``."""
    exit_code: int
    log: str
    pod: str
    run_id: str

    def verdict_line(self) -> str:
        lines = [line for line in self.log.splitlines() if "VERDICT:" in line]
        assert lines, f"no VERDICT line in the master's log:\n{self.log[-3000:]}"
        return lines[-1]

    def count(self, word: str) -> int:
        """A count from the verdict line, e.g. ``acked``."""
        for part in self.verdict_line().split():
            if part.startswith(word + "="):
                return int(part.split("=", 1)[1].replace(",", ""))
        raise AssertionError(f"no {word}= in {self.verdict_line()!r}")


def wait_for_run(kube: Kube, namespace: str, timeout: float = 900) -> Outcome:
    """Wait until the master Job has ended; its status, the pod's exit code and log."""
    deadline = time.monotonic() + timeout
    while True:
        status = kube.json("get", "job", JOB, "-n", namespace).get("status", {})
        if status.get("succeeded") or status.get("failed"):
            break
        if time.monotonic() > deadline:  # a hang guard, not a verdict: report what is going on
            raise AssertionError(f"the Job did not end in {timeout:g}s:\n{describe(kube, namespace)}")
        time.sleep(2)
    pods = kube.json("get", "pods", "-n", namespace, "-l", f"job-name={JOB}")["items"]
    assert len(pods) == 1, f"backoffLimit 0 means one master pod, found {len(pods)}"
    pod = pods[0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    log = kube.run("logs", "-n", namespace, pod["metadata"]["name"])
    run_id = next(
        line.split()[2].rstrip(";") for line in log.splitlines() if line.startswith("ingestload-job: run ")
    )
    return Outcome(
        job_status="Succeeded" if status.get("succeeded") else "Failed",
        exit_code=int(terminated["exitCode"]),
        log=log,
        pod=pod["metadata"]["name"],
        run_id=run_id,
    )


def wait_for_log(kube: Kube, namespace: str, text: str, times: int = 1, timeout: float = 300) -> str:
    """Wait until the master's log holds ``text`` (``times`` times); returns the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = kube.run("logs", "-n", namespace, f"job/{JOB}", check=False)
        if log.count(text) >= times:
            return log
        time.sleep(1)
    raise AssertionError(f"{text!r} not in the master's log after {timeout:g}s:\n{describe(kube, namespace)}")


def worker_pods(kube: Kube, namespace: str) -> list[str]:
    pods = kube.json("get", "pods", "-n", namespace, "-l", WORKER_SELECTOR)["items"]
    return sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")


def readback(kube: Kube, namespace: str, run_id: str, prefix: str = "gov-") -> dict[str, Any]:
    """What the broker holds of the run, counted by ``readback.py`` inside the broker's pod."""
    out = kube.run(
        "exec", "-i", "-n", namespace, "deploy/ingestload-broker", "--",
        "python", "-", "ingestload-broker:9092", run_id, prefix,
        input=READBACK.read_text(), timeout=300,
    )  # fmt: skip
    return json.loads(out)


def reports(kube: Kube, namespace: str, run_id: str) -> dict[str, bytes]:
    """The files the master kept in its reports ConfigMap, by name."""
    config = kube.json("get", "configmap", "-n", namespace, f"ingestload-reports-{run_id}")
    data = base64.b64decode(config["binaryData"]["reports.tar.gz"])
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                files[Path(member.name).name] = extracted.read()
    return files


def describe(kube: Kube, namespace: str) -> str:
    """Pods, events and the master's log tail, for a failure message."""
    parts = [
        kube.run("get", "pods,jobs,deploy", "-n", namespace, "-o", "wide", check=False),
        kube.run("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)[-3000:],
        kube.run("logs", "-n", namespace, f"job/{JOB}", "--tail=40", check=False),
    ]
    return "\n".join(parts)
