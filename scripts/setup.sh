#!/usr/bin/env bash
# Installs what building and testing podmates needs, on a fresh machine or an old one.
# Idempotent: installs only what is missing, so a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: musl-tools for static builds (mimalloc's C part), lld (logship's function
# order, see agents/logship/build.rs), file for the static-binary check, and the real peers
# the tests run against.
apt_packages=(musl-tools lld file openssl nginx-light prometheus haproxy socat iperf3 podman runc postgresql-client netcat-openbsd gzip time bc libnginx-mod-stream wrk curl catatonit)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Rust: the musl target for static binaries, and the test runner.
if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  log "adding the x86_64-unknown-linux-musl target"
  rustup target add x86_64-unknown-linux-musl
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# Container images are built and run with podman (runc; see scripts/setup-podman.sh).
if [ -x scripts/setup-podman.sh ]; then
  scripts/setup-podman.sh
fi

# Python tools used by tests (manifest validation).
if [ -f scripts/requirements-test.txt ]; then
  python3 -m pip install -q -r scripts/requirements-test.txt
fi

# The services this kind of machine starts before a session; start any that stopped.
start_if_down() { # port, command...
  local port=$1; shift
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "starting the service on port $port"
    "$@" >/dev/null 2>&1 || log "could not start the service on port $port"
  fi
}
start_if_down 5432 sh -c 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'
start_if_down 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
start_if_down 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
start_if_down 5672 rabbitmq-server -detached
start_if_down 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf
start_if_down 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
log "ready"
