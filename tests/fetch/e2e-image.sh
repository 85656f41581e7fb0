#!/bin/sh
# End to end: registry -> agpack build -> bundle -> agimport extract -> skopeo copy
# into a second registry (TLS with a test CA, htpasswd credentials), as
# docs/FETCH.md "Pushing an imported image into a clean-zone registry" shows.
# An OCI image and a Docker schema 2 image: the manifest digest and media type
# must not change.  Needs AGPACK and AGIMPORT (paths to the binaries).
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo openssl htpasswd
[ -n "${AGPACK:-}" ] && [ -x "$AGPACK" ] || skip "AGPACK not set to the agpack binary"
[ -n "${AGIMPORT:-}" ] && [ -x "$AGIMPORT" ] || skip "AGIMPORT not set to the agimport binary"
unset AGKIT_REGISTRY_USER AGKIT_REGISTRY_PASSWORD

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers 2 >/dev/null
P=$(free_port); H=127.0.0.1:$P
start_plain_registry reg1 "$P"
seed_image "$WORK/src" v1 "$H" demo/app
seed_image "$WORK/src" v1 "$H" demo/v2s2 --format v2s2
want=$(raw_digest "docker://$H/demo/app:v1")
want2=$(raw_digest "docker://$H/demo/v2s2:v1")
[ "$want" != "$want2" ] || fail "seeding did not make a schema 2 manifest"

# The clean zone's registry: TLS (test CA) and htpasswd.
make_ca "$WORK/pki"
mkdir -p "$WORK/certs.d"; cp "$WORK/pki/ca.crt" "$WORK/certs.d/"
htpasswd -Bbc "$WORK/htpasswd" pusher 'push pass' 2>/dev/null
P2=$(free_port); H2=127.0.0.1:$P2
{ registry_config reg2 "$P2"; cat <<YAML
  tls:
    certificate: $WORK/pki/server.crt
    key: $WORK/pki/server.key
auth:
  htpasswd:
    realm: clean-zone
    path: $WORK/htpasswd
YAML
} >"$WORK/reg2.yml"
bg reg2 docker-registry serve "$WORK/reg2.yml"
wait_port "$P2"

cat >"$WORK/spec.json" <<JSON
{"name":"e2e","channel":"stable","version":1,"artifacts":[
 {"type":"image","name":"runtime","ref":"$H/demo/app:v1"},
 {"type":"image","name":"legacy","ref":"$H/demo/v2s2:v1"}]}
JSON
"$AGPACK" keygen --out "$WORK/K" --no-passphrase >"$WORK/keygen.log" 2>&1 || { cat "$WORK/keygen.log"; fail "agpack keygen"; }
"$AGPACK" build "$WORK/spec.json" --key "$WORK/K.key" --out "$WORK/B" --insecure-registry "$H" --cache "$WORK/C" \
	>"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; fail "agpack build"; }
"$AGIMPORT" extract "$WORK/B" --pubkey "$WORK/K.pub" --to "$WORK/T" >"$WORK/extract.log" 2>&1 ||
	{ cat "$WORK/extract.log"; fail "agimport extract"; }

# The SBOM (docs/SBOM.md): one container per fetched image with its manifest
# digest, valid CycloneDX 1.6 when the validator is installed.
python3 - "$WORK/T/sbom/sbom.cdx.json" "$WORK/B/manifest.json" <<'PY' || fail "SBOM of the fetched images"
import json, sys
b = json.load(open(sys.argv[1])); m = json.load(open(sys.argv[2]))
for a in m["artifacts"]:
    if a["name"] in ("runtime", "legacy"):
        c = [c for c in b["components"] if c["name"] == a["name"]][0]
        assert c["type"] == "container" and c["components"][0]["version"] == a["source"]["digest"], (c, a["source"])
PY
V=$(dirname "$0")/../sbom
if command -v node >/dev/null && [ -d "$V/node_modules/@cyclonedx/cyclonedx-library" ]; then
	node "$V/validate.mjs" "$WORK/T/sbom/sbom.cdx.json" >/dev/null || fail "SBOM not valid CycloneDX 1.6"
fi
# "offline_env" rewrites a copy of the fetched image, never the cache.
sed 's/"ref":"\([^"]*\)app:v1"}/"ref":"\1app:v1","offline_env":true}/' "$WORK/spec.json" >"$WORK/spec-oe.json"
grep -q offline_env "$WORK/spec-oe.json" || fail "test bug: no offline_env in the spec"
before=$(find "$WORK/C" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)
"$AGPACK" build "$WORK/spec-oe.json" --key "$WORK/K.key" --out "$WORK/B-oe" --insecure-registry "$H" --cache "$WORK/C" \
	>"$WORK/build-oe.log" 2>&1 || { cat "$WORK/build-oe.log"; fail "agpack build with offline_env"; }
grep -q "offline_env: image" "$WORK/build-oe.log" || fail "offline_env: no finding naming the new digest"
[ "$before" = "$(find "$WORK/C" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)" ] ||
	fail "offline_env changed the fetch cache"
pass "SBOM lists the fetched images by manifest digest; offline_env leaves the cache as it was"

served_type() { # served_type REPO TAG : Content-Type of the manifest in the TLS registry
	python3 - "$H2" "$1" "$2" "$WORK/pki/ca.crt" <<'PY'
import base64, ssl, sys, urllib.request
h, r, t, ca = sys.argv[1:]
q = urllib.request.Request("https://%s/v2/%s/manifests/%s" % (h, r, t), method="HEAD", headers={
    "Authorization": "Basic " + base64.b64encode(b"pusher:push pass").decode(),
    "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"})
print(urllib.request.urlopen(q, timeout=10, context=ssl.create_default_context(cafile=ca)).headers["Content-Type"])
PY
}
push() { # push NAME REPO : the command docs/FETCH.md gives, TLS verified, with credentials
	skopeo copy --quiet --dest-cert-dir "$WORK/certs.d" --dest-creds 'pusher:push pass' \
		"oci:$WORK/T/$1:v1" "docker://$H2/$2:v1"
}
got_digest() {
	skopeo inspect --raw --cert-dir "$WORK/certs.d" --creds 'pusher:push pass' "docker://$H2/$1:v1" | sha256sum | cut -d' ' -f1
}

push runtime demo/app || fail "skopeo copy out of the extracted layout (OCI)"
got=$(got_digest demo/app)
[ "$got" = "$want" ] || fail "manifest digest changed: sha256:$want -> sha256:$got"
[ "$(served_type demo/app v1)" = application/vnd.oci.image.manifest.v1+json ] || fail "OCI media type changed"
pass "OCI image: registry -> bundle -> TLS registry with credentials, manifest sha256:$want unchanged"

push legacy demo/legacy || fail "skopeo copy out of the extracted layout (Docker schema 2)"
got2=$(got_digest demo/legacy)
[ "$got2" = "$want2" ] || fail "schema 2 manifest digest changed: sha256:$want2 -> sha256:$got2"
t=$(served_type demo/legacy v1)
[ "$t" = application/vnd.docker.distribution.manifest.v2+json ] || fail "schema 2 pushed as $t"
pass "Docker schema 2 image: registry -> bundle -> TLS registry, manifest sha256:$want2 and media type unchanged"

set +e
skopeo copy --quiet --dest-cert-dir "$WORK/certs.d" "oci:$WORK/T/runtime:v1" "docker://$H2/demo/anon:v1" >"$WORK/anon.log" 2>&1
rc1=$?
skopeo copy --quiet --dest-creds 'pusher:push pass' "oci:$WORK/T/runtime:v1" "docker://$H2/demo/noca:v1" >"$WORK/noca.log" 2>&1
rc2=$?
set -e
[ $rc1 -ne 0 ] || fail "push without credentials accepted: the registry is not checking them"
[ $rc2 -ne 0 ] || fail "push without the CA accepted: TLS is not being verified"
pass "the push needs both the credentials and the CA"
