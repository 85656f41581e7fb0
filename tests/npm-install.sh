#!/bin/sh
# Installs the npm packages a test folder pins (its package.json and
# package-lock.json) into that folder's node_modules with `npm ci`. Nothing is
# installed globally. Without node/npm or without a reachable registry it says
# so and exits 0: the tests that need the packages then skip (exit 77) instead
# of failing the whole run (.ci/run checks that the packages did install).
# usage: tests/npm-install.sh DIR WHAT   (WHAT: "the SDK tests", for messages)
dir=$1 what=${2:-the tests that need them}
cd "$dir" || exit 1
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
	echo "npm-install: node or npm not installed; $what will skip" >&2
	exit 0
fi
if [ -f node_modules/.agkit-installed ] && [ node_modules/.agkit-installed -nt package-lock.json ]; then
	exit 0
fi
rm -rf node_modules
if npm ci --no-audit --no-fund --loglevel=error; then
	touch node_modules/.agkit-installed
else
	echo "npm-install: npm ci failed (registry unreachable?); $what will skip" >&2
	rm -rf node_modules
fi
exit 0
