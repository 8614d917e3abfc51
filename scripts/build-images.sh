#!/usr/bin/env bash
# Builds every podmates image locally, no registry needed, and prints their sizes.
#
#   scripts/build-images.sh            # build the musl release binaries if needed, then the images
#   PODMATES_NO_CARGO=1 scripts/...    # use the binaries as they are (the pod tests do this)
#
# Images (tag $PODMATES_TAG, default latest; prefix $PODMATES_IMAGE_PREFIX, default localhost/podmates):
#   <prefix>/{logship,log2json,ambassador,reloader,waitfor}  FROM scratch + static binary
#   <prefix>/pgbackup     images/pgbackup/Containerfile.test: scratch + this machine's Debian
#                         pg_dump/pg_restore/psql and their libraries (PODMATES_PGBACKUP_PRODUCTION=1
#                         builds images/pgbackup/Containerfile, on the official postgres image)
#   <prefix>/demo-app     the stand-in main app of the pod tests
#   <prefix>/test-nginx   Debian nginx in a scratch image, for the reloader pod test
#
# Engine: podman, or docker when no podman and a docker daemon answers ($PODMATES_ENGINE overrides).
# Idempotent: a stamp of the inputs (binaries, Containerfiles, copied host files) skips images that
# are already built from the same inputs; concurrent runs are serialised with flock.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
musl=x86_64-unknown-linux-musl
bin_dir=$target_dir/$musl/release
tag=${PODMATES_TAG:-latest}
prefix=${PODMATES_IMAGE_PREFIX:-localhost/podmates}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)
revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
agents=(logship log2json ambassador pgbackup reloader waitfor)

die() { echo "build-images: $*" >&2; exit 1; }
image_exists() { $engine image inspect "$1" >/dev/null 2>&1; }

if [ -n "${PODMATES_ENGINE:-}" ]; then
    engine=$PODMATES_ENGINE
elif command -v podman >/dev/null 2>&1; then
    engine=podman
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
else
    die "neither podman nor a running docker found: run scripts/setup-podman.sh"
fi

mkdir -p "$target_dir"
exec 9>"$target_dir/.podmates-images.lock"
flock 9

if [ "${PODMATES_NO_CARGO:-0}" != 1 ]; then
    if [ -x "$root/scripts/build-static.sh" ]; then
        "$root/scripts/build-static.sh"
    else
        (cd "$root" && cargo build --release --target "$musl" --workspace --bins)
    fi
fi
# demo-app (std + libc, seconds to build) is not among build-static.sh's agents: build it when
# it is missing, or always unless PODMATES_NO_CARGO=1.
if [ "${PODMATES_NO_CARGO:-0}" != 1 ] || [ ! -x "$bin_dir/demo-app" ]; then
    (cd "$root" && cargo build --release --target "$musl" -p demo-app)
fi
for b in "${agents[@]}" demo-app; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing: run scripts/build-static.sh (or this script without PODMATES_NO_CARGO)"
done

stage_root=$target_dir/podmates-images
mkdir -p "$stage_root"

# Copies host programs and every shared library `ldd` lists for them (plus the loader) into
# $1, at their original paths; symlinks are resolved so the image holds real files.
stage_host_programs() {
    local dest=$1; shift
    local prog lib
    for prog in "$@"; do
        [ -x "$prog" ] || die "$prog is missing: install it (see scripts/setup-podman.sh)"
        install -D -m 0755 "$(readlink -f "$prog")" "$dest/${prog#/}.tmp"
        mv "$dest/${prog#/}.tmp" "$dest/${prog#/}"
        for lib in $(ldd "$prog" | awk '/=> \//{print $3} /^[ \t]*\/.*ld-linux/{print $1}'); do
            # 0755: the kernel needs exec permission on the dynamic loader.
            install -D -m 0755 "$(readlink -f "$lib")" "$dest/${lib#/}"
        done
    done
}

# build NAME CONTAINERFILE CONTEXT [PULL-FLAG]: builds $prefix/NAME:$tag unless the same inputs built it.
build() {
    local name=$1 file=$2 ctx=$3 image=$prefix/$1:$tag
    local stamp
    stamp=$( (cat "$file"; cd "$ctx" && find . -printf '%m %y %p\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)
    if [ "$(cat "$ctx.stamp" 2>/dev/null)" = "$stamp" ] && image_exists "$image"; then
        echo "build-images: $image up to date"
        return
    fi
    echo "build-images: building $image"
    local old_id
    old_id=$($engine image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    local pull=--pull=never
    [ "$engine" = docker ] && pull=--pull=false
    [ -n "${4:-}" ] && pull=$4   # the production pgbackup image pulls its base image
    # shellcheck disable=SC2086
    $engine build --quiet $pull \
        --build-arg VERSION="$version" --build-arg REVISION="$revision" \
        --label org.opencontainers.image.created="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        -f "$file" -t "$image" "$ctx" >/dev/null
    echo "$stamp" >"$ctx.stamp"
    # The previous build of this tag, now untagged: remove it (ignored if a container uses it).
    if [ -n "$old_id" ] && [ "$old_id" != "$($engine image inspect --format '{{.Id}}' "$image")" ]; then
        $engine rmi "$old_id" >/dev/null 2>&1 || true
    fi
}

# stage NAME: a fresh context dir with images/rootfs/etc.
stage() {
    local ctx=$stage_root/$1
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp -r "$root/images/rootfs/etc" "$ctx/etc"
    echo "$ctx"
}

for a in logship log2json ambassador reloader waitfor; do
    ctx=$(stage "$a")
    cp "$bin_dir/$a" "$ctx/$a"
    build "$a" "$root/images/$a/Containerfile" "$ctx"
done

ctx=$(stage pgbackup)
cp "$bin_dir/pgbackup" "$ctx/pgbackup"
if [ "${PODMATES_PGBACKUP_PRODUCTION:-0}" = 1 ]; then
    build pgbackup "$root/images/pgbackup/Containerfile" "$ctx" --pull
else
    pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [ -n "$pgbin" ] || die "no /usr/lib/postgresql/*/bin: apt-get install postgresql-client"
    stage_host_programs "$ctx/pgclient" "$pgbin/pg_dump" "$pgbin/pg_dumpall" "$pgbin/pg_restore" "$pgbin/psql"
    mkdir -p "$ctx/pgclient/usr/bin"
    mv "$ctx/pgclient/${pgbin#/}"/* "$ctx/pgclient/usr/bin/"
    rm -rf "$ctx/pgclient/usr/lib/postgresql"
    # pg_dumpall finds pg_dump through popen(3), which needs /bin/sh.
    stage_host_programs "$ctx/pgclient" /bin/dash
    mv "$ctx/pgclient/bin/dash" "$ctx/pgclient/bin/sh"
    build pgbackup "$root/images/pgbackup/Containerfile.test" "$ctx"
fi

ctx=$(stage demo-app)
cp "$bin_dir/demo-app" "$ctx/demo-app"
build demo-app "$root/images/demo-app/Containerfile" "$ctx"

if [ -x /usr/sbin/nginx ]; then
    ctx=$(stage test-nginx)
    stage_host_programs "$ctx/hostbin" /usr/sbin/nginx
    # nginx creates its temp dirs at start unless they exist (the root is read-only).
    mkdir -p "$ctx/hostbin/var/lib/nginx"/{body,fastcgi,proxy,scgi,uwsgi}
    [ -f /etc/nginx/mime.types ] && install -D -m 0644 /etc/nginx/mime.types "$ctx/hostbin/etc/nginx/mime.types"
    build test-nginx "$root/images/test-nginx/Containerfile" "$ctx"
else
    echo "build-images: no /usr/sbin/nginx (apt-get install nginx-light): skipping $prefix/test-nginx" >&2
fi

echo
printf '%-45s %12s %10s\n' IMAGE BYTES SIZE
for name in "${agents[@]}" demo-app test-nginx; do
    image=$prefix/$name:$tag
    image_exists "$image" || continue
    bytes=$($engine image inspect --format '{{.Size}}' "$image")
    printf '%-45s %12s %10s\n' "$image" "$bytes" "$(numfmt --to=iec-i --suffix=B "$bytes")"
done
