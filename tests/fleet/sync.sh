#!/bin/bash
# agsync on 127.0.0.1: publish (verify first, mirror copy unchanged, index,
# registry push with the digest unchanged) and pull (mirror -> R.agsync-pull ->
# the node's own verification and staging; resume; bounded retries; a tampered
# mirror refused with nothing staged; a registry serving another image
# detected).  Real nginx and docker-registry.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
. "$(dirname "$0")/lib-fleet.sh"
need nginx docker-registry skopeo
cd "$WORK"
staged_v() { st '([v["version"] for v in s["slots"].values() if v["state"] == "staged"] or [None])[0]'; }
keygen k
keygen other
H=127.0.0.1
MP=$(free_port); RP=$(free_port)
M=$WORK/mirror; mkdir -p "$M"
start_mirror $H "$MP" "$M" || { not_ok "nginx starts"; done_testing; exit; }
start_registry $H "$RP" || { not_ok "docker-registry starts"; done_testing; exit; }
REG=$H:$RP
URL=http://$H:$MP

$PY "$TESTS_DIR/fetch/mkimage.py" img1 v1 --layers 2 >/dev/null
$PY "$TESTS_DIR/fetch/mkimage.py" img2 v1 --layers 1 >/dev/null
D1=$(layout_digest img1)
# pack OUT VERSION KEY [IMAGE]: bundle llm/stable with a model and (optionally) an image.
pack() {
	local out=$1 v=$2 key=$3 img=${4:-img1}
	mkdir -p "src-$out"; head -c 300000 /dev/urandom > "src-$out/weights.bin"; echo "v$v" > "src-$out/version"
	printf '{"name":"llm","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"src-%s"},{"type":"oci-archive","name":"runtime","path":"%s"}]}' \
		"$v" "$out" "$img" > "spec-$out.json"
	"$AGPACK" build "spec-$out.json" --key "$key" --out "$out" >/dev/null 2>&1
}
check "pack v1" pack b1 1 k.key
check "pack v2" pack b2 2 k.key
check "pack v3 (signed by a key the nodes do not trust)" pack b3 3 other.key

# ---- publish
expect_exit 2 "publish needs --pubkey or --root" "$AGSYNC" publish b1 --mirror "$M"
expect_exit 3 "publish refuses a bundle its keys did not sign" "$AGSYNC" publish b1 --pubkey other.pub --mirror "$M" --registry "$REG" --insecure-registry
check "nothing copied for the refused bundle" test ! -e "$M/llm"
check "publish v1 to the mirror and the registry" "$AGSYNC" publish b1 --pubkey k.pub --mirror "$M" --registry "$REG" --insecure-registry
check "the mirror holds v1 unchanged" diff -r b1 "$M/llm/stable/1"
check "the registry serves the image with its digest unchanged" sh -c \
	"test \"sha256:\$(skopeo inspect --raw --tls-verify=false docker://$REG/llm/runtime:v1 | sha256sum | cut -d' ' -f1)\" = '$D1'"
check "index.json lists v1 with the image digest" $PY -c "
import json,sys; j=json.load(open('$M/index.json')); b=j['bundles']
assert [(x['name'],x['channel'],x['version'],x['path']) for x in b]==[('llm','stable',1,'llm/stable/1')], b
assert b[0]['images'][0]['digest']=='$D1', b"
check "publishing the same bundle again is fine" "$AGSYNC" publish b1 --pubkey k.pub --mirror "$M"
check "publish v2 under a root's trust policy" sh -c "'$AGCTL' --root '$WORK/GW' init --pubkey k.pub >/dev/null && '$AGSYNC' publish b2 --root '$WORK/GW' --mirror '$M'"
check "index.json lists v1 and v2" $PY -c "
import json; assert sorted(x['version'] for x in json.load(open('$M/index.json'))['bundles'])==[1,2]"
check "pack another v2" pack b2b 2 k.key
expect_exit 4 "another bundle under a published version is refused" "$AGSYNC" publish b2b --pubkey k.pub --mirror "$M"
check "the published v2 is untouched" diff -r b2 "$M/llm/stable/2"
# a registry with TLS (a test CA) and credentials
need openssl htpasswd
TP=$(free_port); TREG=$H:$TP
make_ca pki $H || not_ok "test CA"
htpasswd -Bbc htpasswd pusher 'push pass' 2>/dev/null
REG_TLS=$WORK/pki REG_HTPASSWD=$WORK/htpasswd start_registry $H "$TP" || not_ok "TLS registry starts"
mkdir -p certs.d; cp pki/ca.crt certs.d/
expect_exit 4 "publish to the TLS registry without its CA fails" env AGKIT_REGISTRY_USER=pusher AGKIT_REGISTRY_PASSWORD='push pass' "$AGSYNC" publish b1 --pubkey k.pub --registry "$TREG"
last_output | grep -q "certificate" && ok "says why (the certificate)" || { not_ok "says why (the certificate)"; last_output; }
expect_exit 4 "publish to the TLS registry without credentials fails" "$AGSYNC" publish b1 --pubkey k.pub --registry "$TREG" --ca-file pki/ca.crt
check "publish to the TLS registry with --ca-file and credentials from the environment" env AGKIT_REGISTRY_USER=pusher AGKIT_REGISTRY_PASSWORD='push pass' "$AGSYNC" publish b1 --pubkey k.pub --registry "$TREG" --ca-file pki/ca.crt
check "the TLS registry serves the image with its digest unchanged" sh -c \
	"test \"sha256:\$(skopeo inspect --raw --cert-dir certs.d --creds 'pusher:push pass' docker://$TREG/llm/runtime:v1 | sha256sum | cut -d' ' -f1)\" = '$D1'"
expect_exit 2 "a user without a password is a usage error" env AGKIT_REGISTRY_USER=pusher "$AGSYNC" publish b1 --pubkey k.pub --registry "$TREG"

# ---- pull
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
expect_exit 2 "pull needs an http URL" "$AGSYNC" pull "$M/llm/stable/1" --root "$R"
check "pull v1 by its directory URL, images checked" "$AGSYNC" pull "$URL/llm/stable/1/" --root "$R" --registry "$REG" --insecure-registry
last_output | grep -q "1 image(s) served by $REG with their digests" && ok "says the image was checked" || { not_ok "says the image was checked"; last_output; }
check "v1 staged" test "$(staged_v)" = 1
check "the temporary directory beside the root is gone" test ! -e "$R.agsync-pull"
check "agctl promote v1" "$AGCTL" --root "$R" promote
check "v1 serves" test "$(cat "$R/active/model/version")" = v1
check "pull --bundle llm: the newest of the root's channel (v2)" "$AGSYNC" pull "$URL" --bundle llm --root "$R"
check "v2 staged" test "$(staged_v)" = 2
expect_exit 5 "pulling v1 again: below the floor, refused by the node's policy" "$AGSYNC" pull "$URL/llm/stable/1" --root "$R" --force
check "nothing left beside the root after a refusal" test ! -e "$R.agsync-pull"

# resume: half a volume already fetched
R2=$WORK/R2; "$AGCTL" --root "$R2" init --pubkey k.pub >/dev/null
mkdir -p "$R2.agsync-pull"; head -c 100000 "$M/llm/stable/2/vol-00001.agv" > "$R2.agsync-pull/vol-00001.agv"
: > access.log
check "pull resumes a partial volume" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R2"
check "the volume was asked for from byte 100000" grep -q 'vol-00001.agv 206 .*"bytes=100000-"' access.log
# (v2 has the image too: checked against the TLS registry with credentials)
R4=$WORK/R4; "$AGCTL" --root "$R4" init --pubkey k.pub >/dev/null
: > access.log
check "pull checks the images against the TLS registry with credentials" env AGKIT_REGISTRY_USER=pusher AGKIT_REGISTRY_PASSWORD='push pass' "$AGSYNC" pull "$URL/llm/stable/1" --root "$R4" --registry "$TREG" --ca-file pki/ca.crt
check "a fresh pull asks for each file once" test "$(grep -c '/llm/stable/1/vol-00001.agv 200 ' access.log)/$(grep -c '/llm/stable/1/' access.log)" = "1/4"
expect_exit 4 "without credentials the TLS registry does not answer: the image check fails" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R4" --registry "$TREG" --ca-file pki/ca.crt
check "the unchecked bundle's slot is marked bad" sh -c "'$AGCTL' --root '$R4' status --json | grep -q '\"bad\"'"
check "v2 staged on the second root" sh -c "'$AGCTL' --root '$R2' status --json | grep -q '\"version\": 2'"

# two pulls for one root: the second one waits for nobody and says why
( exec 9>"$R2.agsync-pull.lock"; flock 9; sleep 3 ) & holder=$!
sleep 0.3
expect_exit 6 "a second pull for the same root exits 6" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R2"
last_output | grep -q "another agsync pull runs for this root" && ok "says another pull runs" || { not_ok "says another pull runs"; last_output; }
wait $holder

# a mirror that is down: bounded retries, exit 8
R3=$WORK/R3; "$AGCTL" --root "$R3" init --pubkey k.pub >/dev/null
DEAD=$(free_port)
t0=$(date +%s)
expect_exit 8 "a mirror that is down: exit 8 after the retries" "$AGSYNC" pull "http://$H:$DEAD/llm/stable/2" --root "$R3" --retries 2
check "the retries are bounded (under 20 s)" test $(( $(date +%s) - t0 )) -lt 20

# a bundle signed by a key the node does not trust (the gateway published it)
check "the gateway publishes v3 under its own key list" "$AGSYNC" publish b3 --pubkey other.pub --mirror "$M"
expect_exit 3 "the node refuses v3: not signed by its trust policy" "$AGSYNC" pull "$URL" --bundle llm --channel stable --root "$R3"
check "nothing staged on the node" sh -c "'$AGCTL' --root '$R3' status --json | $PY -c 'import json,sys; s=json.load(sys.stdin); assert all(v.get(\"state\") in (None,\"empty\") for v in s[\"slots\"].values()), s'"
rm -rf "$M/llm/stable/3"

# tampered volume on the mirror, SHA256SUMS made to match: the signed manifest refuses it
cp -a "$M/llm/stable/2" tam
printf 'X' | dd of="$M/llm/stable/2/vol-00001.agv" bs=1 seek=5000 conv=notrunc 2>/dev/null
(cd "$M/llm/stable/2" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS)
expect_exit 3 "a tampered volume (sums recomputed) is refused" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R3"
check "nothing staged" sh -c "'$AGCTL' --root '$R3' status --json | $PY -c 'import json,sys; s=json.load(sys.stdin); assert all(v.get(\"state\") in (None,\"empty\") for v in s[\"slots\"].values()), s'"
check "the temporary directory is removed" test ! -e "$R3.agsync-pull"
cp tam/SHA256SUMS "$M/llm/stable/2/SHA256SUMS"
expect_exit 3 "a tampered volume (sums left) is refused" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R3"
last_output | grep -q "SHA-256 is not the one its SHA256SUMS lists" && ok "says the mirror's file does not match" || { not_ok "says the mirror's file does not match"; last_output; }
check "the temporary directory is removed" test ! -e "$R3.agsync-pull"
rm -rf "$M/llm/stable/2"; cp -a tam "$M/llm/stable/2"
resum() { (cd "$M/llm/stable/2" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS); }
# a volume longer than the signed manifest says: the transfer stops at the signed size
head -c 100000 /dev/zero >> "$M/llm/stable/2/vol-00001.agv"; resum
expect_exit 3 "a volume longer than its signed size is refused" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R3"
last_output | grep -q "larger than the limit of" && ok "says the volume is over its signed size" || { not_ok "says the volume is over its signed size"; last_output; }
rm -rf "$M/llm/stable/2"; cp -a tam "$M/llm/stable/2"
# a tampered manifest: refused before any volume is fetched
sed -i 's/"version": 2/"version": 20/' "$M/llm/stable/2/manifest.json"; resum
: > access.log
expect_exit 3 "a tampered manifest is refused" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R3"
check "no volume was fetched for it" sh -c "! grep -q 'vol-' access.log"
check "nothing staged, the temporary directory removed" sh -c "test ! -e '$R3.agsync-pull' && '$AGCTL' --root '$R3' status --json | $PY -c 'import json,sys; s=json.load(sys.stdin); assert all(v.get(\"state\") in (None,\"empty\") for v in s[\"slots\"].values()), s'"
rm -rf "$M/llm/stable/2"; cp -a tam "$M/llm/stable/2"

# the registry serves another image under the bundle's repository: detected
$PY - "$REG" "$D1" <<'PY' || not_ok "delete the manifest from the registry"
import sys, urllib.request
q = urllib.request.Request("http://%s/v2/llm/runtime/manifests/%s" % (sys.argv[1], sys.argv[2]), method="DELETE")
urllib.request.urlopen(q, timeout=10)
PY
skopeo copy --quiet --dest-tls-verify=false oci:img2:v1 "docker://$REG/llm/runtime:v1" >/dev/null 2>&1 || not_ok "seed another image"
expect_exit 3 "the registry no longer serving the bundle's image digest is detected" "$AGSYNC" pull "$URL/llm/stable/2" --root "$R3" --registry "$REG" --insecure-registry
last_output | grep -q "does not serve image llm/runtime@$D1" && ok "names the image and digest" || { not_ok "names the image and digest"; last_output; }
check "the staged slot is marked bad" sh -c "'$AGCTL' --root '$R3' status --json | grep -q '\"bad\"'"
check "agctl cycle does not promote it" sh -c "'$AGCTL' --root '$R3' cycle; test ! -e '$R3/active/model'"
check "no agsync of this test left running" sh -c "! pgrep -f '[a]gsync .*$WORK'"
done_testing
