#!/usr/bin/env bash
# Builds stand-in base images from Debian's packages, for machines that reach Debian's mirror and
# PyPI but no image registry:
#   digits-base-debian:offline  a debootstrapped Debian bookworm (minbase), imported into Docker
#   digits-base-python:offline  stands in for python:3.11-slim (python/python3 3.11, pip, venv)
#   digits-base-nginx:offline   stands in for the unprivileged nginx image (nginx as uid 101 on
#                               8080, envsubst, /etc/nginx/templates rendered at start)
# `make images BASE=offline` then builds the three service images on top of them.
#
# Machine-specific settings are read here, at build time, from the machine's own configuration
# and go only into these local images, never into a committed file: the Debian mirror (apt's
# sources), apt's release-date checks, pip's index settings, and the CA bundle
# (/etc/ssl/certs/ca-certificates.crt: HTTPS may pass a proxy whose CA only that bundle trusts).
#
# The debootstrap result is cached as a tarball (OFFLINE_BASE_CACHE), so a second run takes
# seconds. Options: --rebuild (debootstrap again, ignoring the cache), --print-images.
set -euo pipefail

SUITE=bookworm
# Bump when the root file system recipe below changes, so that a stale cached tarball is not used.
ROOTFS_RECIPE=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILES="$HERE/offline-base"
DOCKER=${DOCKER:-docker}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
CACHE_DIR=${OFFLINE_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/digits/offline-base}
ARCH=$(dpkg --print-architecture)
ROOTFS_TAR="$CACHE_DIR/debian-$SUITE-$ARCH-minbase-r$ROOTFS_RECIPE.tar"

DEBIAN_IMAGE=digits-base-debian:offline
PYTHON_IMAGE=digits-base-python:offline
NGINX_IMAGE=digits-base-nginx:offline

log() { echo "offline-base: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The mirror apt on this machine uses for "$1" (e.g. bookworm or bookworm-security), as apt
# itself resolves its sources (one-line and deb822 formats alike). DEBIAN_MIRROR overrides.
apt_repo_for_suite() {
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' 2>/dev/null \
        | awk -v suite="$1" '$1 == suite { print $2; exit }'
}

debian_mirror() {
    local mirror=${DEBIAN_MIRROR:-$(apt_repo_for_suite "$SUITE")}
    [ -n "$mirror" ] || die "no Debian $SUITE mirror in apt's sources; set DEBIAN_MIRROR=<url>"
    echo "${mirror%/}"
}

# apt's sources inside the image: the same mirror for the suite and its updates, and the
# security archive when this machine has one.
write_apt_sources() {
    local rootfs=$1 mirror=$2 security
    security=${DEBIAN_SECURITY_MIRROR:-$(apt_repo_for_suite "$SUITE-security")}
    {
        echo "deb $mirror $SUITE main"
        echo "deb $mirror $SUITE-updates main"
        [ -z "$security" ] || echo "deb ${security%/} $SUITE-security main"
    } > "$rootfs/etc/apt/sources.list"
}

# This machine's apt may need a mirror snapshot's old Release files accepted; carry over only
# those two switches, as apt reports them.
write_apt_release_checks() {
    local rootfs=$1 conf="" key value
    for key in Acquire::Check-Valid-Until Acquire::Check-Date; do
        value=$(apt-config dump "$key" | awk -v k="$key" '$1 == k { gsub(/[";]/, "", $2); print $2 }')
        [ -z "$value" ] || conf+="$key \"$value\";"$'\n'
    done
    [ -z "$conf" ] || printf '%s' "$conf" > "$rootfs/etc/apt/apt.conf.d/90build-host-release-checks"
}

# What Docker's own Debian images add to a plain debootstrap: no service starts during package
# installs, no downloaded .debs or package lists kept, and the slim variant's lean dpkg.
tune_rootfs() {
    local rootfs=$1
    install -m 0755 "$FILES/policy-rc.d" "$rootfs/usr/sbin/policy-rc.d"
    install -m 0644 "$FILES/apt-container.conf" "$rootfs/etc/apt/apt.conf.d/90container"
    install -m 0644 "$FILES/dpkg-slim.cfg" "$rootfs/etc/dpkg/dpkg.cfg.d/90slim"
    # Apply the slim exclusions to what debootstrap already installed (copyright notices stay).
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,info,groff,lintian,linda}/* "$rootfs"/usr/share/locale/*
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
}

debootstrap_tarball() {
    local mirror rootfs
    command -v debootstrap >/dev/null || die "debootstrap is missing (make docker-deps installs it)"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root"
    mirror=$(debian_mirror)
    mkdir -p "$CACHE_DIR"
    rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" EXIT
    log "debootstrap $SUITE ($ARCH, minbase) from $mirror (about a minute)"
    debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$rootfs" "$mirror" \
        > "$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -n 30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    write_apt_sources "$rootfs" "$mirror"
    write_apt_release_checks "$rootfs"
    tune_rootfs "$rootfs"
    tar --numeric-owner --xattrs -C "$rootfs" -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$rootfs"
    trap - EXIT
    log "cached $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

import_debian_image() {
    if [ "${REBUILD:-0}" = 1 ] || [ ! -f "$ROOTFS_TAR" ]; then
        debootstrap_tarball
    elif image_exists "$DEBIAN_IMAGE" \
        && [ "$("$DOCKER" image inspect -f '{{index .Config.Labels "digits.rootfs"}}' \
                "$DEBIAN_IMAGE")" = "$(basename "$ROOTFS_TAR")" ]; then
        log "$DEBIAN_IMAGE is up to date"
        return
    else
        log "using the cached $ROOTFS_TAR"
    fi
    "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL digits.rootfs=$(basename "$ROOTFS_TAR")" \
        --change 'CMD ["bash"]' \
        "$ROOTFS_TAR" "$DEBIAN_IMAGE" >/dev/null
    log "imported $DEBIAN_IMAGE"
}

# pip inside the images is set up like this machine's pip where that matters for reaching the
# package index: index URLs and trusted hosts, proxy, timeouts. Local paths (find-links, file://
# indexes, constraint files) don't exist inside a container and are left out. The CA bundle is
# always named, since a pip upgraded into a venv would otherwise trust only its own bundle.
write_pip_conf() {
    local out=$1 line key value urls url
    {
        echo "[global]"
        echo "cert = /etc/ssl/certs/ca-certificates.crt"
        python3 -m pip config list 2>/dev/null | while IFS= read -r line; do
            key=${line%%=*}; key=${key#*.}
            value=${line#*=}; value=${value#\'}; value=${value%\'}
            case $key in
                index-url|extra-index-url)
                    urls=""
                    for url in $value; do
                        case $url in http://*|https://*) urls+=" $url" ;; esac
                    done
                    [ -z "$urls" ] || echo "$key =$urls" ;;
                trusted-host|proxy|timeout|default-timeout|retries)
                    echo "$key = $value" ;;
            esac
        done | sort -u -t= -k1,1
    } > "$out"
}

build_standin() {
    local image=$1 dockerfile=$2 context
    context=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$context'" RETURN
    cp "$FILES"/* "$context/"
    cp "$CA_BUNDLE" "$context/build-host-ca-bundle.crt"
    write_pip_conf "$context/pip.conf"
    log "building $image"
    mkdir -p "$CACHE_DIR"
    "$DOCKER" build --network host --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
        -f "$context/$dockerfile" -t "$image" "$context" > "$CACHE_DIR/$dockerfile.log" 2>&1 \
        || { tail -n 40 "$CACHE_DIR/$dockerfile.log" >&2; die "building $image failed"; }
}

main() {
    case ${1:-} in
        --rebuild) REBUILD=1 ;;
        --print-images) echo "$PYTHON_IMAGE $NGINX_IMAGE"; return ;;
        "") ;;
        *) die "usage: $0 [--rebuild | --print-images]" ;;
    esac
    [ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set CA_BUNDLE)"
    "$DOCKER" info >/dev/null 2>&1 || die "the Docker engine is not running (make dockerd)"
    import_debian_image
    build_standin "$PYTHON_IMAGE" python.Dockerfile
    build_standin "$NGINX_IMAGE" nginx.Dockerfile
    log "ready: $PYTHON_IMAGE, $NGINX_IMAGE"
}

main "$@"
