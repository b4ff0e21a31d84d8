#!/usr/bin/env bash
# Bring up a Docker engine and a local base image on a machine that reaches no image registry
# (GUIDE §5): docker.io + dockerd (vfs), and a Debian bookworm base made with debootstrap from the
# machine's own apt mirror, imported as qasr/base:local. Fails loudly; never skips.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-qasr/base:local}

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
    # A daemon killed with its session leaves pid files that stop the next one from starting.
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
            rm -f "$pidfile"
        fi
    done
    echo "== starting dockerd (vfs storage driver)"
    nohup dockerd --storage-driver=vfs >/tmp/qasr-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not come up within 60 s; its log:" >&2
        tail -n 50 /tmp/qasr-dockerd.log >&2 || true
        exit 1
    fi
fi

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "== base image $BASE_IMAGE already present"
    exit 0
fi

# The Debian mirror this machine's apt uses (read at run time, never written into the repository).
mirror=$(grep -rhoE '^(URIs:|deb)\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n 1 || true)
if [ -z "$mirror" ]; then
    echo "cannot find a Debian mirror in /etc/apt/sources*; set one in apt's sources first" >&2
    exit 1
fi

root=$(mktemp -d /tmp/qasr-base-XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "== debootstrap bookworm from the machine's mirror (about 2.5 minutes)"
start=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >/tmp/qasr-debootstrap.log 2>&1 || {
    echo "debootstrap failed; its log:" >&2
    tail -n 40 /tmp/qasr-debootstrap.log >&2
    exit 1
}
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
tar -C "$root" -c . | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE_IMAGE" >/dev/null
echo "== imported $BASE_IMAGE in $((SECONDS - start)) s"
