"""The shipped kustomizations, rendered and checked offline (part of ``make test``; no cluster)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.kube.manifests import VALIDATE_VERSIONS, renderings, validate

SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN|SASL_JAAS|SSL_KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return renderings()


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def pod_specs(doc: dict) -> list[dict]:
    template = doc.get("spec", {}).get("template", {})
    return [template["spec"]] if "spec" in template else []


def test_every_rendering_validates_strictly_against_old_and_new_schemas(rendered: dict[str, str]) -> None:
    """Each overlay, and ci with the optional components, passes kubernetes-validate --strict."""
    assert {"ci", "local", "external-kafka", "ui"} <= set(rendered)
    for name, text in rendered.items():
        for version in VALIDATE_VERSIONS:
            result = validate(text, version)
            assert result.returncode == 0, f"{name} on {version}: {result.stdout}{result.stderr}"


def test_strict_validation_rejects_a_misspelt_field(rendered: dict[str, str]) -> None:
    """The validator bites: one misspelt field in the ci rendering makes it fail."""
    broken = rendered["ci"].replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", 1)
    assert broken != rendered["ci"]
    assert validate(broken, VALIDATE_VERSIONS[-1]).returncode != 0


def test_no_rendering_names_a_namespace_or_inlines_a_secret(rendered: dict[str, str]) -> None:
    """No hard-coded namespace, no Secret object, and secret-looking variables only by reference."""
    for name, text in rendered.items():
        for doc in documents(text):
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            assert "namespace" not in doc["metadata"], where
            assert doc["kind"] != "Secret", where
            if doc["kind"] == "ConfigMap":
                assert not any(SECRET_LIKE.search(key) for key in doc.get("data", {})), where
            for spec in pod_specs(doc):
                for container in spec.get("containers", []):
                    for env in container.get("env", []):
                        if SECRET_LIKE.search(env["name"]):
                            assert "secretKeyRef" in env.get("valueFrom", {}), f"{where}: {env['name']}"
                    assert not any(SECRET_LIKE.search(arg) for arg in container.get("args", [])), where


def test_every_object_carries_the_recommended_labels(rendered: dict[str, str]) -> None:
    """app.kubernetes.io/name, instance (where it selects), component and part-of on every object
    and pod template; every workload runs as non-root."""
    for name, text in rendered.items():
        for doc in documents(text):
            labels = doc["metadata"].get("labels", {})
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            assert labels.get("app.kubernetes.io/name") == "ingestload", where
            assert labels.get("app.kubernetes.io/part-of") == "ingestload", where
            for spec in pod_specs(doc):
                assert spec["securityContext"]["runAsNonRoot"] is True, where
                template_labels = doc["spec"]["template"]["metadata"]["labels"]
                assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= set(template_labels), (
                    where
                )


def test_the_ci_master_is_a_job_that_never_retries_and_workers_drain_in_time(
    rendered: dict[str, str],
) -> None:
    """backoffLimit 0 (a FAIL is never retried into a PASS) and a grace period longer than the drain."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(rendered["ci"])}
    job = docs[("Job", "ingestload-master")]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    worker = docs[("Deployment", "ingestload-worker")]
    settings = next(
        d for (kind, n), d in docs.items() if kind == "ConfigMap" and n.startswith("ingestload-settings")
    )
    drain = float(settings["data"]["INGESTLOAD_DRAIN_TIMEOUT"])
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain
