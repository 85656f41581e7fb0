#!/bin/bash
# Security review (issue 13), the trust and policy findings, each first
# reproduced as an attack:
#   7  one public key listed under two key ids counts one signature twice;
#   2  a bundle of another channel (same key) bypasses the anti-rollback floor;
#   -  the floor raised at staging lets a staged-but-refused absurd version
#      block its channel; version jumps capped by policy;
#   -  a bundle "created" in the future never expires;
#   -  trust-update signatures carry no domain separation.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-deploy.sh"
need minisign
cd "$WORK"
keygen k1; keygen k2; keygen k4
# fails DESCRIPTION COMMAND...: passes when the command exits non-zero.
fails() {
	local d=$1; shift
	if "$@" >"$WORK/.out" 2>&1; then not_ok "$d (it succeeded)"; sed 's/^/#   /' "$WORK/.out" | tail -20; else ok "$d"; fi
}
# mkb NAME CHANNEL VERSION KEY OUT [EPOCH]: a one-file bundle.
mkb() {
	local src=$WORK/src-$5
	mkdir -p "$src"
	printf 'weights of %s %s v%s\n' "$1" "$2" "$3" > "$src/weights.bin"
	printf '{"name":"%s","channel":"%s","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s"}]}' \
		"$1" "$2" "$3" "$src" > "$src.json"
	SOURCE_DATE_EPOCH=${6:-$(date +%s)} "$AGPACK" build "$src.json" --key "$4" --out "$5" >/dev/null 2>&1 ||
		echo "Bail out! cannot build $5"
}
# edit_json FILE PYTHON: runs PYTHON with the parsed file as j, writes it back.
edit_json() {
	$PY - "$1" "$2" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); exec(sys.argv[2]); json.dump(j, open(sys.argv[1], "w"), indent=1)
PY
}

# ---- Finding 7: the same public key under two ids ---------------------------
# k1b.pub: k1's public key with another key id.  A copy of a k1 signature with
# that id still verifies: the key id is not covered by the signature.
$PY - k1.pub k1b.pub <<'PY'
import base64, sys
lines = open(sys.argv[1]).read().splitlines()
raw = bytearray(base64.b64decode(lines[1])); raw[2:10] = bytes(b ^ 0x5a for b in raw[2:10])
open(sys.argv[2], "w").write("untrusted comment: k1 under another id\n" + base64.b64encode(bytes(raw)).decode() + "\n")
PY
k1b_id=$($PY -c "
import base64, sys; raw = base64.b64decode(open('k1b.pub').read().splitlines()[1]); print('%016X' % int.from_bytes(raw[2:10], 'little'))")
# twin DIR: adds a copy of DIR's k1 signature relabelled with k1b's key id.
twin() {
	$PY - "$1/signatures" "$k1b_id" <<'PY'
import base64, glob, sys
sd, kid = sys.argv[1], sys.argv[2]
src = sorted(glob.glob(sd + "/*.minisig"))[0]
lines = open(src).read().splitlines()
raw = bytearray(base64.b64decode(lines[1])); raw[2:10] = int(kid, 16).to_bytes(8, "little")
lines[1] = base64.b64encode(bytes(raw)).decode()
open("%s/%s.minisig" % (sd, kid), "w").write("\n".join(lines) + "\n")
PY
}
mkb app stable 1 k1.key b7
twin b7
check "finding 7: the relabelled copy is a second signature file" test "$(ls b7/signatures | wc -l)" = 2
expect_exit 3 "finding 7: verify with one key given twice (threshold 2) counts it once" \
	"$AGIMPORT" verify b7 --pubkey k1.pub --pubkey k1b.pub --threshold 2
last_output | grep -q "signed by 1 trusted key(s), the policy needs 2" && ok "finding 7: message counts one signer" ||
	{ not_ok "finding 7: message counts one signer"; last_output | sed 's/^/#   /'; }
check "finding 7: two really distinct keys still make two" sh -c "cp -r b7 b7k2 && rm b7k2/signatures/$k1b_id.minisig && '$AGPACK' sign b7k2 --key k2.key && '$AGIMPORT' verify b7k2 --pubkey k1.pub --pubkey k2.pub --threshold 2"
fails "finding 7: agctl init refuses one public key twice under two ids" \
	"$AGCTL" --root "$WORK/R7a" init --pubkey k1.pub --pubkey k1b.pub --threshold 2
last_output | grep -q "same key is given twice" && ok "finding 7: init says the key is given twice" ||
	{ not_ok "finding 7: init says the key is given twice"; last_output | sed 's/^/#   /'; }
# A 2-of-2 policy whose second key is k1 again (written by hand).
"$AGCTL" --root "$WORK/R7" init --pubkey k1.pub --pubkey k2.pub --threshold 2 >/dev/null
edit_json "$WORK/R7/trust.json" "
l = open('k1b.pub').read().splitlines()[1]
j['keys'][1] = {'id': '$k1b_id', 'public_key': l}"
expect_exit 3 "finding 7: a trust policy listing one key twice is refused on load" "$AGCTL" --root "$WORK/R7" status
last_output | grep -q "listed twice" && ok "finding 7: message says listed twice" ||
	{ not_ok "finding 7: message says listed twice"; last_output | sed 's/^/#   /'; }
expect_exit 3 "finding 7: ... and nothing is imported under it" "$AGIMPORT" b7 --root "$WORK/R7"
check "finding 7: nothing was staged" test ! -e "$WORK/R7/slots/blue/model"

# ---- Trust-update signatures: domain separation ------------------------------
R9=$WORK/R9
"$AGCTL" --root "$R9" init --pubkey k1.pub >/dev/null
mkpolicy() { # mkpolicy OUT SERIAL KEYFILES...
	local out=$1 serial=$2; shift 2
	$PY - "$out" "$serial" "$@" <<'PY'
import json, sys
out, serial, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
ks = [{"id": open(k).read().split()[-2], "public_key": open(k).read().splitlines()[1]} for k in keys]
json.dump({"agkit_trust": 1, "serial": serial, "threshold": 1, "keys": ks}, open(out, "w"), indent=1)
PY
}
mkpolicy t2.json 2 k1.pub k4.pub
minisign -S -s k1.key -m t2.json -x t2.json.k1.minisig </dev/null >/dev/null
minisign -S -s k4.key -m t2.json -x t2.json.k4.minisig </dev/null >/dev/null
expect_exit 3 "trust update: plain minisign signatures (no trust-update comment) are refused" \
	"$AGCTL" --root "$R9" trust update t2.json
last_output | grep -q "agkit-trust-update v1 serial" && ok "trust update: message names the required trusted comment" ||
	{ not_ok "trust update: message names the required trusted comment"; last_output | sed 's/^/#   /'; }
rm t2.json.*.minisig
minisign -S -s k1.key -m t2.json -x t2.json.k1.minisig -t "agkit-trust-update v1 serial 3" </dev/null >/dev/null
minisign -S -s k4.key -m t2.json -x t2.json.k4.minisig -t "agkit-trust-update v1 serial 3" </dev/null >/dev/null
expect_exit 3 "trust update: a comment naming another serial is refused" "$AGCTL" --root "$R9" trust update t2.json
check "trust serial still 1" test "$(R=$R9 st 's["trust"]["serial"]')" = 1
rm t2.json.*.minisig
minisign -S -s k1.key -m t2.json -x t2.json.k1.minisig -t "agkit-trust-update v1 serial 2" </dev/null >/dev/null
check "agpack sign-trust signs a policy with the trust-update comment" "$AGPACK" sign-trust t2.json --key k4.key
check "... next to the policy, as FILE.KEYID.minisig" sh -c "ls t2.json.*.minisig | grep -v k1 | grep -q ."
check "... whose trusted comment says what it signs" sh -c "grep -h '^trusted comment: agkit-trust-update v1 serial 2' t2.json.*.minisig | wc -l | grep -qx 2"
check "trust update with declared signatures (minisign -t and agpack sign-trust) is accepted" \
	"$AGCTL" --root "$R9" trust update t2.json
check "trust serial now 2" test "$(R=$R9 st 's["trust"]["serial"]')" = 2
# The other direction: a trust-update signature over a manifest is no bundle signature.
mkb app stable 1 k1.key bt
rm bt/signatures/*.minisig
minisign -S -s k1.key -m bt/manifest.json -x bt/signatures/k1.minisig \
	-t "agkit-trust-update v1 serial 3" </dev/null >/dev/null
expect_exit 3 "a trust-update signature over a manifest does not verify a bundle" "$AGIMPORT" verify bt --pubkey k1.pub
expect_exit 3 "... nor import it" "$AGIMPORT" bt --root "$R9"

# ---- Finding 2: switching channel bypasses anti-rollback ---------------------
R2=$WORK/R2
"$AGCTL" --root "$R2" init --pubkey k1.pub >/dev/null
mkb app prod 5 k1.key p5
mkb app dev 1 k1.key d1
check "finding 2: prod v5 imported" "$AGIMPORT" p5 --root "$R2"
check "finding 2: prod v5 promoted" "$AGCTL" --root "$R2" promote
check "finding 2: the root follows the channel of its first import" test "$(R=$R2 st 's["channel"]')" = prod
expect_exit 5 "finding 2: dev v1 (same key, other channel) is refused" "$AGIMPORT" d1 --root "$R2"
last_output | grep -q "channel dev is not the channel this root follows (prod)" && ok "finding 2: message names both channels" ||
	{ not_ok "finding 2: message names both channels"; last_output | sed 's/^/#   /'; }
check "finding 2: the refusal is audited" grep -q '"channel":"dev".*"result":"refused"' "$R2/audit.log"
check "finding 2: prod v5 still active" test "$(R=$R2 st 's["slots"]["blue"]["state"], s["active"]')" = "active blue"
fails "finding 2: agctl channel set refuses a bad name" "$AGCTL" --root "$R2" channel set "../x"
check "finding 2: agctl channel set dev (explicit operator action)" "$AGCTL" --root "$R2" channel set dev --reason "move to dev"
check "finding 2: the switch is audited" grep -q '"action":"channel-set",.*"channel":"dev",.*"result":"ok","reason":"prod -> dev: move to dev"' "$R2/audit.log"
check "finding 2: after the switch dev v1 imports" "$AGIMPORT" d1 --root "$R2"
R2b=$WORK/R2b
check "finding 2: agctl init --channel pins the channel before any import" "$AGCTL" --root "$R2b" init --pubkey k1.pub --channel prod
expect_exit 5 "finding 2: ... so the first import of dev is refused" "$AGIMPORT" d1 --root "$R2b"
check "finding 2: ... and prod is accepted" "$AGIMPORT" p5 --root "$R2b"
# The signed policy may list the channels and bundle names a root accepts.
R2c=$WORK/R2c
"$AGCTL" --root "$R2c" init --pubkey k1.pub >/dev/null
edit_json "$R2c/trust.json" "j['channels'] = {'prod': {'min_version': 0}}; j['bundles'] = ['app']"
fails "finding 2: channel set refuses a channel the trust policy does not list" "$AGCTL" --root "$R2c" channel set dev
expect_exit 5 "finding 2: a channel the policy does not list is refused at import" "$AGIMPORT" d1 --root "$R2c"
mkb other prod 9 k1.key o9
expect_exit 5 "finding 2: a bundle name the policy does not list is refused" "$AGIMPORT" o9 --root "$R2c"
last_output | grep -q "bundle other is not one the trust policy accepts" && ok "finding 2: message names the bundle" ||
	{ not_ok "finding 2: message names the bundle"; last_output | sed 's/^/#   /'; }
check "finding 2: the listed channel and name import" "$AGIMPORT" p5 --root "$R2c"

# ---- The floor is raised at promotion, version jumps capped -------------------
RF=$WORK/RF
"$AGCTL" --root "$RF" init --pubkey k1.pub >/dev/null
mkb app stable 5 k1.key f5
mkb app stable 999999999 k1.key fhuge
mkb app stable 6 k1.key f6
mkb app stable 7 k1.key f7
mkb app stable 4 k1.key f4
check "floor: v5 imported and promoted" sh -c "'$AGIMPORT' f5 --root '$RF' && '$AGCTL' --root '$RF' promote && '$AGCTL' --root '$RF' mark-good"
check "floor: an absurd version is staged" "$AGIMPORT" fhuge --root "$RF"
check "floor: ... staging does not raise the floor" test "$(R=$RF st 's["floors"]["stable"]')" = 5
expect_exit 5 "floor: an older version does not replace the staged one" "$AGIMPORT" f6 --root "$RF"
check "floor: the staged absurd version is refused (marked bad)" "$AGCTL" --root "$RF" mark-bad
check "floor: v6 is accepted after the refused absurd version" "$AGIMPORT" f6 --root "$RF"
expect_exit 5 "floor: the active v5 replayed is still refused" "$AGIMPORT" f5 --root "$RF"
expect_exit 5 "floor: an older v4 is still refused" "$AGIMPORT" f4 --root "$RF"
check "floor: v6 promoted" "$AGCTL" --root "$RF" promote
check "floor: promotion raised the floor to 6" test "$(R=$RF st 's["floors"]["stable"]')" = 6
edit_json "$RF/trust.json" "j['max_version_jump'] = 100"
expect_exit 5 "floor: a jump beyond the policy's max_version_jump is refused" "$AGIMPORT" fhuge --root "$RF" --force
last_output | grep -q "max_version_jump" && ok "floor: message names max_version_jump" ||
	{ not_ok "floor: message names max_version_jump"; last_output | sed 's/^/#   /'; }
check "floor: a jump within the cap is accepted" "$AGIMPORT" f7 --root "$RF" --force

# ---- "created" in the future -------------------------------------------------
RC=$WORK/RC
"$AGCTL" --root "$RC" init --pubkey k1.pub >/dev/null
now=$(date +%s)
mkb app stable 1 k1.key future $((now + 10 * 86400))
mkb app stable 2 k1.key soon $((now + 3600))
expect_exit 5 "created 10 days in the future is refused (default skew 1 day)" "$AGIMPORT" future --root "$RC"
last_output | grep -q "in the future" && ok "message says in the future" || { not_ok "message says in the future"; last_output | sed 's/^/#   /'; }
check "created one hour ahead is within the default skew" "$AGIMPORT" soon --root "$RC"
check "default config written by init names max_clock_skew_s" grep -q '"max_clock_skew_s": 86400' "$RC/config.json"
edit_json "$RC/config.json" "j['max_clock_skew_s'] = 30 * 86400"
check "a configured larger skew accepts it" "$AGIMPORT" future --root "$RC" --allow-downgrade
done_testing
