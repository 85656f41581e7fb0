#!/bin/sh
# Bearer token flow: the real registry with `auth: token` trusting a signing
# certificate made here, a small HTTPS token issuer (tokenserver.py); anonymous
# pull, pull of a private repository with and without credentials.
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo openssl
unset AGKIT_REGISTRY_USER AGKIT_REGISTRY_PASSWORD DOCKER_CONFIG
export HOME="$WORK/home"; mkdir -p "$HOME"

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 >/dev/null
make_ca "$WORK/pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=agfetch token signer" \
	-keyout "$WORK/pki/sign.key" -out "$WORK/pki/sign.crt" 2>/dev/null

P0=$(free_port)
start_plain_registry reg "$P0"
seed_image "$WORK/src" v1 "127.0.0.1:$P0" demo/app
seed_image "$WORK/src" v1 "127.0.0.1:$P0" demo/private
kill $PIDS; wait 2>/dev/null || true; PIDS=""

TP=$(free_port)
bg token python3 "$TESTDIR/tokenserver.py" "$TP" "$WORK/pki/server.crt" "$WORK/pki/server.key" \
	"$WORK/pki/sign.crt" "$WORK/pki/sign.key" bob 'hunter2' "$WORK/token-requests"
wait_port "$TP"
P=$(free_port); H=127.0.0.1:$P
{ registry_config reg "$P"; cat <<YAML
  tls:
    certificate: $WORK/pki/server.crt
    key: $WORK/pki/server.key
auth:
  token:
    realm: https://127.0.0.1:$TP/token
    service: agfetch-test-registry
    issuer: agfetch-test-issuer
    rootcertbundle: $WORK/pki/sign.crt
YAML
} >"$WORK/tok.yml"
bg reg-token docker-registry serve "$WORK/tok.yml"
wait_port "$P"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$H" "$(printf 'bob:hunter2' | base64 -w0)" >"$WORK/auth.json"

fetch "$WORK/p1" image "$H/demo/app:v1" "$WORK/o1" --cache "$WORK/c" --ca "$WORK/pki/ca.crt" ||
	{ cat "$WORK/p1.err"; fail "anonymous token pull"; }
grep -q '^- repository:demo/app:pull$' "$WORK/token-requests" || fail "no anonymous token request seen"
skopeo inspect "oci:$WORK/o1:v1" >/dev/null || fail "skopeo rejects the layout"
pass "anonymous bearer token"

set +e
fetch "$WORK/p2" image "$H/demo/private:v1" "$WORK/o2" --cache "$WORK/c" --ca "$WORK/pki/ca.crt"; rc=$?
set -e
[ $rc -ne 0 ] || fail "private repository pulled anonymously"
[ ! -e "$WORK/o2" ] || fail "output left behind"
pass "private repository refused anonymously: $(tail -n1 "$WORK/p2.err")"

fetch "$WORK/p3" image "$H/demo/private:v1" "$WORK/o3" --cache "$WORK/c3" --ca "$WORK/pki/ca.crt" --auth-file "$WORK/auth.json" ||
	{ cat "$WORK/p3.err"; fail "token with credentials"; }
grep -q '^bob repository:demo/private:pull$' "$WORK/token-requests" || fail "no authenticated token request seen"
[ "$(jget "$WORK/p3" digest)" = "$(jget "$WORK/p1" digest)" ] || fail "same image, different digest"
pass "bearer token obtained with credentials"

printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$H" "$(printf 'bob:nope' | base64 -w0)" >"$WORK/bad.json"
if fetch "$WORK/p4" image "$H/demo/private:v1" "$WORK/o4" --cache "$WORK/c4" --ca "$WORK/pki/ca.crt" --auth-file "$WORK/bad.json"; then
	fail "wrong credentials accepted by the token flow"
fi
pass "wrong credentials refused: $(tail -n1 "$WORK/p4.err")"
