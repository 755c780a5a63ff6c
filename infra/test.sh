#!/usr/bin/env bash
# Every test: starts the local AWS emulator if it is not running (installing
# it on first use), runs the whole workspace's tests against it, stops the
# emulator again if this script started it, and ends with one summary line.
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
# The console's browser tests drive Debian's Chromium over WebDriver.
bash infra/install-browser.sh
# The EHR fixtures the tests send, checked by independent FHIR and HL7 validators.
python3 infra/local-stack.py install >/dev/null
fixtures=0
.venv/bin/python tests/fixtures/validate.py || fixtures=$?
log=$(mktemp)
status=0
cargo test --workspace "$@" 2>&1 | tee "$log" || status=$?
# Sum cargo's per-binary results into one line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "optline: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
rm -f "$log"
if [ "$fixtures" -ne 0 ]; then
  echo "optline: the EHR fixtures failed validation (see above)" >&2
  exit "$fixtures"
fi
exit "$status"
