"""Kubernetes server binaries built from Debian's own source package, cached outside the clone.

    python -m tests.kube.cluster build      # once: ~6 min on 2 cores; later: nothing to do

Only Debian's registry is reachable here, and Debian bookworm ships the Kubernetes v1.20 source
(``kubernetes 1.20.5+really1.20.2``, with its complete ``vendor/``) but no server binaries. So:

1. a *private* apt configuration (its own sources list, lists and cache under the cache folder)
   adds a ``deb-src`` line for the mirror the system already uses — the system's apt sources,
   lists and cache stay untouched;
2. ``apt-get source --download-only`` + ``dpkg-source -x`` unpack the source;
3. kubelet is patched so it cannot change host kernel settings (``KernelTunableModify`` →
   ``KernelTunableWarn``: unpatched, it sets vm.overcommit_memory, kernel.panic and
   kernel.panic_on_oops on the *host*, since sysctls are not namespaced by our mount/net namespaces);
4. the five server binaries are built with Go 1.19 (``CGO_ENABLED=0``, vendored modules), and the
   pod sandbox's ``pause`` binary from ``build/pause/linux/pause.c`` with ``gcc -static``.

The result lives in ``$INGESTLOAD_KUBE_CACHE`` (default ``~/.cache/ingestload-kube``) under
``<version>/bin``; the Go build cache is kept beside it, so a rebuild after a patch change takes
about 30 s. A stamp records the patch, so the step is idempotent.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

VERSION = "v1.20.2"
#: Debian's source package and the upstream version it really contains.
SOURCE_PACKAGE = "kubernetes"
SERVER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
GO_ROOT = Path("/usr/lib/go-1.19")
#: Debian packages the build needs (without rsync, prerelease-lifecycle-gen fails: Permission denied).
BUILD_PACKAGES = ("golang-1.19-go", "rsync", "jq", "make", "gcc", "libc6-dev", "dpkg-dev")
KUBELET_SYSCTL_FILE = "pkg/kubelet/cm/container_manager_linux.go"
UNPATCHED = "b := KernelTunableModify"
PATCHED = "b := KernelTunableWarn"
PATCH_ID = "KernelTunableWarn-2"


def cache_root() -> Path:
    """Where builds are kept: ``$INGESTLOAD_KUBE_CACHE`` or ``~/.cache/ingestload-kube``."""
    configured = os.environ.get("INGESTLOAD_KUBE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "ingestload-kube"


def bin_dir(version: str = VERSION) -> Path:
    return cache_root() / version / "bin"


def is_built(version: str = VERSION) -> bool:
    stamp = bin_dir(version) / ".complete"
    return stamp.is_file() and stamp.read_text().strip() == PATCH_ID


def _run(command: list[str], log: Path, **kwargs: object) -> None:
    """Run a build step; its output goes to ``log``, and a failure quotes the log's tail."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        completed = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs)  # type: ignore[call-overload]
    if completed.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command[:3])}… failed ({completed.returncode}); log {log}:\n{tail}")


def debian_mirror(sources: Path = Path("/etc/apt/sources.list.d/debian.sources")) -> str:
    """The URI of the system's main Debian archive (deb822 or one-line format)."""
    if sources.is_file():
        for stanza in sources.read_text().split("\n\n"):
            fields = {
                key.strip(): value.strip()
                for key, _, value in (line.partition(":") for line in stanza.splitlines())
                if value and not key.startswith("#")
            }
            if "security" not in fields.get("URIs", "") and "URIs" in fields:
                return fields["URIs"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def private_apt(root: Path) -> list[str]:
    """``apt-get`` options for an apt of our own under ``root``: sources, lists and cache are ours."""
    for sub in ("lists/partial", "cache/archives/partial", "parts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (root / "sources.list").write_text(f"deb-src [signed-by={keyring}] {debian_mirror()} bookworm main\n")
    return [
        "-o", f"Dir::Etc::SourceList={root / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={root / 'parts'}",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "APT::Sandbox::User=root",
    ]  # fmt: skip


def fetch_source(work: Path, log: Path) -> Path:
    """Download and unpack Debian's kubernetes source package into ``work``; return its folder."""
    existing = sorted(p for p in work.glob(f"{SOURCE_PACKAGE}-*") if p.is_dir())
    if existing and (existing[-1] / "vendor").is_dir():
        return existing[-1]
    options = private_apt(work / "apt")
    _run(["apt-get", *options, "update"], log)
    _run(["apt-get", *options, "source", "--download-only", SOURCE_PACKAGE], log, cwd=work)
    dsc = sorted(work.glob(f"{SOURCE_PACKAGE}_*.dsc"))[-1]
    _run(["dpkg-source", "--no-check", "-x", dsc.name], log, cwd=work)
    return sorted(p for p in work.glob(f"{SOURCE_PACKAGE}-*") if p.is_dir())[-1]


def patch_kubelet(source: Path) -> None:
    """Make kubelet warn about kernel tunables instead of writing them on the host: the behaviour it
    picks when --protect-kernel-defaults is off becomes ``KernelTunableWarn``."""
    path = source / KUBELET_SYSCTL_FILE
    text = path.read_text()
    if PATCHED in text:
        return
    if text.count(UNPATCHED) != 1:
        raise RuntimeError(f"{path}: expected one {UNPATCHED!r} to patch; has the source changed?")
    path.write_text(text.replace(UNPATCHED, PATCHED))


def build(version: str = VERSION) -> Path:
    """Build (or find cached) server binaries and ``pause``; return the folder holding them."""
    target = bin_dir(version)
    if is_built(version):
        return target
    work = cache_root() / version
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    log.write_text("")
    missing = [tool for tool in ("rsync", "make", "gcc", "dpkg-source") if shutil.which(tool) is None]
    if missing or not (GO_ROOT / "bin" / "go").exists():
        raise RuntimeError(f"missing build tools; apt-get install -y {' '.join(BUILD_PACKAGES)}")
    source = fetch_source(work, log)
    patch_kubelet(source)
    gopath = source / ".go"
    link = gopath / "src" / "k8s.io" / "kubernetes"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    env = {
        **os.environ,
        "GOPATH": str(gopath),
        "GOCACHE": str(work / "gocache"),
        "PATH": f"{GO_ROOT / 'bin'}:{os.environ['PATH']}",
        "CGO_ENABLED": "0",
        "GOFLAGS": "-mod=vendor",
    }
    what = " ".join(f"cmd/{name}" for name in SERVER_BINARIES)
    _run(["make", f"WHAT={what}"], log, cwd=link, env=env)
    built = link / "_output" / "local" / "bin" / "linux" / "amd64"
    target.mkdir(parents=True, exist_ok=True)
    for name in SERVER_BINARIES:
        shutil.copy2(built / name, target / name)
    _run(
        ["gcc", "-Os", "-static", "-DVERSION=v3.4-ingestload", "-o", str(target / "pause"),
         str(source / "build" / "pause" / "linux" / "pause.c")],
        log,
    )  # fmt: skip
    digest = hashlib.sha256((source / KUBELET_SYSCTL_FILE).read_bytes()).hexdigest()[:12]
    (target / ".complete").write_text(f"{PATCH_ID}\n")
    (target / "kubelet.source-sha256").write_text(digest + "\n")
    return target
