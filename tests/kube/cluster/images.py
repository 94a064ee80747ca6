"""Container images for the test cluster, built with no registry.

    python -m tests.kube.cluster image      # → image archives under the cache folder

No registry is reachable here, so the official Python image that ``kube/Containerfile`` uses by
default cannot be pulled. Instead:

* the base is a Debian bookworm root file system made by ``mmdebstrap`` (``minbase`` + python3,
  python3-venv, ca-certificates) from the mirror the system already uses, imported into podman
  as ``localhost/ingestload-base:bookworm`` and passed as ``--build-arg BASE=…``; the build stage's
  (``BUILD_BASE``) is the same plus gcc and Python's headers, for the verifier's native reader;
* the Python dependencies are fetched as wheels by the host's pip into ``kube/wheels/`` and the
  build installs only from there (``WHEELS_ONLY=1``);
* ``podman build`` runs with ``runc`` and cgroupfs, host networking (podman's default CNI network
  would add a bridge and iptables chains to the host) and file-descriptor limits the sandbox
  allows; its storage is our own, under the cache folder, so the system's podman store is untouched;
* the pod sandbox image is ``FROM scratch`` + the ``pause`` binary built with Kubernetes;
* ``podman save`` writes each image as an archive that the node's containerd imports.

The base and the pause image are cached; the project image is rebuilt each time (layers cached).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.kube.cluster import build
from tests.kube.cluster.node import PAUSE_IMAGE

ROOT = Path(__file__).resolve().parents[3]
#: Tagged by what it holds: a change of BASE_PACKAGES needs a new tag, or the cached base is reused.
BASE_IMAGE = "localhost/ingestload-base:bookworm-pg15"
#: The image the tests run (a tag of its own: kubelet never pulls it, imagePullPolicy Never).
TEST_IMAGE = "localhost/ingestload:kube-test"
IMAGE_PACKAGES = ("podman", "buildah", "mmdebstrap", "uidmap")
#: PostgreSQL's server binaries for kube/components/sink-postgres (the Containerfile's POSTGRES=1).
BASE_PACKAGES = "python3,python3-venv,ca-certificates,postgresql-15"
#: The Containerfile's BUILD_BASE: the same Python, with a C compiler and Python's headers for the
#: verifier's native reader (only the build stage has them; the image is BASE).
BUILD_IMAGE = "localhost/ingestload-build:bookworm-cc"
BUILD_PACKAGES = "python3,python3-venv,ca-certificates,gcc,libc6-dev,python3-dev"


def image_dir() -> Path:
    return build.cache_root() / "images"


def podman_env() -> dict[str, str]:
    """Environment for podman: our containers.conf and storage.conf (written once)."""
    conf = image_dir() / "podman"
    conf.mkdir(parents=True, exist_ok=True)
    containers = conf / "containers.conf"
    containers.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
        'netns = "host"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{conf}/events.log"\n'
    )
    storage = conf / "storage.conf"
    storage.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{conf}/storage"\n'
        f'runroot = "/tmp/ingestload-kube-podman-{os.getuid()}"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(containers), "CONTAINERS_STORAGE_CONF": str(storage)}


def podman(*args: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, check=False
    )
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ podman {' '.join(args)}\n{completed.stdout}{completed.stderr}\n")
    if completed.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args[:2])}… failed:\n{(completed.stdout + completed.stderr)[-3000:]}"
        )
    return completed


def _has_image(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], env=podman_env(), check=False).returncode == 0


def base_image(log: Path, image: str = BASE_IMAGE, packages: str = BASE_PACKAGES) -> str:
    """The Debian bookworm + Python base, made once with mmdebstrap and kept in our podman store."""
    if _has_image(image):
        return image
    rootfs = image_dir() / f"{image.rsplit('/', 1)[-1].replace(':', '-')}.tar"
    if not rootfs.exists():
        partial = rootfs.with_name("partial-" + rootfs.name)  # mmdebstrap picks its format by ".tar"
        with log.open("a") as f:
            subprocess.run(
                ["mmdebstrap", "--variant=minbase", f"--include={packages}",
                 *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")),
                 "bookworm", str(partial), build.debian_mirror()],
                stdout=f, stderr=subprocess.STDOUT, check=True,
            )  # fmt: skip
        partial.rename(rootfs)
    podman("import", "--change", "CMD=/bin/bash", str(rootfs), image, log=log)
    return image


def pause_archive(log: Path) -> Path:
    """The pod sandbox image (``pause`` built with Kubernetes), saved for containerd."""
    archive = image_dir() / "pause.tar"
    if archive.exists():
        return archive
    context = image_dir() / "pause"
    context.mkdir(parents=True, exist_ok=True)
    (context / "pause").write_bytes((build.build() / "pause").read_bytes())
    os.chmod(context / "pause", 0o755)
    (context / "Containerfile").write_text('FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n')
    podman("build", "--network=host", "-t", PAUSE_IMAGE, str(context), log=log)
    podman("save", "--format", "docker-archive", "-o", str(archive), PAUSE_IMAGE, log=log)
    return archive


def wheelhouse(log: Path) -> Path:
    """The project's dependencies (and its build backend) as wheels in ``kube/wheels/``, fetched by
    the host's pip: inside a build, pip would lack the host's certificate authorities and settings."""
    wheels = ROOT / "kube" / "wheels"
    with log.open("a") as f:
        pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels)]
        subprocess.run([*pip, str(ROOT), "hatchling"], stdout=f, stderr=subprocess.STDOUT, check=True)
    return wheels


def project_archive(log: Path, tag: str = TEST_IMAGE) -> Path:
    """Build ``kube/Containerfile`` on the Debian base, offline from the wheelhouse; save it."""
    base = base_image(log)
    builder = base_image(log, BUILD_IMAGE, BUILD_PACKAGES)
    wheelhouse(log)
    podman(
        "build", "--network=host", "--build-arg", f"BASE={base}", "--build-arg", f"BUILD_BASE={builder}",
        "--build-arg", "WHEELS_ONLY=1",
        "-f", str(ROOT / "kube" / "Containerfile"), "-t", tag, str(ROOT), log=log,
    )  # fmt: skip
    archive = image_dir() / "ingestload.tar"
    archive.unlink(missing_ok=True)
    podman("save", "--format", "docker-archive", "-o", str(archive), tag, log=log)
    return archive


def image_size(tag: str = TEST_IMAGE) -> int:
    """The image's size in bytes, as podman reports it (uncompressed layers)."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def all_archives() -> list[Path]:
    """Every image the tests need, built or taken from the cache: pause, then the project."""
    image_dir().mkdir(parents=True, exist_ok=True)
    log = image_dir() / "build.log"
    return [pause_archive(log), project_archive(log)]
