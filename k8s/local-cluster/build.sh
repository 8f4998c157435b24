#!/usr/bin/env bash
# Builds the local cluster's components from the Go module proxy with the ordinary `go` client,
# once per version: ~/.cache/digits/<component>-<version>/bin/. Versions: versions.env; the
# wrapper modules (go.mod + go.sum, checked in): modules/<component>/.
#   build.sh [kubernetes|etcd|coredns|pause ...]   (default: all)
# Builds run under `nice -n 19` with -p=2: the CPU may be shared with other test runs.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
. "$HERE/versions.env"
CACHE="${DIGITS_CACHE:-$HOME/.cache/digits}"
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-$GO_TOOLCHAIN}"
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -p=2"
NICE=(nice -n 19)

log() { printf '%s build: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# build_module <name> <version> <packages...>: go build the packages of modules/<name> into
# $CACHE/<name>-<version>/bin, unless already there.
build_module() {
    local name=$1 version=$2 ldflags=$3; shift 3
    local out="$CACHE/$name-$version" work="$CACHE/build/$name-$version"
    if [ -f "$out/.complete" ]; then log "$name $version: cached in $out"; return; fi
    log "$name $version: building $* ..."
    local start=$SECONDS
    rm -rf "$work" "$out"; mkdir -p "$work" "$out/bin"
    cp "$HERE/modules/$name/go.mod" "$work/"
    cp "$HERE/modules/$name/go.sum" "$work/"
    ( cd "$work" && "${NICE[@]}" go build -mod=readonly -trimpath -ldflags "-s -w $ldflags" -o "$out/bin/" "$@" )
    # A module's main package is named after its path's last element: server/v3 gives "server".
    [ ! -f "$out/bin/server" ] || mv "$out/bin/server" "$out/bin/etcd"
    echo "$((SECONDS - start))" > "$out/build-seconds"
    touch "$out/.complete"
    log "$name $version: built in $((SECONDS - start)) s"
}

build_pause() {
    local out="$CACHE/pause-1" work="$CACHE/build/pause-1"
    if [ -f "$out/.complete" ]; then log "pause: cached in $out"; return; fi
    rm -rf "$work" "$out"; mkdir -p "$work" "$out/bin"
    cp "$HERE/pause/main.go" "$work/"
    ( cd "$work" && printf 'module digits.local/cluster/pause\n\ngo 1.24.0\n' > go.mod \
        && "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$out/bin/pause" . )
    touch "$out/.complete"
    log "pause: built"
}

K8S_PKG=k8s.io/kubernetes/cmd
K8S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=v$KUBERNETES_VERSION \
 -X k8s.io/component-base/version.gitMajor=${KUBERNETES_VERSION%%.*} \
 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=v$KUBERNETES_VERSION"

# The wrapper modules must require what versions.env names (a bump changes both, and go.sum).
check_pin() { # check_pin <module dir> <module path> <version>
    grep -qE "^require $2 v$3\$|^[[:space:]]$2 => $2 v$3\$" "$HERE/modules/$1/go.mod" \
        || { echo "build.sh: modules/$1/go.mod does not pin $2 v$3 (versions.env)" >&2; exit 1; }
}
check_pin kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION"
check_pin kubernetes k8s.io/client-go "$KUBERNETES_STAGING_VERSION"
check_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pin coredns github.com/coredns/coredns "$COREDNS_VERSION"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pause etcd kubernetes coredns)
for target in "${targets[@]}"; do
    case $target in
        pause) build_pause ;;
        etcd) build_module etcd "$ETCD_VERSION" "-X go.etcd.io/etcd/api/v3/version.GitSHA=v$ETCD_VERSION" \
                go.etcd.io/etcd/server/v3 ;;
        kubernetes) build_module kubernetes "$KUBERNETES_VERSION" "$K8S_LDFLAGS" \
                $K8S_PKG/kube-apiserver $K8S_PKG/kube-controller-manager $K8S_PKG/kube-scheduler \
                $K8S_PKG/kubelet $K8S_PKG/kube-proxy $K8S_PKG/kubectl ;;
        coredns) build_module coredns "$COREDNS_VERSION" "" github.com/coredns/coredns ;;
        *) echo "build.sh: unknown component $target" >&2; exit 2 ;;
    esac
done
