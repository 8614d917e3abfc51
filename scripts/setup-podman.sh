#!/usr/bin/env bash
# Prepares a Debian/Ubuntu machine to build the podmates images and run the pod tests:
#  - podman + runc (apt), catatonit for the pod infra container, postgresql-client for the
#    pgbackup test image (its pg_dump/pg_restore/psql are copied into the image);
#  - /etc/containers/containers.conf: runc as the OCI runtime (crun fails on hybrid cgroup v1/v2
#    hosts such as this one) and ulimits that fit a container's limits;
#  - kubernetes-validate (PyPI) for the manifest checks in e2e/tests/manifests.rs.
# Idempotent: safe to run again; it changes only what is missing. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
for pair in podman:podman runc:runc catatonit:/usr/libexec/podman/catatonit pg_dump:postgresql-client; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    case "$cmd" in
        catatonit) [ -x /usr/libexec/podman/catatonit ] || [ -x /usr/bin/catatonit ] || need_apt+=(catatonit) ;;
        *) command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg") ;;
    esac
done
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "setup-podman: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

conf=/etc/containers/containers.conf
want='# Written by podmates scripts/setup-podman.sh.
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]

[engine]
runtime = "runc"'
$SUDO mkdir -p /etc/containers
if [ -f "$conf" ] && grep -q '^runtime *= *"runc"' "$conf" && grep -q 'default_ulimits' "$conf"; then
    echo "setup-podman: $conf already selects runc"
elif [ -f "$conf" ] && ! grep -q 'podmates' "$conf"; then
    # Someone else's file: keep a copy before replacing it.
    $SUDO cp "$conf" "$conf.podmates-backup"
    echo "setup-podman: $conf existed (saved as $conf.podmates-backup); rewriting it"
    printf '%s\n' "$want" | $SUDO tee "$conf" >/dev/null
else
    printf '%s\n' "$want" | $SUDO tee "$conf" >/dev/null
    echo "setup-podman: wrote $conf"
fi

# The manifests check: kubernetes-validate ships the Kubernetes OpenAPI schemas, so it works offline.
# (>= 1.33: schemas with native sidecars.)
if ! python3 -c 'import kubernetes_validate, sys; sys.exit(tuple(map(int, kubernetes_validate.__version__.split(".")[:2])) < (1, 33))' 2>/dev/null \
    || ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "setup-podman: installing kubernetes-validate (pip)"
    python3 -m pip install --quiet --disable-pip-version-check 'kubernetes-validate>=1.33'
fi

podman --version
podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}} {{.Store.GraphDriverName}}'
kubernetes-validate --version 2>/dev/null || true
