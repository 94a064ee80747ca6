"""Render the shipped kustomizations and validate them offline.

    python -m tests.kube.manifests render [DIR]     # every overlay → DIR/<overlay>.yaml (default build/kube)
    python -m tests.kube.manifests validate         # kubernetes-validate --strict, oldest and newest schema

Besides each overlay, the optional components are rendered on top of the ci overlay (they use
APIs that Kubernetes 1.20 lacks — autoscaling/v2, policy/v1 — so only these offline checks see
them; the overlays themselves are also applied to a real 1.20 cluster by ``make test-kube``),
and the fan-out gateway on top of local, as a user tries the last hop in a cluster.
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


def kustomize(directory: Path) -> str:
    completed = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {completed.stderr.strip()}")
    return completed.stdout


def render_with_components(base: Path, parts: list[Path]) -> str:
    """``base`` with ``parts`` as components, through a kustomization in a scratch folder."""
    with tempfile.TemporaryDirectory() as scratch:
        lines = ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:"]
        # kustomize refuses absolute roots: name them relative to the scratch folder.
        lines += [f"  - {os.path.relpath(base, scratch)}", "components:"]
        lines += [f"  - {os.path.relpath(part, scratch)}" for part in parts]
        (Path(scratch) / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        return kustomize(Path(scratch))


def renderings() -> dict[str, str]:
    """Every rendering to check: each overlay, ci with all optional components, and local (the
    reference pipeline in the cluster) with the fan-out gateway."""
    rendered = {overlay.name: kustomize(overlay) for overlay in overlays()}
    optional = [c for c in components() if c.name != "reference-pipeline"]
    rendered["ci+" + "+".join(c.name for c in optional)] = render_with_components(
        KUBE / "overlays" / "ci", optional
    )
    rendered["local+fanout-gateway"] = render_with_components(
        KUBE / "overlays" / "local", [KUBE / "components" / "fanout-gateway"]
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
