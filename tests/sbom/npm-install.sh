#!/bin/sh
# Installs @cyclonedx/cyclonedx-library (it ships the official CycloneDX JSON
# schemas) and the ajv validator it uses (versions pinned in package.json and
# package-lock.json) into tests/sbom/node_modules for the schema validation of
# tests/sbom/sbom.sh. Nothing is installed globally. Without node/npm or
# without a reachable registry it says so and exits 0: the SBOM test then
# skips instead of failing the whole test run.
# usage: tests/sbom/npm-install.sh
cd "$(dirname "$0")" || exit 1
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	echo "npm-install: node or npm not installed; the SBOM tests will skip" >&2
	exit 0
fi
if [ -f node_modules/.agkit-installed ] && [ node_modules/.agkit-installed -nt package-lock.json ]; then
	exit 0
fi
rm -rf node_modules
if npm ci --no-audit --no-fund --loglevel=error; then
	touch node_modules/.agkit-installed
else
	echo "npm-install: npm ci failed (registry unreachable?); the SBOM tests will skip" >&2
	rm -rf node_modules
fi
exit 0
