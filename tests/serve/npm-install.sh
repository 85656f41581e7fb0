#!/bin/sh
# Installs the official OpenAI and Anthropic SDKs (versions pinned in
# package.json and package-lock.json) into tests/serve/node_modules for
# tests/serve/sdk.sh. Nothing is installed globally. Without node/npm or
# without a reachable registry it says so and exits 0: the SDK tests then
# skip (exit 77) instead of failing the whole test run.
# usage: tests/serve/npm-install.sh
cd "$(dirname "$0")" || exit 1
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	echo "npm-install: node or npm not installed; the SDK tests will skip" >&2
	exit 0
fi
if [ -f node_modules/.agkit-installed ] && [ node_modules/.agkit-installed -nt package-lock.json ]; then
	exit 0
fi
rm -rf node_modules
if npm ci --no-audit --no-fund --loglevel=error; then
	touch node_modules/.agkit-installed
else
	echo "npm-install: npm ci failed (registry unreachable?); the SDK tests will skip" >&2
	rm -rf node_modules
fi
exit 0
