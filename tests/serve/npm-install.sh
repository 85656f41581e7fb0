#!/bin/sh
# The official OpenAI and Anthropic SDKs (pinned in package.json and
# package-lock.json) into tests/serve/node_modules for tests/serve/sdk.sh.
# usage: tests/serve/npm-install.sh
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../npm-install.sh" "$here" "the SDK tests"
