"""The shipped kustomizations, rendered and checked offline (part of ``make test``; no cluster)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube.manifests import KUBE, VALIDATE_VERSIONS, render_with_components, renderings, validate

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
    """The renderings with the gateway, under its unprefixed names (the named run is checked apart)."""
    return {n: text for n, text in rendered.items() if "fanout-gateway" in n and not n.startswith("team-")}


def config_map(docs: dict[tuple[str, str], dict], prefix: str) -> dict:
    return next(d for (kind, n), d in docs.items() if kind == "ConfigMap" and n.startswith(prefix))


def environment(docs: dict[tuple[str, str], dict], container: dict) -> dict[str, str]:
    """The container's variables as the kubelet makes them: envFrom ConfigMaps, then env with
    $(VAR) expanded from what came before (values from the downward API or Secrets left out)."""
    by_name = {n: d for (kind, n), d in docs.items() if kind == "ConfigMap"}
    environ: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environ.update(by_name[source["configMapRef"]["name"]].get("data", {}))
    for env in container.get("env", []):
        if "value" in env:
            environ[env["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: environ.get(m.group(1), m.group(0)), env["value"]
            )
    return environ


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
        worker = docs[("Deployment", "ingestload-worker")]["spec"]["template"]["spec"]["containers"][0]
        url = f"ws://ingestload-fanout:{service['port']}/v1/stream"
        assert environment(docs, worker)["INGESTLOAD_WS_URL"] == url, name
        assert "WebSocketSubscriberUser" in config_map(docs, "ingestload-locustfile")["data"]["locustfile.py"]
        master = docs[("Job", "ingestload-master")]["spec"]["template"]["spec"]["containers"][0]
        assert environment(docs, master)["INGESTLOAD_WS_URL"] == url, name
        waits = {k: v for k, v in environment(docs, master).items() if k.startswith("INGESTLOAD_JOB_WAIT")}
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
    environ = environment(docs, container)
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
    # The master expects as many workers as their Deployment has replicas (ingestload-job).
    replicas = docs[("Deployment", "ingestload-worker")]["spec"]["replicas"]
    workers = [WorkerNode(str(i)) for i in range(replicas)]
    dispatcher = UsersDispatcher(worker_nodes=workers, user_classes=classes)
    users = int(master["INGESTLOAD_JOB_USERS"])
    dispatcher.new_dispatch(target_user_count=users, spawn_rate=users)
    dispatcher._wait_between_dispatch = 0
    final = list(dispatcher)[-1]
    assert {"Controllers", "Gateways", "LiveViews"} == {c.__name__ for c in classes}
    for worker, counts in final.items():
        assert all(counts[c.__name__] >= 1 for c in classes), (worker, counts)


def image_script(name: str) -> Any:
    """One of kube/image's scripts, imported as a module."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(KUBE / "image" / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_job_waits_for_every_address_each_component_names() -> None:
    """ingestload-job's addresses: INGESTLOAD_JOB_WAIT_FOR and every INGESTLOAD_JOB_WAIT_FOR_*, once
    each; the timeout variable and unrelated ones are not addresses."""
    job = image_script("ingestload-job")
    environ = {
        "INGESTLOAD_JOB_WAIT_FOR": "tcp://b:9092 http://a:8080/readyz",
        "INGESTLOAD_JOB_WAIT_FOR_GATEWAY": "http://g:8765/readyz tcp://b:9092",
        "INGESTLOAD_JOB_WAIT_TIMEOUT": "300",
        "INGESTLOAD_WS_URL": "ws://g:8765/v1/stream",
    }
    assert job.wait_addresses(environ) == ["tcp://b:9092", "http://a:8080/readyz", "http://g:8765/readyz"]
    assert job.wait_addresses({}) == []


def test_the_job_starts_only_once_every_address_kept_answering() -> None:
    """ingestload-job's wait: an address that answers and then stops (an old pod going away) does not
    start the run; one that keeps answering for the settle time does."""
    job = image_script("ingestload-job")
    with socket.create_server(("127.0.0.1", 0)) as steady:
        address = f"tcp://127.0.0.1:{steady.getsockname()[1]}"
        assert job.wait_for([address], timeout=10, settle=1)
    flapping = socket.create_server(("127.0.0.1", 0))
    address = f"tcp://127.0.0.1:{flapping.getsockname()[1]}"
    looks = 0

    def answers(a: str) -> bool:
        nonlocal looks
        looks += 1
        if looks == 2:  # answered once: now it goes away for good
            flapping.close()
        return job_answers(a)

    job_answers, job.answers = job.answers, answers
    assert not job.wait_for([address], timeout=2, settle=1)
    assert looks >= 3


def named_run(name: str) -> dict[tuple[str, str], dict]:
    """The local overlay with every optional component as the run ``name`` (``namePrefix``)."""
    parts = [
        KUBE / "components" / c for c in ("fanout-gateway", "pod-disruption-budget", "worker-autoscaling")
    ]
    text = render_with_components(
        KUBE / "overlays" / "ci", [*parts, KUBE / "components" / "reference-pipeline"], f"{name}-"
    )
    return {(d["kind"], d["metadata"]["name"]): d for d in documents(text)}


def test_a_named_run_renames_every_object_address_selector_and_reference() -> None:
    """Under ``namePrefix: team-a-`` every object is team-a-…, every address between the pods (as
    the kubelet expands it), the Role's resourceNames, the HPA's target and every selector name the
    run's objects, the instance label is team-a-ingestload, and the Kafka Secret is
    team-a-ingestload-kafka; nothing names an object of the unnamed run."""
    docs = named_run("team-a")
    names = {n for _, n in docs}
    assert all(n.startswith("team-a-ingestload") for n in names), sorted(names)
    for (kind, name), doc in docs.items():
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "team-a-ingestload", (kind, name)
    worker = docs[("Deployment", "team-a-ingestload-worker")]["spec"]["template"]["spec"]["containers"][0]
    master = docs[("Job", "team-a-ingestload-master")]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["--worker", "--master-host=$(INGESTLOAD_MASTER_SERVICE)"]
    env = environment(docs, worker)
    assert env["INGESTLOAD_MASTER_SERVICE"] == "team-a-ingestload-master"
    assert env["INGESTLOAD_KAFKA_BOOTSTRAP"] == "team-a-ingestload-broker:9092"
    assert env["LOCUST_HOST"] == "http://team-a-ingestload-api:8080"
    assert env["INGESTLOAD_WS_URL"] == "ws://team-a-ingestload-fanout:8765/v1/stream"
    master_env = environment(docs, master)
    assert master_env["INGESTLOAD_JOB_WORKERS"] == "team-a-ingestload-worker"
    assert set(master_env["INGESTLOAD_JOB_WAIT_FOR"].split()) == {
        "tcp://team-a-ingestload-broker:9092",
        "http://team-a-ingestload-api:8080/readyz",
    }
    broker = docs[("Deployment", "team-a-ingestload-broker")]["spec"]["template"]["spec"]["containers"][0]
    advertised = next(a for a in broker["args"] if a.startswith("--advertised"))
    assert environment(docs, broker)["INGESTLOAD_BROKER_SERVICE"] == "team-a-ingestload-broker", advertised
    for rule in docs[("Role", "team-a-ingestload-master")]["rules"]:
        assert rule["resourceNames"] == ["team-a-ingestload-worker"], rule
    hpa = docs[("HorizontalPodAutoscaler", "team-a-ingestload-worker")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "team-a-ingestload-worker"
    secrets = {
        ref["secretRef"]["name"]
        for (_, _), doc in docs.items()
        for spec in pod_specs(doc)
        for c in spec["containers"]
        for ref in c.get("envFrom", [])
        if "secretRef" in ref
    }
    assert secrets == {"team-a-ingestload-kafka"}
    for (kind, name), doc in docs.items():
        selector = doc.get("spec", {}).get("selector", {})
        labels = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
        if labels and kind != "Job":
            assert labels.get("app.kubernetes.io/instance") == "team-a-ingestload", (kind, name)


def test_two_named_runs_share_no_object_and_select_none_of_each_others_pods() -> None:
    """team-a and team-b in one namespace: no object name in common, and no Service, Deployment,
    PDB or spread constraint of one selects a pod template of the other."""
    a, b = named_run("team-a"), named_run("team-b")
    assert not {n for _, n in a} & {n for _, n in b}
    templates_b = [d["spec"]["template"]["metadata"]["labels"] for d in b.values() if pod_specs(d)]
    for (kind, name), doc in a.items():
        selector = doc.get("spec", {}).get("selector")
        if not isinstance(selector, dict) or kind == "Job":
            continue
        wanted = selector.get("matchLabels", selector)
        for labels in templates_b:
            assert not all(labels.get(k) == v for k, v in wanted.items()), (kind, name, labels)


def test_only_the_headless_master_has_a_token_and_its_role_names_its_workers(
    rendered: dict[str, str],
) -> None:
    """Every pod but the headless master runs without a service-account token; the master's Role
    reads, patches and scales its own workers' Deployment only (resourceNames), nothing else."""
    for name, text in rendered.items():
        for doc in documents(text):
            for spec in pod_specs(doc):
                where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
                if doc["kind"] == "Job":
                    assert spec["serviceAccountName"].endswith("ingestload-master"), where
                else:
                    assert spec["automountServiceAccountToken"] is False, where
            if doc["kind"] == "Role":
                for rule in doc["rules"]:
                    assert rule["resourceNames"], (name, rule)
                    assert set(rule["verbs"]) <= {"get", "patch"}, (name, rule)
                    assert set(rule["resources"]) <= {"deployments", "deployments/scale"}, (name, rule)


def test_the_hpa_owns_the_worker_count_and_budgets_never_block_a_drain(rendered: dict[str, str]) -> None:
    """With worker-autoscaling the workers' Deployment has no replicas of its own (an apply never
    resets the HPA's count); the worker budget lets one go at a time; the master budget selects
    only a Job's pod, never the ui overlay's long-lived master."""
    text = next(text for name, text in rendered.items() if name.startswith("ci+"))
    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(text)}
    assert "replicas" not in docs[("Deployment", "ingestload-worker")]["spec"]
    assert "replicas" in documents_by_name(rendered["ci"])[("Deployment", "ingestload-worker")]["spec"]
    assert docs[("PodDisruptionBudget", "ingestload-worker")]["spec"]["maxUnavailable"] >= 1
    master_pdb = docs[("PodDisruptionBudget", "ingestload-master")]["spec"]["selector"]
    assert {"key": "job-name", "operator": "Exists"} in master_pdb["matchExpressions"]
    ui_master = documents_by_name(rendered["ui"])[("Deployment", "ingestload-master")]
    assert "job-name" not in ui_master["spec"]["template"]["metadata"]["labels"]


def documents_by_name(text: str) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents(text)}


def test_workers_request_a_core_and_the_ui_master_keeps_its_reports(rendered: dict[str, str]) -> None:
    """A worker requests one core (a gevent process's most) and no CPU limit; the ui master's
    liveness only asks for its port (a busy master is never killed for a slow page), its verdicts,
    ledgers and HTML reports go to /reports, which a second container sends to the reports store."""
    worker = documents_by_name(rendered["ci"])[("Deployment", "ingestload-worker")]
    resources = worker["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "1"
    assert "cpu" not in resources.get("limits", {})
    ui = documents_by_name(rendered["ui"])[("Deployment", "ingestload-master")]["spec"]["template"]["spec"]
    master, sidecar = ui["containers"]
    assert "tcpSocket" in master["livenessProbe"]
    env = {e["name"]: e.get("value") for e in master["env"]}
    for option in ("INGESTLOAD_VERDICT_FILE", "INGESTLOAD_LEDGER_FILE", "INGESTLOAD_REPORT_FILE"):
        assert env[option].startswith("/reports/{run_id}/"), option
    assert sidecar["command"] == ["ingestload-job", "sync", "/reports"]


def test_the_job_refuses_runs_without_kafka_or_too_large_for_the_broker() -> None:
    """ingestload-job refuses to start without a bootstrap (saying which overlay sets one) and when
    rate × run time exceeds the in-cluster broker's capacity (saying what to change); a run that
    fits, or one against your Kafka (no capacity), starts."""
    job = image_script("ingestload-job")
    assert "INGESTLOAD_KAFKA_BOOTSTRAP is empty" in job.refusal({})
    fits = {
        "INGESTLOAD_KAFKA_BOOTSTRAP": "b:9092",
        "INGESTLOAD_RATE": "3000",
        "INGESTLOAD_JOB_RUN_TIME": "60s",
    }
    assert job.refusal({**fits, "INGESTLOAD_JOB_BROKER_CAPACITY": "4000000"}) is None
    too_long = {**fits, "INGESTLOAD_JOB_RUN_TIME": "1h", "INGESTLOAD_JOB_BROKER_CAPACITY": "4000000"}
    assert "10,800,000 messages" in job.refusal(too_long)
    assert job.refusal({**too_long, "INGESTLOAD_JOB_BROKER_CAPACITY": ""}) is None


def test_the_reports_store_keeps_files_only_under_its_folder(tmp_path: Path) -> None:
    """The store maps /runs/<instance>/<run id>/<file> and /runs/<instance>/latest into its folder
    and nothing else: no parent folders, no hidden names, no other prefixes."""
    store = image_script("ingestload-reports")
    assert store.resolve(tmp_path, "/runs/team-a-ingestload/0011aabb/verdict.json") == (
        tmp_path / "team-a-ingestload" / "0011aabb" / "verdict.json"
    )
    assert (
        store.resolve(tmp_path, "/runs/team-a-ingestload/latest") == tmp_path / "team-a-ingestload" / "latest"
    )
    for bad in (
        "/runs/../etc/passwd",
        "/runs/a/../../x",
        "/runs/a/.hidden/x",
        "/other/a/b/c",
        "/runs/a",
        "/runs/a/b/c/d",
    ):
        assert store.resolve(tmp_path, bad) is None, bad
