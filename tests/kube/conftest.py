"""Fixtures of the real-cluster tests (``make test-kube``; marked ``kube``, so ``make test`` leaves them out).

``kube``: the cluster under test. With ``$KUBECONFIG`` set, that cluster, which must be able to
pull ``$INGESTLOAD_KUBE_IMAGE`` (build and push ``kube/Containerfile`` first). Otherwise a
single-node Kubernetes v1.20 built from Debian's source package and started in private namespaces
on this machine (``tests/kube/cluster``), with the image built here and loaded into its
containerd; it is stopped, and its cgroups removed, at the end of the session, also on failure
or Ctrl-C.

``namespace``: a namespace of the test's own, deleted afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest

from tests.kube.deploy import Kube, add_reports_store, remove_reports_volume

FACTS: list[str] = []


@pytest.fixture(scope="session")
def kube() -> Iterator[Kube]:
    if os.environ.get("KUBECONFIG"):
        image = os.environ.get("INGESTLOAD_KUBE_IMAGE")
        if not image:
            raise pytest.UsageError(
                "KUBECONFIG is set: also set INGESTLOAD_KUBE_IMAGE to an image of kube/Containerfile "
                "that this cluster can pull (or unset KUBECONFIG to let the tests start their own cluster)"
            )
        yield Kube(["kubectl"], image, "IfNotPresent")
        return
    from tests.kube.cluster import images, node

    archives = images.all_archives()
    FACTS.append(f"image {images.TEST_IMAGE}: {images.image_size() / 1e6:.0f} MB (podman image inspect)")
    with node.running(images=archives) as cluster:
        yield Kube(cluster.kubectl_command(), images.TEST_IMAGE, "Never", volumes=cluster.state / "volumes")


@contextlib.contextmanager
def fresh_namespace(kube: Kube, label: str) -> Iterator[str]:
    """A new namespace for the block, with its reports store, deleted at its end."""
    name = f"il-{label[:30].replace('_', '-')}-{secrets.token_hex(2)}"
    kube.run("create", "namespace", name)
    try:
        add_reports_store(kube, name)
        yield name
    finally:
        # Nothing of a finished test may take CPU from the next one: no grace period.
        kube.run("delete", "pods", "--all", "-n", name, "--grace-period=0", "--force", check=False)
        kube.run("delete", "namespace", name, "--wait=false", check=False)
        remove_reports_volume(kube, name)


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    with fresh_namespace(kube, request.node.name.removeprefix("test_")) as name:
        yield name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for fact in FACTS:
        terminalreporter.write_line(f"kube: {fact}")
