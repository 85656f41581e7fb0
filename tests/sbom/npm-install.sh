#!/bin/sh
# @cyclonedx/cyclonedx-library (it ships the official CycloneDX JSON schemas)
# and the ajv validator it uses (pinned in package.json and package-lock.json)
# into tests/sbom/node_modules for the schema validation of tests/sbom/sbom.sh.
# usage: tests/sbom/npm-install.sh
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../npm-install.sh" "$here" "the SBOM tests"
