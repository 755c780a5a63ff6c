#!/usr/bin/env bash
# Every test: starts the local AWS emulator if it is not running (installing
# it on first use), runs the whole workspace's tests against it, and stops
# the emulator again if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optline/target}"
started=no
if [ "$(python3 infra/local-stack.py status)" != "running" ]; then
  python3 infra/local-stack.py start >/dev/null
  started=yes
fi
cleanup() { if [ "$started" = yes ]; then python3 infra/local-stack.py stop; fi; }
trap cleanup EXIT
cargo test --workspace "$@"
