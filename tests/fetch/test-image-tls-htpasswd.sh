#!/bin/sh
# The registry over TLS (CA made here) with bcrypt htpasswd auth: credentials
# from a Docker config.json, $DOCKER_CONFIG, or AGKIT_REGISTRY_USER/PASSWORD;
# refusals without CA, without or with wrong credentials.
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo openssl htpasswd
unset AGKIT_REGISTRY_USER AGKIT_REGISTRY_PASSWORD DOCKER_CONFIG
export HOME="$WORK/home"; mkdir -p "$HOME"

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 >/dev/null
make_ca "$WORK/pki"
htpasswd -Bbc "$WORK/htpasswd" alice 's3cret pass' 2>/dev/null

# Seed through a plain registry on the same storage, then serve it with TLS + auth.
P0=$(free_port)
start_plain_registry reg "$P0"
seed_image "$WORK/src" v1 "127.0.0.1:$P0" demo/app
kill $PIDS; wait 2>/dev/null || true; PIDS=""

P=$(free_port); H=127.0.0.1:$P
{ registry_config reg "$P"; cat <<YAML
  tls:
    certificate: $WORK/pki/server.crt
    key: $WORK/pki/server.key
auth:
  htpasswd:
    realm: agfetch-test
    path: $WORK/htpasswd
YAML
} >"$WORK/tls.yml"
bg reg-tls docker-registry serve "$WORK/tls.yml"
wait_port "$P"

mkdir -p "$WORK/dc"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$H" "$(printf 'alice:s3cret pass' | base64 -w0)" >"$WORK/dc/config.json"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$H" "$(printf 'alice:wrong' | base64 -w0)" >"$WORK/bad.json"

fetch "$WORK/p1" image "$H/demo/app:v1" "$WORK/o1" --cache "$WORK/c1" --ca "$WORK/pki/ca.crt" --auth-file "$WORK/dc/config.json" ||
	{ cat "$WORK/p1.err"; fail "TLS + htpasswd with auth file"; }
skopeo inspect "oci:$WORK/o1:v1" >/dev/null || fail "skopeo rejects the layout"
mkdir -p "$WORK/certs.d"; cp "$WORK/pki/ca.crt" "$WORK/certs.d/"
want=$(skopeo inspect --raw --cert-dir "$WORK/certs.d" --creds 'alice:s3cret pass' "docker://$H/demo/app:v1" | sha256sum | cut -d' ' -f1)
[ "$(jget "$WORK/p1" digest)" = "sha256:$want" ] || fail "digest differs from the registry's"
pass "TLS with extra CA, Basic auth from --auth-file"

DOCKER_CONFIG="$WORK/dc" fetch "$WORK/p2" image "$H/demo/app:v1" "$WORK/o2" --cache "$WORK/c2" --ca "$WORK/pki/ca.crt" ||
	{ cat "$WORK/p2.err"; fail "credentials from \$DOCKER_CONFIG"; }
pass "credentials from \$DOCKER_CONFIG/config.json"

AGKIT_REGISTRY_USER=alice AGKIT_REGISTRY_PASSWORD='s3cret pass' \
	fetch "$WORK/p3" image "$H/demo/app:v1" "$WORK/o3" --cache "$WORK/c3" --ca "$WORK/pki/ca.crt" ||
	{ cat "$WORK/p3.err"; fail "credentials from environment"; }
pass "credentials from AGKIT_REGISTRY_USER/AGKIT_REGISTRY_PASSWORD"

set +e
fetch "$WORK/p4" image "$H/demo/app:v1" "$WORK/o4" --cache "$WORK/c4" --ca "$WORK/pki/ca.crt"; rc4=$?
fetch "$WORK/p5" image "$H/demo/app:v1" "$WORK/o5" --cache "$WORK/c5" --ca "$WORK/pki/ca.crt" --auth-file "$WORK/bad.json"; rc5=$?
fetch "$WORK/p6" image "$H/demo/app:v1" "$WORK/o6" --cache "$WORK/c6" --auth-file "$WORK/dc/config.json"; rc6=$?
fetch "$WORK/p7" image "$H/demo/app:v1" "$WORK/o7" --cache "$WORK/c7" --insecure "$H" --auth-file "$WORK/dc/config.json"; rc7=$?
set -e
[ $rc4 -ne 0 ] && grep -q "requires credentials" "$WORK/p4.err" || fail "no credentials: rc $rc4 $(cat "$WORK/p4.err")"
[ $rc5 -ne 0 ] && grep -q "HTTP 401" "$WORK/p5.err" || fail "wrong password: rc $rc5 $(cat "$WORK/p5.err")"
[ $rc6 -eq 3 ] && grep -q "TLS" "$WORK/p6.err" || fail "unknown CA: rc $rc6 $(cat "$WORK/p6.err")"
[ $rc7 -ne 0 ] || fail "plain http to a TLS registry succeeded"
for o in o4 o5 o6 o7; do [ ! -e "$WORK/$o" ] || fail "$o left behind"; done
pass "refused: no credentials ($rc4), wrong password ($rc5), unknown CA ($rc6), http to TLS port ($rc7)"
