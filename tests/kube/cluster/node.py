"""Start and stop the single-node test cluster, and talk to it.

    with LocalCluster.start(state_dir, images=[archive, …]) as cluster:
        cluster.kubectl("get", "nodes")

The whole cluster (etcd, the control plane, containerd, kubelet, kube-proxy, a DNS server and
every pod) runs under ``node.sh`` as PID 1 of private pid, mount, network and UTS namespaces made
by ``unshare``. The network namespace has no uplink, so pods reach nothing outside it; the host
keeps its sysctls, routes, bridges and iptables chains. ``kubectl`` reaches the API server by
entering that network namespace (``nsenter --net``); containerd's socket is a file in the state
folder, so images are loaded from the host with ``ctr``.

What this module starts, it stops — by the PID it recorded, never by name: the ``unshare``
holder (``--kill-child``: its death kills PID 1, and PID 1's death kills every process of the
namespace). Then it removes the cgroups it made (``--cgroup-root`` points kubelet's pods into
one of our own). :func:`stop_leftover` cleans up after a run that was killed outright.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.kube.cluster import build

HERE = Path(__file__).resolve().parent
NODE_NAME = "ingestload-node"
NODE_IP = "10.200.0.1"
DNS_IP = "10.200.0.2"
POD_CIDR = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
PAUSE_IMAGE = "localhost/ingestload-pause:3.4"
#: Debian packages the node needs (containerd 1.6, runc, CNI plugins, etcd 3.4, …).
NODE_PACKAGES = (
    "etcd-server", "containerd", "runc", "containernetworking-plugins", "iptables", "conntrack",
    "dnsmasq-base", "openssl", "util-linux", "iproute2",
)  # fmt: skip
CGROUP_MOUNTS = Path("/sys/fs/cgroup")
READY_TIMEOUT = 240.0


def default_state_dir() -> Path:
    """``$INGESTLOAD_KUBE_STATE`` or ``/tmp/ingestload-kube/<uid>`` (outside the clone)."""
    configured = os.environ.get("INGESTLOAD_KUBE_STATE")
    return Path(configured) if configured else Path("/tmp/ingestload-kube") / str(os.getuid())


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path) -> dict[str, str]:
    """A CA, the API server's certificate, the service-account key pair, a token per identity and
    a kubeconfig per component. Tokens live only in files (mode 0600), never in a command line."""
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "7", "-subj", "/CN=ingestload-test-ca", cwd=pki)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=pki)  # fmt: skip
    names = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    san = ",".join(
        [f"IP:{ip}" for ip in ("127.0.0.1", NODE_IP, KUBERNETES_SERVICE_IP)] + [f"DNS:{n}" for n in names]
    )
    (pki / "san.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "apiserver.crt", "-days", "7", "-extfile", "san.ext", cwd=pki)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    identities = {
        "admin": ("admin", "system:masters"),
        "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
        "controller-manager": ("system:kube-controller-manager", ""),
        "scheduler": ("system:kube-scheduler", ""),
        "kube-proxy": ("system:kube-proxy", ""),
    }
    tokens = {name: secrets.token_hex(16) for name in identities}
    rows = [f'{tokens[name]},{user},{name},"{groups}"' for name, (user, groups) in identities.items()]
    _write_secret(pki / "tokens.csv", "\n".join(rows) + "\n")
    for name in identities:
        _write_secret(pki / f"{name}.kubeconfig", kubeconfig(pki / "ca.crt", tokens[name]))
    return tokens


def kubeconfig(ca: Path, token: str, server: str = "https://127.0.0.1:6443") -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: ingestload-test
  cluster: {{server: "{server}", certificate-authority: "{ca}"}}
users:
- name: user
  user: {{token: "{token}"}}
contexts:
- name: ingestload-test
  context: {{cluster: ingestload-test, user: user, namespace: default}}
current-context: ingestload-test
"""


def _write_secret(path: Path, text: str) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)


# -- cgroups --------------------------------------------------------------------------------------


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 controllers, named ones, and the unified one)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] in ("cgroup", "cgroup2"):
            found.append(Path(fields[1]))
    return found


def make_cgroup_root(name: str) -> None:
    """``/<name>`` in every hierarchy, for kubelet's ``--cgroup-root`` (it must exist)."""
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset admits no task
            if (hierarchy / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((hierarchy / knob).read_text())


def remove_cgroup_root(name: str, timeout: float = 30.0) -> list[str]:
    """Remove ``/<name>`` and everything below it from every hierarchy, deepest first; returns the
    folders that could not be removed (still holding tasks after ``timeout``)."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name
        if not root.is_dir():
            continue
        folders = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for folder in [*folders, root]:
            while True:
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        left.append(str(folder))
                        break
                    time.sleep(0.2)
    return left


# -- the cluster ----------------------------------------------------------------------------------


class LocalCluster:
    """A running test cluster: its state folder, the holder's PID, ``kubectl`` inside its network."""

    def __init__(self, state: Path, holder_pid: int, cgroup_root: str) -> None:
        self.state = state
        self.holder_pid = holder_pid
        self.cgroup_root = cgroup_root
        self.kubeconfig = state / "pki" / "admin.kubeconfig"

    @property
    def socket(self) -> Path:
        return self.state / "containerd.sock"

    def command(self, *args: str) -> list[str]:
        """A command line run inside the cluster's network namespace."""
        return ["nsenter", f"--net=/proc/{self.holder_pid}/ns/net", *args]

    def kubectl_command(self, *args: str) -> list[str]:
        return self.command("kubectl", "--kubeconfig", str(self.kubeconfig), *args)

    def load_image(self, archive: Path) -> None:
        """Hand an image archive (``podman save``) to the node's containerd."""
        subprocess.run(
            [
                "ctr",
                "--address",
                str(self.socket),
                "-n",
                "k8s.io",
                "images",
                "import",
                "--all-platforms",
                str(archive),
            ],
            check=True,
            capture_output=True,
        )

    @classmethod
    def start(cls, state: Path | None = None, images: Sequence[Path] = ()) -> LocalCluster:
        """Build (or find cached) Kubernetes, then bring a fresh node up and wait until it is Ready."""
        state = state or default_state_dir()
        stop_leftover(state)
        bin_dir = build.build()
        shutil.rmtree(state, ignore_errors=True)
        (state / "images").mkdir(parents=True)
        make_pki(state / "pki")
        for archive in images:
            os.link(archive, state / "images" / archive.name) if _same_fs(archive, state) else shutil.copy(
                archive, state / "images" / archive.name
            )
        cgroup_root = f"ingestload-kube-{os.getuid()}"
        env = {
            "KUBE_BIN": bin_dir,
            "NODE_NAME": NODE_NAME,
            "NODE_IP": NODE_IP,
            "DNS_IP": DNS_IP,
            "POD_CIDR": POD_CIDR,
            "POD_GATEWAY": POD_GATEWAY,
            "SERVICE_CIDR": SERVICE_CIDR,
            "PAUSE_IMAGE": PAUSE_IMAGE,
            "CGROUP_ROOT": f"/{cgroup_root}",
        }
        (state / "node.env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        (state / "cgroup-root").write_text(cgroup_root + "\n")
        make_cgroup_root(cgroup_root)
        with (state / "node.log").open("ab") as log:  # the holder keeps its own copy
            holder = subprocess.Popen(
                ["unshare", "--pid", "--mount", "--net", "--uts", "--fork", "--kill-child", "--mount-proc",
                 "bash", str(HERE / "node.sh"), str(state)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        (state / "holder.pid").write_text(f"{holder.pid}\n")
        cluster = cls(state, holder.pid, cgroup_root)
        deadline = time.monotonic() + READY_TIMEOUT
        while not (state / "ready").exists():
            if holder.poll() is not None or time.monotonic() > deadline:
                tail = (state / "node.log").read_text(errors="replace")[-2000:]
                cluster.stop()
                raise RuntimeError(
                    f"the test cluster did not come up; {state}/log has each component's log:\n{tail}"
                )
            time.sleep(0.5)
        return cluster

    def stop(self) -> None:
        """Stop everything this cluster started and remove its cgroups (idempotent)."""
        _stop_holder(self.state, self.holder_pid)
        left = remove_cgroup_root(self.cgroup_root)
        if left:
            raise RuntimeError(f"cgroups still busy after stopping the cluster: {left}")

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _same_fs(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


def _is_our_holder(pid: int, state: Path) -> bool:
    """True when ``pid`` is still the ``unshare`` we started for ``state`` (not a reused PID)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and argv[0].endswith(b"unshare") and str(state).encode() in argv


def _stop_holder(state: Path, pid: int, grace: float = 20.0) -> None:
    """SIGTERM to the namespace's PID 1 (a graceful stop), then SIGKILL to the holder (whose
    ``--kill-child`` takes PID 1, and with it the whole pid namespace)."""
    if not _is_our_holder(pid, state):
        return
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _is_our_holder(pid, state) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    if _is_our_holder(pid, state):
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    (state / "holder.pid").unlink(missing_ok=True)


def stop_leftover(state: Path | None = None) -> None:
    """Stop a cluster that an earlier run left behind in ``state`` (killed before it could clean up)."""
    state = state or default_state_dir()
    pid_file = state / "holder.pid"
    if pid_file.exists():
        _stop_holder(state, int(pid_file.read_text()))
    root_file = state / "cgroup-root"
    if root_file.exists():
        remove_cgroup_root(root_file.read_text().strip())


@contextlib.contextmanager
def running(state: Path | None = None, images: Sequence[Path] = ()) -> Iterator[LocalCluster]:
    """A test cluster for the duration of the block, stopped also on an error or Ctrl-C."""
    cluster = LocalCluster.start(state, images)
    try:
        yield cluster
    finally:
        cluster.stop()
