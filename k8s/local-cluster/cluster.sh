#!/usr/bin/env bash
# A single-node Kubernetes cluster made of Kubernetes' own components run as processes on this
# machine (no node image, no registry): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, Debian's containerd + runc + CNI plugins, CoreDNS.
#   cluster.sh up        start it (components from build.sh, cached in ~/.cache/digits/)
#   cluster.sh down      stop every process it started (by PID), remove its interfaces, iptables
#                        rules, mounts, cgroups and files; restore the sysctls it changed
#   cluster.sh status    what runs
#   cluster.sh env       the KUBECONFIG line for a shell
# Everything listens on 127.0.0.1 or on the bridge digits0 (10.217.0.1) this script creates.
# Needs root (containerd, kubelet, iptables). Logs: $DIGITS_CLUSTER_LOGS (default /tmp/digits-cluster-logs).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"
CACHE="${DIGITS_CACHE:-$HOME/.cache/digits}"
RUN="${DIGITS_CLUSTER_DIR:-/var/lib/digits-cluster}"
LOGS="${DIGITS_CLUSTER_LOGS:-/tmp/digits-cluster-logs}"
K8S_BIN="$CACHE/kubernetes-$KUBERNETES_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
COREDNS_BIN="$CACHE/coredns-$COREDNS_VERSION/bin"
PAUSE_BIN="$CACHE/pause-1/bin"
KUBECTL="$K8S_BIN/kubectl --kubeconfig $RUN/pki/admin.kubeconfig"

BRIDGE=digits0
NODE_IP=10.217.0.1
POD_CIDR=10.217.0.0/24
SERVICE_CIDR=10.219.0.0/24
KUBERNETES_SERVICE_IP=10.219.0.1
DNS_IP=10.219.0.10
NODE_NAME=digits-node
ETCD_PORT=23790
ETCD_PEER_PORT=23800
PAUSE_IMAGE=docker.io/library/digits-pause:1
COREDNS_IMAGE=docker.io/library/digits-coredns:$COREDNS_VERSION
IMAGE_STORE="$CACHE/containerd-store"
CTR=(ctr --address "$RUN/containerd/containerd.sock" -n k8s.io)
# The sysctls the kubelet and kube-proxy change: saved at up, restored at down.
SYSCTLS="vm.overcommit_memory kernel.panic kernel.panic_on_oops net.ipv4.conf.all.route_localnet
 net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
IPT_COMMENT=digits-cluster
# Folders outside $RUN that the kubelet, containerd or CNI make when they are missing (fixed
# paths): removed at down when they were not there at up, deepest first.
MADE_DIRS="/var/log/pods /var/log/containers /var/run/netns /var/lib/cni/results /var/lib/cni
 /var/lib/kubelet/device-plugins /var/lib/kubelet"

log() { printf '%s cluster: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes

# start <name> <command...>: in the background, in its own session, PID in $RUN/pids/<name>.
start() {
    local name=$1; shift
    mkdir -p "$RUN/pids" "$LOGS"
    setsid "$@" > "$LOGS/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN/pids/$name"
    log "started $name (pid $!, log $LOGS/$name.log)"
}

running() { [ -f "$RUN/pids/$1" ] && kill -0 "$(cat "$RUN/pids/$1")" 2>/dev/null; }

# wait_until <seconds> <what> <command...>
wait_until() {
    local timeout=$1 what=$2; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        for pidfile in "$RUN"/pids/*; do
            [ -e "$pidfile" ] || continue
            kill -0 "$(cat "$pidfile")" 2>/dev/null || {
                tail -n 30 "$LOGS/$(basename "$pidfile").log" >&2
                die "$(basename "$pidfile") exited while waiting for $what"; }
        done
        [ $SECONDS -lt $deadline ] || die "no $what after ${timeout}s (logs: $LOGS)"
        sleep 1
    done
}

stop_process() {
    local name=$1 pidfile="$RUN/pids/$1"
    [ -f "$pidfile" ] || return 0
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 20))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.3; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

# ---------------------------------------------------------------- certificates (openssl)

cert() { # cert <name> <CN> <O or ""> [<subjectAltName>]
    local name=$1 cn=$2 org=$3 san=${4:-} dir="$RUN/pki" subj="/CN=$2"
    [ -z "$org" ] || subj="/O=$org/CN=$cn"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" -subj "$subj" \
        -out "$dir/$name.csr" 2>/dev/null
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
        else echo "extendedKeyUsage=clientAuth"; fi
    } > "$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

kubeconfig() { # kubeconfig <name>: from the cert <name>
    local name=$1 dir="$RUN/pki"
    cat > "$dir/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: digits-local
    cluster:
      certificate-authority: $dir/ca.crt
      server: https://$NODE_IP:6443
users:
  - name: $name
    user:
      client-certificate: $dir/$name.crt
      client-key: $dir/$name.key
contexts:
  - name: digits-local
    context: {cluster: digits-local, user: $name}
current-context: digits-local
EOF
}

make_pki() {
    local dir="$RUN/pki"
    mkdir -p "$dir"; chmod 700 "$dir"
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -subj "/CN=digits-local-ca" \
        -days 30 -sha256 -out "$dir/ca.crt" 2>/dev/null
    cert apiserver kube-apiserver "" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$KUBERNETES_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1"
    cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
    cert admin digits-admin system:masters
    cert controller-manager system:kube-controller-manager ""
    cert scheduler system:kube-scheduler ""
    cert kubelet "system:node:$NODE_NAME" system:nodes
    cert kubelet-serving "$NODE_NAME" "" "DNS:$NODE_NAME,IP:$NODE_IP"
    cert kube-proxy system:kube-proxy ""
    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
    for name in admin controller-manager scheduler kubelet kube-proxy; do kubeconfig $name; done
}

# ---------------------------------------------------------------- host: sysctls, bridge, iptables

save_sysctls() {
    : > "$RUN/sysctls"
    for key in $SYSCTLS; do
        value=$(sysctl -n "$key" 2>/dev/null) && echo "$key=$value" >> "$RUN/sysctls"
    done
}

restore_sysctls() {
    [ -f "$RUN/sysctls" ] || return 0
    while IFS= read -r line; do sysctl -q -w "$line" >/dev/null 2>&1 || true; done < "$RUN/sysctls"
    log "sysctls restored: $(tr '\n' ' ' < "$RUN/sysctls")"
}

ipt_rules() { # the filter rules this script adds (dockerd leaves FORWARD's policy at DROP)
    echo "FORWARD -s $POD_CIDR -m comment --comment $IPT_COMMENT -j ACCEPT"
    echo "FORWARD -d $POD_CIDR -m comment --comment $IPT_COMMENT -j ACCEPT"
}

host_up() {
    modprobe br_netfilter 2>/dev/null || true
    save_sysctls
    sysctl -q -w net.ipv4.ip_forward=1
    [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || sysctl -q -w net.bridge.bridge-nf-call-iptables=1
    ip link add "$BRIDGE" type bridge
    echo "$BRIDGE" > "$RUN/bridge"
    ip addr add "$NODE_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    while read -r rule; do
        # shellcheck disable=SC2086
        iptables -I $rule
    done < <(ipt_rules)
}

host_down() {
    while read -r rule; do
        # shellcheck disable=SC2086
        while iptables -C $rule 2>/dev/null; do iptables -D $rule; done
    done < <(ipt_rules)
    if [ -f "$RUN/bridge" ] && ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE" && log "removed the bridge $BRIDGE"
    fi
    # kube-proxy's own chains (KUBE-*), removed by kube-proxy itself.
    if [ -x "$K8S_BIN/kube-proxy" ] && [ -f "$RUN/kube-proxy-started" ]; then
        "$K8S_BIN/kube-proxy" --cleanup --v=0 >> "$LOGS/kube-proxy-cleanup.log" 2>&1 || true
        log "kube-proxy --cleanup: its iptables chains removed"
    fi
    # The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), and
    # anything else named KUBE-* that kube-proxy's cleanup left, when none was there before up.
    if [ -f "$RUN/kube-chains-before" ] && [ ! -s "$RUN/kube-chains-before" ]; then
        remove_kube_chains
    fi
    restore_sysctls
}

kube_chains() { # every "<command> <table> <chain>" named KUBE-*
    local cmd table
    for cmd in iptables ip6tables; do
        for table in filter nat mangle raw; do
            "$cmd-save" -t "$table" 2>/dev/null | awk -v c="$cmd" -v t="$table" \
                '/^:KUBE-/ { print c, t, substr($1, 2) }'
        done
    done
}

remove_kube_chains() {
    local cmd table chain rule
    while read -r cmd table chain; do
        # The rules of other chains that jump to it, then its own rules, then the chain.
        "$cmd-save" -t "$table" | grep -E -- "^-A [^ ]+ .*-j $chain( |\$)" | grep -v "^-A KUBE-" \
            | while read -r rule; do
                # shellcheck disable=SC2086
                "$cmd" -t "$table" -D ${rule#-A } 2>/dev/null || true
            done || true
    done < <(kube_chains)
    while read -r cmd table chain; do "$cmd" -t "$table" -F "$chain" 2>/dev/null || true; done < <(kube_chains)
    while read -r cmd table chain; do "$cmd" -t "$table" -X "$chain" 2>/dev/null || true; done < <(kube_chains)
    if [ -z "$(kube_chains)" ]; then log "removed the kubelet's and kube-proxy's iptables chains (KUBE-*)"
    else log "warning: KUBE-* chains left: $(kube_chains | tr '\n' ' ')"; fi
}

# ---------------------------------------------------------------- containerd, images

containerd_up() {
    local dir="$RUN/containerd"
    mkdir -p "$dir" "$RUN/cni/net.d" "$RUN/cni/ipam"
    cat > "$dir/config.toml" <<EOF
version = 2
# The image store outlives the cluster (like the binaries, in the cache): the images are
# imported and unpacked once, not at every cluster-up. Nothing is mounted there.
root = "$IMAGE_STORE"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: runc can't lower a process's oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni/net.d"
EOF
    # The pod network: pods on the bridge digits0 (made by host_up), addresses from the node's
    # /24; no masquerading (nothing outside is reached), no chains of the plugin's own.
    cat > "$RUN/cni/net.d/10-digits.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "digits",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "10.217.0.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
    start containerd containerd --config "$dir/config.toml"
    wait_until 60 "containerd's socket" "${CTR[@]}" version
}

# image_tar <name:tag> <dir with the binary> <binary> <entrypoint args...>: an image FROM scratch.
scratch_image() {
    local ref=$1 bin=$2; shift 2
    local ctx="$CACHE/build/image-${ref//[:\/]/-}"
    rm -rf "$ctx"; mkdir -p "$ctx"; cp "$bin" "$ctx/"
    local entry; entry=$(printf '"%s",' "/$(basename "$bin")" "$@"); entry="[${entry%,}]"
    printf 'FROM scratch\nCOPY %s /%s\nUSER 65532:65532\nENTRYPOINT %s\n' \
        "$(basename "$bin")" "$(basename "$bin")" "$entry" > "$ctx/Dockerfile"
    docker build -q -t "$ref" "$ctx" >/dev/null 2>&1 || docker build -t "$ref" "$ctx"
}

# import_image <docker image>: docker save | ctr import, skipped when the same image ID is there.
import_image() {
    local ref=$1 id marker
    id=$(docker image inspect --format '{{.Id}}' "$ref")
    marker="$IMAGE_STORE/imported-${ref//[:\/]/-}"
    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$id" ]; then return; fi
    local start=$SECONDS
    docker save "$ref" | "${CTR[@]}" images import --no-unpack - >/dev/null
    echo "$id" > "$marker"
    log "imported $ref ($(docker image inspect --format '{{.Size}}' "$ref" | awk '{printf "%d MB", $1/1e6}')), $((SECONDS - start)) s"
}

images_up() {
    scratch_image digits-pause:1 "$PAUSE_BIN/pause"
    scratch_image "digits-coredns:$COREDNS_VERSION" "$COREDNS_BIN/coredns"
    for ref in digits-pause:1 "digits-coredns:$COREDNS_VERSION" \
            "digits-train:${IMAGE_TAG:-dev}" "digits-inference:${IMAGE_TAG:-dev}" "digits-ui:${IMAGE_TAG:-dev}"; do
        docker image inspect "$ref" >/dev/null 2>&1 || die "image $ref missing: make images BASE=offline"
        import_image "$ref"
    done
}

# ---------------------------------------------------------------- control plane

control_plane_up() {
    local pki="$RUN/pki"
    mkdir -p "$RUN/etcd"
    start etcd "$ETCD_BIN/etcd" --name digits --data-dir "$RUN/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "digits=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
        --quota-backend-bytes 1073741824 --log-level warn
    start kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
        --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
        --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority "$pki/ca.crt" \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --kubelet-preferred-address-types InternalIP \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --allow-privileged=true --profiling=false --anonymous-auth=false --v=1
    wait_until 120 "kube-apiserver's /readyz" $KUBECTL get --raw /readyz
    start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
        --kubeconfig "$pki/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$pki/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$pki/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
        --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false --v=1
    start kube-scheduler "$K8S_BIN/kube-scheduler" \
        --kubeconfig "$pki/scheduler.kubeconfig" \
        --authentication-kubeconfig "$pki/scheduler.kubeconfig" \
        --authorization-kubeconfig "$pki/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
    wait_until 60 "the default service account" $KUBECTL -n default get serviceaccount default
}

# ---------------------------------------------------------------- node

node_up() {
    local pki="$RUN/pki" dir="$RUN/kubelet"
    mkdir -p "$dir"
    echo "nameserver $DNS_IP" > "$RUN/resolv.conf"
    cat > "$RUN/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
# cgroup v1 and no systemd on this machine.
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd/containerd.sock
# The sandbox's root lacks CAP_SYS_RESOURCE: no lowering of the kubelet's own OOM score.
oomScoreAdj: 0
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: $RUN/resolv.conf
failSwapOn: false
# The images can't be pulled again (no registry): never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
EOF
    start kubelet "$K8S_BIN/kubelet" --config "$RUN/kubelet-config.yaml" \
        --kubeconfig "$pki/kubelet.kubeconfig" --root-dir "$dir" --node-ip "$NODE_IP" \
        --hostname-override "$NODE_NAME" --v=1
    cat > "$RUN/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $pki/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
# NodePorts answer on loopback and the bridge only.
nodePortAddresses: ["127.0.0.0/8", "$POD_CIDR"]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack sysctls as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
    touch "$RUN/kube-proxy-started"
    start kube-proxy "$K8S_BIN/kube-proxy" --config "$RUN/kube-proxy-config.yaml" --v=1
    wait_until 120 "node $NODE_NAME Ready" \
        $KUBECTL wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
}

dns_up() {
    sed -e "s|@DNS_IP@|$DNS_IP|; s|@COREDNS_IMAGE@|$COREDNS_IMAGE|" "$HERE/coredns.yaml" \
        | $KUBECTL apply -f - >/dev/null
    $KUBECTL -n kube-system rollout status deployment/coredns --timeout=180s
}

# The hostPath PersistentVolume that the base's claim `model-volume` binds (its claimRef names
# it), writable by the services' UID 10001.
storage_up() {
    mkdir -p "$RUN/volumes/model-volume"
    chown 10001:10001 "$RUN/volumes/model-volume"; chmod 0775 "$RUN/volumes/model-volume"
    $KUBECTL apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: digits-model-volume
  labels: {app.kubernetes.io/part-of: digits}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: digits, name: model-volume}
  hostPath: {path: $RUN/volumes/model-volume, type: Directory}
EOF
}

# ---------------------------------------------------------------- up / down

up() {
    [ "$(id -u)" = 0 ] || die "needs root (containerd, kubelet, iptables)"
    if [ -d "$RUN" ]; then
        if running kube-apiserver && running kubelet; then log "already up"; return; fi
        log "leftovers of an earlier run in $RUN: cleaning up first"; down
    fi
    for bin in "$K8S_BIN/kube-apiserver" "$ETCD_BIN/etcd" "$COREDNS_BIN/coredns" "$PAUSE_BIN/pause"; do
        [ -x "$bin" ] || die "$bin missing: k8s/local-cluster/build.sh"
    done
    ip link show "$BRIDGE" >/dev/null 2>&1 && die "an interface $BRIDGE exists that this script did not make"
    for net in "$POD_CIDR" "$SERVICE_CIDR"; do
        [ -z "$(ip -4 route show to match "${net%/*}" | grep -v '^default')" ] \
            || die "$net is already routed here ($(ip -4 route show to match "${net%/*}" | grep -v '^default')): change it in cluster.sh"
    done
    local start=$SECONDS
    mkdir -p "$RUN" "$LOGS"
    ls /var/run/netns 2>/dev/null > "$RUN/netns-before" || true
    # The kubelet writes the containers' logs under /var/log/pods and /var/log/containers.
    for dir in $MADE_DIRS; do
        [ -d "$dir" ] && echo "$dir" >> "$RUN/dirs-before"
    done
    ls /var/log/pods 2>/dev/null > "$RUN/pod-logs-before" || true
    for sub in $(ls /sys/fs/cgroup); do
        [ -d "/sys/fs/cgroup/$sub/kubepods" ] && echo "$sub" >> "$RUN/kubepods-before"
    done
    kube_chains > "$RUN/kube-chains-before"
    make_pki
    host_up
    containerd_up
    images_up
    control_plane_up
    node_up
    storage_up
    dns_up
    log "up in $((SECONDS - start)) s: export KUBECONFIG=$RUN/pki/admin.kubeconfig"
}

down() {
    [ -d "$RUN" ] || { log "nothing to stop ($RUN absent)"; return 0; }
    local start=$SECONDS
    # Pods first, through the kubelet: their sandboxes torn down by CNI (veths, addresses).
    if running kube-apiserver && running kubelet; then
        $KUBECTL delete namespace digits --ignore-not-found --wait --timeout=90s >/dev/null 2>&1 || true
        $KUBECTL -n kube-system delete deployment coredns --ignore-not-found --wait --timeout=60s >/dev/null 2>&1 || true
        $KUBECTL delete pods --all-namespaces --all --grace-period=5 --wait --timeout=60s >/dev/null 2>&1 || true
        local deadline=$((SECONDS + 60))
        while [ $SECONDS -lt $deadline ] && [ -n "$("${CTR[@]}" tasks ls -q 2>/dev/null)" ]; do sleep 1; done
    fi
    stop_process kube-proxy
    stop_process kubelet
    # Whatever is left (kubelet gone first): kill the tasks, delete the containers.
    if running containerd; then
        for task in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
            "${CTR[@]}" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
        done
        sleep 1
        for task in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
            "${CTR[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true
        done
        for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do
            "${CTR[@]}" containers delete "$c" >/dev/null 2>&1 || true
        done
    fi
    stop_process kube-scheduler
    stop_process kube-controller-manager
    stop_process kube-apiserver
    stop_process etcd
    stop_process containerd
    # Shims outlive containerd: those of our containerd (their command line names our socket).
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $RUN/containerd/" || true); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Network namespaces containerd made for pods and did not remove.
    for ns in $(ls /var/run/netns 2>/dev/null); do
        grep -qx "$ns" "$RUN/netns-before" 2>/dev/null && continue
        case $ns in cni-*) umount "/var/run/netns/$ns" 2>/dev/null || true; rm -f "/var/run/netns/$ns" ;; esac
    done
    # Mounts under our directory (container roots, shm, kubelet volumes), deepest first.
    awk -v dir="$RUN/" -v store="$IMAGE_STORE/" 'index($2, dir) == 1 || index($2, store) == 1 { print $2 }' \
        /proc/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    # The kubelet's cgroups (kubepods), unless they were there before.
    for sub in $(ls /sys/fs/cgroup); do
        local cg="/sys/fs/cgroup/$sub/kubepods"
        [ -d "$cg" ] || continue
        grep -qx "$sub" "$RUN/kubepods-before" 2>/dev/null && continue
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    # The pods' logs the kubelet wrote; the folders too when they were not there before.
    for entry in $(ls /var/log/pods 2>/dev/null); do
        grep -qx "$entry" "$RUN/pod-logs-before" 2>/dev/null || rm -rf "/var/log/pods/$entry"
    done
    find /var/log/containers -maxdepth 1 -xtype l -delete 2>/dev/null || true
    # CNI's result cache (libcni's /var/lib/cni/results/<network>-<container>-<interface>).
    rm -f /var/lib/cni/results/digits-* 2>/dev/null || true
    # The kubelet's device-plugin socket, at a fixed path whatever its --root-dir.
    [ -f "$RUN/kubelet-config.yaml" ] && rm -f /var/lib/kubelet/device-plugins/kubelet.sock
    for dir in $MADE_DIRS; do
        grep -qx "$dir" "$RUN/dirs-before" 2>/dev/null || rmdir "$dir" 2>/dev/null || true
    done
    host_down
    rm -rf "$RUN"
    log "down in $((SECONDS - start)) s: processes, bridge, iptables rules, mounts, cgroups and $RUN removed"
}

status() {
    [ -d "$RUN" ] || { echo "down"; return 0; }
    for pidfile in "$RUN"/pids/*; do
        local name; name=$(basename "$pidfile")
        if kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "$name: running (pid $(cat "$pidfile"))"
        else echo "$name: not running"; fi
    done
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    env) echo "export KUBECONFIG=$RUN/pki/admin.kubeconfig" ;;
    *) echo "usage: $0 up | down | status | env" >&2; exit 2 ;;
esac
