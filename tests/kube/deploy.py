"""Apply the shipped overlays to the cluster under test and read what happened.

The overlays are applied as users apply them, through a kustomization of the test's own that
changes only what a cluster without a registry needs and the run's size: the image name,
``imagePullPolicy``, the worker replicas and their CPU request (a shipped worker requests one
core; the test node has two for everything), plus, where a check needs them, the run's name
(``namePrefix``), its rate and run time, its Kafka settings and a fault switch of the reference
API. The master derives how many workers to expect from their Deployment.

Every namespace gets the reports store (``kube/reports``) first; on the cluster the tests start
themselves (no volume provisioner) its claim is bound to a hostPath volume in the cluster's state
folder, made for it and deleted with the namespace.
"""

from __future__ import annotations

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
STORE = "deploy/ingestload-reports"


class Kube:
    """``kubectl`` against the cluster under test (``prefix`` is how to call it there); ``volumes``:
    where hostPath volumes for the reports store go (None: the cluster provisions its own)."""

    def __init__(
        self, prefix: Sequence[str], image: str, pull_policy: str, volumes: Path | None = None
    ) -> None:
        self.prefix = list(prefix)
        self.image = image
        self.pull_policy = pull_policy
        self.volumes = volumes

    def run_bytes(self, *args: str, timeout: float = 120) -> bytes:
        completed = subprocess.run([*self.prefix, *args], capture_output=True, timeout=timeout, check=False)
        if completed.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr.decode()[-2000:]}")
        return completed.stdout

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> str:
        completed = subprocess.run(
            [*self.prefix, *args], input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr.strip()[-2000:]}")
        return completed.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json"))


def run_kustomization(
    kube: Kube,
    namespace: str,
    overlay: str,
    workers: int | None = 3,
    api_env: Mapping[str, str] | None = None,
    name: str = "",
    settings: Mapping[str, str] | None = None,
    master_env: Mapping[str, str] | None = None,
    kafka: Mapping[str, str] | None = None,
    cpu_request: str = "",
) -> str:
    image, _, tag = kube.image.rpartition(":")
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
    # A shipped worker requests a core; a shared test node of two cores fits several runs only with
    # small requests (scheduling, not speed: nothing sets a CPU limit).
    requests = [({"kind": "Deployment", "name": WORKERS}, "100m")]
    if cpu_request:
        requests.append(
            ({"kind": "Deployment|Job", "labelSelector": "app.kubernetes.io/component"}, cpu_request)
        )
    for target, cpu in requests:
        path = "/spec/template/spec/containers/0/resources/requests/cpu"
        patches.append(
            {"target": target, "patch": json.dumps([{"op": "replace", "path": path, "value": cpu}])}
        )
    for key, value in (api_env or {}).items():
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
    generators = [
        {"name": config, "behavior": "merge", "literals": [f"{k}={v}" for k, v in values.items()]}
        for config, values in (
            ("ingestload-settings", settings),
            ("ingestload-master", master_env),
            ("ingestload-kafka", kafka),
        )
        if values
    ]
    return json.dumps(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            **({"namePrefix": f"{name}-"} if name else {}),
            "resources": ["OVERLAY"],
            "images": [{"name": SHIPPED_IMAGE, "newName": image, "newTag": tag}],
            **({"replicas": [{"name": WORKERS, "count": workers}]} if workers is not None else {}),
            **({"configMapGenerator": generators} if generators else {}),
            "patches": patches,
        }
    ).replace('"OVERLAY"', json.dumps(overlay))


def render(kube: Kube, namespace: str, directory: Path, **options: Any) -> str:
    """``directory`` (a kustomization) rendered for this cluster and ``namespace``."""
    with tempfile.TemporaryDirectory() as scratch:
        relative = os.path.relpath(directory, scratch)
        (Path(scratch) / "kustomization.yaml").write_text(
            run_kustomization(kube, namespace, relative, **options)
        )
        return subprocess.run(
            ["kubectl", "kustomize", scratch], capture_output=True, text=True, check=True
        ).stdout


def apply(
    kube: Kube,
    namespace: str,
    overlay: str = "local",
    workers: int = 3,
    api_env: Mapping[str, str] | None = None,
    rerun: bool = False,
    **options: Any,
) -> None:
    """Render ``kube/overlays/<overlay>`` for this cluster and apply it in ``namespace`` (a rerun:
    ``kubectl replace --force --cascade=foreground``, as the README says to run a finished run again)."""
    rendered = render(
        kube, namespace, ROOT / "kube" / "overlays" / overlay, workers=workers, api_env=api_env, **options
    )
    if rerun:
        kube.run("replace", "--force", "--cascade=foreground", "-f", "-", input=rendered, timeout=300)
    else:
        kube.run("apply", "-f", "-", input=rendered)


def add_reports_store(kube: Kube, namespace: str) -> None:
    """The namespace's reports store (kube/reports), on a volume of its own."""
    if kube.volumes is not None:
        folder = kube.volumes / namespace
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)  # the store runs as uid 10001; a hostPath volume ignores fsGroup
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-reports"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": "ingestload-reports"},
                "hostPath": {"path": str(folder), "type": "Directory"},
            },
        }
        kube.run("apply", "-f", "-", input=json.dumps(volume))
    kube.run("apply", "-f", "-", input=render(kube, namespace, ROOT / "kube" / "reports", workers=None))


def remove_reports_volume(kube: Kube, namespace: str) -> None:
    if kube.volumes is not None:
        kube.run("delete", "pv", f"{namespace}-reports", "--wait=false", check=False)


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


def wait_for_run(kube: Kube, namespace: str, timeout: float = 900, job: str = JOB) -> Outcome:
    """Wait until the master Job has ended; its status, the pod's exit code and log."""
    deadline = time.monotonic() + timeout
    while True:
        found = kube.json("get", "job", job, "-n", namespace)
        status = found.get("status", {})
        if status.get("succeeded") or status.get("failed"):
            break
        if time.monotonic() > deadline:  # a hang guard, not a verdict: report what is going on
            raise AssertionError(f"the Job did not end in {timeout:g}s:\n{describe(kube, namespace, job)}")
        time.sleep(2)
    pods = [
        pod
        for pod in kube.json("get", "pods", "-n", namespace, "-l", f"job-name={job}")["items"]
        if any(ref["uid"] == found["metadata"]["uid"] for ref in pod["metadata"].get("ownerReferences", []))
    ]
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


def wait_for_log(
    kube: Kube, namespace: str, text: str, times: int = 1, timeout: float = 300, job: str = JOB
) -> str:
    """Wait until the master's log holds ``text`` (``times`` times); returns the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = kube.run("logs", "-n", namespace, f"job/{job}", check=False)
        if log.count(text) >= times:
            return log
        time.sleep(1)
    raise AssertionError(
        f"{text!r} not in the master's log after {timeout:g}s:\n{describe(kube, namespace, job)}"
    )


def worker_pods(kube: Kube, namespace: str, instance: str = "ingestload") -> list[str]:
    selector = f"{WORKER_SELECTOR},app.kubernetes.io/instance={instance}"
    pods = kube.json("get", "pods", "-n", namespace, "-l", selector)["items"]
    return sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")


def readback(
    kube: Kube, namespace: str, run_id: str, prefix: str = "gov-", broker: str = "ingestload-broker"
) -> dict[str, Any]:
    """What the broker holds of the run, counted by ``readback.py`` inside the broker's pod."""
    out = kube.run(
        "exec", "-i", "-n", namespace, f"deploy/{broker}", "--",
        "python", "-", f"{broker}:9092", run_id, prefix,
        input=READBACK.read_text(), timeout=300,
    )  # fmt: skip
    return json.loads(out)


def reports(kube: Kube, namespace: str, run_id: str, instance: str = "ingestload") -> dict[str, bytes]:
    """The files of a run in the namespace's reports store, by name (read as the README says)."""
    data = kube.run_bytes(
        "exec", "-n", namespace, STORE, "--", "tar", "czf", "-", "-C", "/reports", f"{instance}/{run_id}"
    )
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                files[Path(member.name).name] = extracted.read()
    return files


def describe(kube: Kube, namespace: str, job: str = JOB) -> str:
    """Pods, events and the master's log tail, for a failure message."""
    parts = [
        kube.run("get", "pods,jobs,deploy,pvc", "-n", namespace, "-o", "wide", check=False),
        kube.run("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False)[-3000:],
        kube.run("logs", "-n", namespace, f"job/{job}", "--tail=40", check=False),
    ]
    return "\n".join(parts)
