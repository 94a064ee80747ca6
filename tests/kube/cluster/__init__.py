"""A real single-node Kubernetes (v1.20) for the tests, on a Debian machine with no Docker and no registry.

    build.py    Kubernetes server binaries from Debian's own source package (private apt config,
                kubelet patched to leave host sysctls alone), cached in ~/.cache/ingestload-kube
    images.py   the pause image and kube/Containerfile built with podman on an mmdebstrap base,
                the Python wheels fetched by the host's pip; saved as archives for containerd
    node.sh     PID 1 of private pid/mount/network/UTS namespaces: etcd, control plane, containerd,
                kubelet, kube-proxy, dnsmasq; no uplink, nothing changed on the host
    node.py     starts node.sh, waits until the node is Ready, runs kubectl inside its network,
                stops it by recorded PID and removes its cgroups
    __main__.py the same by hand: install-deps, build, image, up, kubectl, down

Root is needed (namespaces, cgroups, containerd). tests/kube/conftest.py uses this unless
$KUBECONFIG names a cluster to use instead.
"""
