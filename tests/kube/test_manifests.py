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


def fanout_renderings(rendered: dict[str, str]) -> dict[str, str]:
    return {name: text for name, text in rendered.items() if "fanout-gateway" in name}


def config_map(docs: dict[tuple[str, str], dict], prefix: str) -> dict:
    return next(d for (kind, n), d in docs.items() if kind == "ConfigMap" and n.startswith(prefix))


def test_the_fanout_component_adds_a_gateway_that_the_subscribers_point_at(rendered: dict[str, str]) -> None:
    """With the fanout-gateway component (on ci and on local): a gateway Deployment (ingestload
    fanout, ready on /readyz) and its Service, the settings' INGESTLOAD_WS_URL naming that Service
    and port, a locustfile with subscriber users, and a master Job that waits for the gateway
    besides what it waited for before; no overlay without the component gets any of these."""
    assert {"local+fanout-gateway"} < set(fanout_renderings(rendered))
    for name, text in fanout_renderings(rendered).items():
        docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(text)}
        container = docs[("Deployment", "ingestload-fanout")]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["ingestload", "fanout"], name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        service = docs[("Service", "ingestload-fanout")]["spec"]["ports"][0]
        assert service["targetPort"] == container["ports"][0]["name"], name
        settings = config_map(docs, "ingestload-settings")
        assert settings["data"]["INGESTLOAD_WS_URL"] == f"ws://ingestload-fanout:{service['port']}/v1/stream"
        assert "WebSocketSubscriberUser" in config_map(docs, "ingestload-locustfile")["data"]["locustfile.py"]
        master = docs[("Job", "ingestload-master")]["spec"]["template"]["spec"]["containers"][0]
        waits = {
            e["name"]: e.get("value") for e in master["env"] if e["name"].startswith("INGESTLOAD_JOB_WAIT")
        }
        assert (
            waits["INGESTLOAD_JOB_WAIT_FOR_GATEWAY"] == f"http://ingestload-fanout:{service['port']}/readyz"
        )
        if name.startswith("local"):  # the reference pipeline's wait is kept, not replaced
            assert "tcp://ingestload-broker:9092" in waits["INGESTLOAD_JOB_WAIT_FOR"]
    for overlay in ("ci", "local", "ui", "external-kafka"):
        assert "ingestload-fanout" not in rendered[overlay]
        assert "WebSocketSubscriberUser" not in rendered[overlay]


def test_the_fanout_gateway_reads_its_settings_from_what_the_component_gives_it(
    rendered: dict[str, str],
) -> None:
    """The gateway container's environment (the run's settings ConfigMap and its own variables)
    parses as valid ``ingestload fanout`` settings: the cluster's Kafka, all interfaces, the port
    its Service targets; nothing in it is refused."""
    from ingestload.fanout.config import FanoutSettings

    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(rendered["local+fanout-gateway"])}
    container = docs[("Deployment", "ingestload-fanout")]["spec"]["template"]["spec"]["containers"][0]
    environ = {
        **config_map(docs, "ingestload-settings")["data"],
        **{e["name"]: e["value"] for e in container["env"]},
    }
    settings = FanoutSettings.from_args([], environ=environ)
    assert settings.kafka.bootstrap == "ingestload-broker:9092"
    assert not settings.embedded_broker
    assert (settings.host, settings.port) == ("0.0.0.0", container["ports"][0]["containerPort"])


def test_the_fanout_locustfile_puts_every_kind_of_user_on_every_worker(rendered: dict[str, str]) -> None:
    """With the ci overlay's users and workers, Locust's own dispatcher gives each worker a Kafka
    producer, API users and live views (a worker without a Kafka user would send nothing there)."""
    from locust.dispatch import UsersDispatcher
    from locust.runners import WorkerNode

    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(rendered["local+fanout-gateway"])}
    namespace: dict[str, object] = {"__name__": "kube_fanout_locustfile"}
    exec(
        compile(config_map(docs, "ingestload-locustfile")["data"]["locustfile.py"], "locustfile.py", "exec"),
        namespace,
    )
    classes = [
        c for c in namespace.values() if isinstance(c, type) and c.__module__ == "kube_fanout_locustfile"
    ]
    master = config_map(docs, "ingestload-master")["data"]
    workers = [WorkerNode(str(i)) for i in range(int(master["LOCUST_EXPECT_WORKERS"]))]
    dispatcher = UsersDispatcher(worker_nodes=workers, user_classes=classes)
    users = int(master["INGESTLOAD_JOB_USERS"])
    dispatcher.new_dispatch(target_user_count=users, spawn_rate=users)
    dispatcher._wait_between_dispatch = 0
    final = list(dispatcher)[-1]
    assert {"Controllers", "Gateways", "LiveViews"} == {c.__name__ for c in classes}
    for worker, counts in final.items():
        assert all(counts[c.__name__] >= 1 for c in classes), (worker, counts)


def test_the_job_waits_for_every_address_each_component_names() -> None:
    """ingestload-job's addresses: INGESTLOAD_JOB_WAIT_FOR and every INGESTLOAD_JOB_WAIT_FOR_*, once
    each; the timeout variable and unrelated ones are not addresses."""
    import importlib.machinery
    import importlib.util

    from tests.kube.manifests import KUBE

    loader = importlib.machinery.SourceFileLoader("ingestload_job", str(KUBE / "image" / "ingestload-job"))
    spec = importlib.util.spec_from_loader("ingestload_job", loader)
    assert spec is not None
    job = importlib.util.module_from_spec(spec)
    loader.exec_module(job)
    environ = {
        "INGESTLOAD_JOB_WAIT_FOR": "tcp://b:9092 http://a:8080/readyz",
        "INGESTLOAD_JOB_WAIT_FOR_GATEWAY": "http://g:8765/readyz tcp://b:9092",
        "INGESTLOAD_JOB_WAIT_TIMEOUT": "300",
        "INGESTLOAD_WS_URL": "ws://g:8765/v1/stream",
    }
    assert job.wait_addresses(environ) == ["tcp://b:9092", "http://a:8080/readyz", "http://g:8765/readyz"]
    assert job.wait_addresses({}) == []
