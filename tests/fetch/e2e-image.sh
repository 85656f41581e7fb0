#!/bin/sh
# End to end (enabled once agpack/agimport are merged): registry -> agpack build
# -> agimport extract -> skopeo copy into a second registry; the manifest digest
# must not change.  Needs AGPACK and AGIMPORT (paths to the binaries).
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo
[ -n "${AGPACK:-}" ] && [ -x "$AGPACK" ] || skip "AGPACK not set to the agpack binary"
[ -n "${AGIMPORT:-}" ] && [ -x "$AGIMPORT" ] || skip "AGIMPORT not set to the agimport binary"

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers 2 >/dev/null
P=$(free_port); H=127.0.0.1:$P
start_plain_registry reg1 "$P"
seed_image "$WORK/src" v1 "$H" demo/app
want=$(raw_digest "docker://$H/demo/app:v1")

P2=$(free_port); H2=127.0.0.1:$P2
start_plain_registry reg2 "$P2"

cat >"$WORK/spec.json" <<JSON
{"name":"e2e","channel":"stable","version":1,"artifacts":[{"type":"image","name":"runtime","ref":"$H/demo/app:v1"}]}
JSON
"$AGPACK" keygen --out "$WORK/K" --no-passphrase >"$WORK/keygen.log" 2>&1 || { cat "$WORK/keygen.log"; fail "agpack keygen"; }
"$AGPACK" build "$WORK/spec.json" --key "$WORK/K.key" --out "$WORK/B" --insecure-registry "$H" --cache "$WORK/C" \
	>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; fail "agpack build"; }
"$AGIMPORT" extract "$WORK/B" --pubkey "$WORK/K.pub" --to "$WORK/T" >"$WORK/extract.log" 2>&1 ||
	{ cat "$WORK/extract.log"; fail "agimport extract"; }
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/T/runtime:v1" "docker://$H2/demo/app:v1" ||
	fail "skopeo copy out of the extracted layout"
got=$(raw_digest "docker://$H2/demo/app:v1")
[ "$got" = "$want" ] || fail "manifest digest changed: sha256:$want -> sha256:$got"
pass "registry -> bundle -> second registry, manifest sha256:$want unchanged"
