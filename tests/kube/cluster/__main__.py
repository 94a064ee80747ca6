"""The test cluster by hand (as root):

    python -m tests.kube.cluster install-deps   # the Debian packages below, if missing
    python -m tests.kube.cluster build          # Kubernetes v1.20 from Debian's source (cached)
    python -m tests.kube.cluster image          # pause + kube/Containerfile images (archives)
    python -m tests.kube.cluster up             # a node, left running; prints how to reach it
    python -m tests.kube.cluster kubectl get pods -A
    python -m tests.kube.cluster down           # stop it, remove its cgroups

``make test-kube`` needs none of this: its fixtures do the same for the length of the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.kube.cluster import build, images, node


def install_deps() -> int:
    """apt-get install what the build, the images and the node need (the system's apt sources
    are used as they are; only the Kubernetes source comes through a private apt configuration)."""
    wanted = [*build.BUILD_PACKAGES, *node.NODE_PACKAGES, *images.IMAGE_PACKAGES]
    missing = [
        p
        for p in wanted
        if subprocess.run(["dpkg", "-s", p], capture_output=True, check=False).returncode != 0
    ]
    if not missing:
        return 0
    print(f"installing {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    return subprocess.run(install, check=False, env=env, stdout=subprocess.DEVNULL).returncode


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    if command == "install-deps":
        return install_deps()
    if command == "build":
        print(build.build())
        return 0
    if command == "image":
        for archive in images.all_archives():
            print(archive)
        print(f"{images.TEST_IMAGE}: {images.image_size() / 1e6:.0f} MB")
        return 0
    if command == "up":
        cluster = node.LocalCluster.start(images=images.all_archives())
        print(f"cluster up; state in {cluster.state}; holder pid {cluster.holder_pid}")
        print("kubectl: python -m tests.kube.cluster kubectl …   stop: python -m tests.kube.cluster down")
        return 0
    if command == "down":
        node.stop_leftover()
        return 0
    if command == "kubectl":
        state = node.default_state_dir()
        pid = int((state / "holder.pid").read_text())
        cluster = node.LocalCluster(state, pid, (state / "cgroup-root").read_text().strip())
        return subprocess.run(cluster.kubectl_command(*argv[1:]), check=False).returncode
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
