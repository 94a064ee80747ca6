#!/usr/bin/env bash
# A single-node Kubernetes cluster, run as PID 1 of private pid, mount, network and UTS namespaces:
#
#   unshare --pid --mount --net --uts --fork --kill-child --mount-proc node.sh STATE_DIR
#
# STATE_DIR holds node.env (written by tests/kube/cluster/node.py: KUBE_BIN, NODE_IP, CGROUP_ROOT…),
# the PKI and kubeconfigs, and receives every data folder, log and socket of the cluster.
# Nothing here touches the host: sysctls are set only in this network namespace, /run and
# /var/log are private mounts, and every path a component would write by default is pointed
# into STATE_DIR. Being PID 1 is the safety net: when this script ends, however it ends, the
# kernel kills every process of the namespace (containerd, its shims, every container).
#
# It writes STATE_DIR/ready once the node is Ready, and stops everything on SIGTERM.
set -euo pipefail

STATE=$1
# shellcheck source=/dev/null
source "$STATE/node.env"
LOG=$STATE/log
PKI=$STATE/pki
mkdir -p "$LOG" "$STATE/var-log" "$STATE/etcd" "$STATE/kubelet" "$STATE/kubelet-plugins" \
    "$STATE/containerd/root" "$STATE/containerd/state" "$STATE/containerd/opt" "$STATE/cni/net.d" \
    "$STATE/cni/ipam" "$STATE/dns"

PIDS=()
start() { # start NAME COMMAND… — a component in the background, its output to log/NAME.log
    local name=$1
    shift
    "$@" >"$LOG/$name.log" 2>&1 &
    PIDS+=("$!")
    echo "$!" >"$STATE/pids/$name"
}

stop_all() {
    trap - TERM INT EXIT
    # kubelet first, so that nothing is restarted while the rest goes away; then the others,
    # newest first. Whatever is left (shims, containers) dies with this PID 1.
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    done
    sleep 1
    kill -KILL -1 2>/dev/null || true
    exit 0
}
trap stop_all TERM INT EXIT
mkdir -p "$STATE/pids"

wait_for() { # wait_for WHAT SECONDS COMMAND…
    local what=$1 seconds=$2
    shift 2
    for ((n = 0; n < seconds * 5; n++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "node.sh: $what not up after ${seconds}s" >&2
    return 1
}

# -- the namespaces ---------------------------------------------------------------------------
mount --make-rprivate /
mount --bind "$STATE/var-log" /var/log          # kubelet writes /var/log/pods and /var/log/containers
mount -t tmpfs -o mode=755 tmpfs /run           # containerd's shim sockets, runc state, xtables lock
hostname "$NODE_NAME"
ip link set lo up
ip addr add "$NODE_IP/32" dev lo
ip addr add "$DNS_IP/32" dev lo
echo 1 >/proc/sys/net/ipv4/ip_forward           # this network namespace only
echo 1 >/proc/sys/net/ipv4/conf/all/route_localnet
# The pods' bridge, made here so that the Service route below can name it; CNI's bridge plugin
# adopts it.
ip link add cni0 type bridge
ip addr add "$POD_GATEWAY/${POD_CIDR#*/}" dev cni0
ip link set cni0 up
# Service IPs from processes of the node itself (pods reach them through their default route).
ip route add "$SERVICE_CIDR" dev cni0

# -- control plane ----------------------------------------------------------------------------
start etcd etcd --name node --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node=http://127.0.0.1:2380
start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=0.0.0.0 --secure-port=6443 --insecure-port=0 --advertise-address="$NODE_IP" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
    --authorization-mode=Node,RBAC \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --kubelet-preferred-address-types=InternalIP \
    --feature-gates=TTLAfterFinished=true
KUBECTL=(kubectl --kubeconfig "$PKI/admin.kubeconfig")
wait_for kube-apiserver 60 "${KUBECTL[@]}" get --raw /readyz
start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$PKI/controller-manager.kubeconfig" \
    --use-service-account-credentials=true --leader-elect=false \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --bind-address=127.0.0.1 --feature-gates=TTLAfterFinished=true
start kube-scheduler "$KUBE_BIN/kube-scheduler" \
    --kubeconfig="$PKI/scheduler.kubeconfig" \
    --authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
    --authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1

# -- cluster DNS: dnsmasq answers from a hosts folder that a loop fills from the Services -------
start dnsmasq dnsmasq --keep-in-foreground --no-resolv --no-hosts --user=root \
    --listen-address="$DNS_IP" --bind-interfaces --hostsdir="$STATE/dns" \
    --local=/cluster.local/ --pid-file="$STATE/dnsmasq.pid" --log-facility=-
dns_loop() {
    local template='{{range .items}}{{if and .spec.clusterIP (ne .spec.clusterIP "None")}}{{.spec.clusterIP}} {{.metadata.name}}.{{.metadata.namespace}}.svc.cluster.local{{"\n"}}{{end}}{{end}}'
    while true; do
        if "${KUBECTL[@]}" get services --all-namespaces -o go-template="$template" >"$STATE/dns.tmp" 2>/dev/null &&
            ! cmp -s "$STATE/dns.tmp" "$STATE/dns/services"; then
            mv "$STATE/dns.tmp" "$STATE/dns/services"
        fi
        sleep 1
    done
}
dns_loop >"$LOG/dns-loop.log" 2>&1 &
PIDS+=("$!")

# -- the node ---------------------------------------------------------------------------------
cat >"$STATE/cni/net.d/10-ingestload.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "ingestload", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
            "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
cat >"$STATE/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$STATE/containerd.sock"
[ttrpc]
  address = "$STATE/containerd.ttrpc.sock"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
EOF
start containerd containerd --config "$STATE/containerd.toml"
wait_for containerd 30 ctr --address "$STATE/containerd.sock" version
for archive in "$STATE"/images/*.tar; do
    [ -e "$archive" ] || continue
    ctr --address "$STATE/containerd.sock" -n k8s.io images import --all-platforms "$archive" >>"$LOG/images.log" 2>&1
done
# Pods resolve through the cluster DNS; this file only serves pods with dnsPolicy Default.
echo "nameserver $DNS_IP" >"$STATE/resolv.conf"
start kubelet "$KUBE_BIN/kubelet" \
    --kubeconfig="$PKI/kubelet.kubeconfig" \
    --container-runtime=remote --container-runtime-endpoint="unix://$STATE/containerd.sock" \
    --cgroup-driver=cgroupfs --cgroup-root="$CGROUP_ROOT" --fail-swap-on=false \
    --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" \
    --volume-plugin-dir="$STATE/kubelet-plugins" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --cluster-dns="$DNS_IP" --cluster-domain=cluster.local --resolv-conf="$STATE/resolv.conf" \
    --anonymous-auth=true --authorization-mode=AlwaysAllow --read-only-port=0 \
    --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
    --eviction-hard=memory.available\<1Mi,nodefs.available\<1%,imagefs.available\<1% \
    --serialize-image-pulls=false --max-pods=60
start kube-proxy "$KUBE_BIN/kube-proxy" \
    --kubeconfig="$PKI/kube-proxy.kubeconfig" --hostname-override="$NODE_NAME" \
    --proxy-mode=iptables --masquerade-all --cluster-cidr="$POD_CIDR" \
    --bind-address="$NODE_IP" --metrics-bind-address=127.0.0.1:10249 \
    --healthz-bind-address=127.0.0.1:10256 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0s \
    --conntrack-tcp-timeout-close-wait=0s
wait_for "node $NODE_NAME" 90 "${KUBECTL[@]}" wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
wait_for "service account" 30 "${KUBECTL[@]}" get serviceaccount default
touch "$STATE/ready"
echo "node.sh: node $NODE_NAME ready"

# Stay PID 1 until told to stop; a component that dies takes the cluster down with it.
wait -n "${PIDS[@]}" || true
echo "node.sh: a component ended; stopping the node" >&2
stop_all
