#!/bin/bash
# Builds agkit and runs its whole test suite; ends with "N passed, N failed".
# Usage: scripts/test.sh [BUILD_DIR] [meson test args...]
set -uo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/deps.sh" || exit 1
# the official OpenAI and Anthropic SDKs for tests/serve (skipped without npm)
"$(dirname "$0")/../tests/serve/npm-install.sh"
# the CycloneDX library (official 1.6 schema) for tests/sbom (skipped without npm)
"$(dirname "$0")/../tests/sbom/npm-install.sh"
build=${1:-build}
shift || true
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" >/dev/null || { echo "meson setup failed"; exit 1; }
fi
ninja -C "$build" || { echo "build failed"; exit 1; }
meson test -C "$build" --print-errorlogs --num-processes 2 "$@"
rc=$?
/usr/bin/python3 scripts/count-tests.py "$build/meson-logs/testlog.json"
exit $rc
