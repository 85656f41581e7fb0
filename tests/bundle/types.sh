#!/bin/bash
# The artifact-type table of agpack (tools/agpack/artifact_types.c): each
# row's rules as the pack spec and the dry run see them.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
mkdir -p tree && echo data > tree/f
# art JSON...: a spec file s.json with these artifact objects.
art() { local IFS=,; printf '{"name":"x","channel":"stable","version":1,"artifacts":[%s]}' "$*" > s.json; }
build() { "$AGPACK" build s.json --key /nonexistent.key --out out --dry-run; }

art '{"type":"nope","name":"a","path":"tree"}'
expect_exit 2 "an unknown type is refused" build
last_output | grep -q "unknown type 'nope' (files, oci-archive, image, url, hf-model, python, debs)" && ok "by name, with the known types" || not_ok "by name, with the known types"
art '{"name":"a","path":"tree"}'
expect_exit 2 "an artifact without a type is refused" build
art '{"type":"files","name":"a"}'
expect_exit 2 "files without a path is refused" build
last_output | grep -q "artifact 'a' needs a \"path\"" && ok "message asks for the path" || not_ok "message asks for the path"
art '{"type":"oci-archive","name":"a"}'
expect_exit 2 "oci-archive without a path is refused" build
art "{\"type\":\"oci-archive\",\"name\":\"a\",\"path\":\"tree\",\"sha256\":\"$(printf '0%.0s' $(seq 64))\"}"
expect_exit 2 "a sha256 pin on oci-archive is refused" build
last_output | grep -q "pins apply to files artifacts" && ok "message says pins are for files" || not_ok "message says pins are for files"
art '{"type":"files","name":"a","path":"tree"}'
check "a local files artifact in the dry run" build
last_output | grep -Eq "^files +a +5 bytes local (.*/)?tree$" && ok "dry run shows type, name, size and path" || not_ok "dry run shows type, name, size and path"

# Fetched types: their fetch function is the table's (or, without libcurl, refused by name).
if "$AGPACK" --version | grep -q "network sources: yes"; then
	art '{"type":"image","name":"a"}'
	expect_exit 2 "image without ref is refused by its fetch" build
	last_output | grep -q "image needs \"ref\"" && ok "message asks for ref" || not_ok "message asks for ref"
	art '{"type":"url","name":"a","url":"http://127.0.0.1:9/f"}'
	expect_exit 2 "url without sha256 is refused by its fetch" build
	last_output | grep -q "url needs \"sha256\"" && ok "message asks for sha256" || not_ok "message asks for sha256"
	art '{"type":"hf-model","name":"a"}'
	expect_exit 2 "hf-model without repo is refused by its fetch" build
	last_output | grep -q "hf-model needs \"repo\"" && ok "message asks for repo" || not_ok "message asks for repo"
else
	art '{"type":"url","name":"a","url":"http://127.0.0.1:9/f","sha256":"unpinned"}'
	expect_exit 1 "a network type without libcurl is refused" build
	last_output | grep -q "type 'url' needs network sources" && ok "message names the type" || not_ok "message names the type"
fi
done_testing
