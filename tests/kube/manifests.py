"""Render the shipped kustomizations and validate them offline.

    python -m tests.kube.manifests render [DIR]     # every overlay → DIR/<overlay>.yaml (default build/kube)
    python -m tests.kube.manifests validate         # kubernetes-validate --strict, oldest and newest schema

Besides each overlay, the reports store (``kube/reports``), the examples (``kube/examples/*``:
named runs against Strimzi and a managed Kafka), the optional components on top of the ci overlay
(they use APIs that Kubernetes 1.20 lacks — autoscaling/v2, policy/v1 — so only these offline
checks see them; the overlays themselves are also applied to a real 1.20 cluster by ``make
test-kube``), the fan-out gateway with the reference pipeline, as a user tries the last hop in a
cluster, and a named run (``namePrefix``) of local with every optional component.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "kube"
#: Schemas of kubernetes-validate's range checked: its oldest and the newest (strict mode).
VALIDATE_VERSIONS = ("1.25.0", "1.37.0")


def overlays() -> list[Path]:
    return sorted(p for p in (KUBE / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def components() -> list[Path]:
    return sorted(p for p in (KUBE / "components").iterdir() if (p / "kustomization.yaml").exists())


def examples() -> list[Path]:
    return sorted(p for p in (KUBE / "examples").iterdir() if (p / "kustomization.yaml").exists())


def kustomize(directory: Path) -> str:
    completed = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {completed.stderr.strip()}")
    return completed.stdout


def render_with_components(base: Path, parts: list[Path], name_prefix: str = "") -> str:
    """``base`` with ``parts`` as components (and a run name), through a kustomization in a scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization"]
        lines += [f"namePrefix: {name_prefix}"] if name_prefix else []
        lines += ["resources:"]
        # kustomize refuses absolute roots: name them relative to the scratch folder.
        lines += [f"  - {os.path.relpath(base, scratch)}", "components:"]
        lines += [f"  - {os.path.relpath(part, scratch)}" for part in parts]
        (Path(scratch) / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        return kustomize(Path(scratch))


def renderings() -> dict[str, str]:
    """Every rendering to check: each overlay, the reports store, each example, ci with all
    optional components, ci with the fan-out gateway and the reference pipeline, and a named run
    of that with every optional component."""
    rendered = {overlay.name: kustomize(overlay) for overlay in overlays()}
    rendered["reports"] = kustomize(KUBE / "reports")
    for example in examples():
        rendered["example-" + example.name] = kustomize(example)
    optional = [c for c in components() if c.name != "reference-pipeline"]
    ci = KUBE / "overlays" / "ci"
    rendered["ci+" + "+".join(c.name for c in optional)] = render_with_components(ci, optional)
    # The gateway before the pipeline: the pipeline gives it the broker's address.
    gateway = [KUBE / "components" / "fanout-gateway", KUBE / "components" / "reference-pipeline"]
    rendered["local+fanout-gateway"] = render_with_components(ci, gateway)
    # The storage hop as one tries it: the sink, a PostgreSQL of its own, then the pipeline.
    storage = [KUBE / "components" / c for c in ("sink", "sink-postgres", "reference-pipeline")]
    rendered["local+sink+sink-postgres"] = render_with_components(ci, storage)
    everything = [*optional, KUBE / "components" / "reference-pipeline"]
    rendered["team-a-local+" + "+".join(c.name for c in optional)] = render_with_components(
        ci, everything, name_prefix="team-a-"
    )
    return rendered


def validate(text: str, version: str) -> subprocess.CompletedProcess[str]:
    validator = Path(sys.executable).with_name("kubernetes-validate")
    return subprocess.run(
        [str(validator), "-k", version, "--strict", "--quiet", "-"],
        input=text,
        capture_output=True,
        text=True,
    )


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "validate"
    if command == "render":
        out = Path(argv[1]) if len(argv) > 1 else ROOT / "build" / "kube"
        out.mkdir(parents=True, exist_ok=True)
        for name, text in renderings().items():
            (out / f"{name}.yaml").write_text(text)
            print(f"{out / name}.yaml: {text.count('kind: ')} objects")
        return 0
    if command == "validate":
        failed = 0
        for name, text in renderings().items():
            for version in VALIDATE_VERSIONS:
                result = validate(text, version)
                status = "ok" if result.returncode == 0 else "INVALID"
                print(f"{name:<50} Kubernetes {version} strict: {status}")
                if result.returncode != 0:
                    failed += 1
                    print((result.stdout + result.stderr).strip())
        return 1 if failed else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
