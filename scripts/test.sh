#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, static release build, every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-static.sh
cargo nextest run --workspace --locked
