#!/usr/bin/env bash
# The main job: build, start the local AWS emulator (installing it on first
# use), create fresh resources from infra/template.yaml, and run the whole
# follow-up loop through the real handlers, printing the story.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/optline/target}"
python3 infra/local-stack.py start >/dev/null
cargo run --quiet -p optline-tests --bin optline-demo
echo
echo "The local stack is still running for you to explore (see README: cargo lambda watch, curl)."
echo "Stop it with: python3 infra/local-stack.py stop"
