#!/bin/bash
# Parity volumes: a 12-volume bundle with --parity 2 survives every lost pair
# of volumes, a corrupted volume and a tampered parity volume; losing 3 is
# refused (exit 3) with a message naming them.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
export AGKIT_REPAIR_DIR="$WORK/repair"
mkdir -p repair tree/sub
# 35 chunks of 16 KiB: 12 volumes of 3 chunks (the last has 2: unequal lengths, zero-padded).
head -c 560000 /dev/urandom > tree/random.bin
echo "small file" > tree/sub/a.txt
seq 1 1000 > tree/sub/numbers.txt
keygen k
spec spec.json paritytest 1 files:payload:tree
"$AGPACK" build spec.json --key k.key --out b --volume-size 64K --chunk-size 16K --parity 2 >build.out 2>&1 ||
	{ echo "Bail out! cannot build: $(cat build.out)"; exit 1; }
nvol=$(ls b/vol-*.agv | wc -l); npar=$(ls b/par-*.agp 2>/dev/null | wc -l)
[ "$nvol" = 12 ] && ok "12 data volumes" || not_ok "12 data volumes (got $nvol)"
[ "$npar" = 2 ] && ok "2 parity volumes" || not_ok "2 parity volumes (got $npar)"
grep -q '"format_version": "1.1"' b/manifest.json && ok "manifest says format 1.1" || not_ok "manifest says format 1.1"
$PY -c 'import json,sys; m=json.load(open("b/manifest.json")); p=m["parity"]; assert p["scheme"]=="rs-cauchy-gf256"; assert [v["name"] for v in p["volumes"]]==["par-00001.agp","par-00002.agp"]; assert p["groups"]==[{"data":list(range(12)),"parity":[0,1]}]; assert all(v["size"]==max(x["size"] for x in m["volumes"]) for v in p["volumes"])' &&
	ok "manifest records the parity geometry" || not_ok "manifest records the parity geometry"
# The parity bytes follow docs/FORMAT.md section 9, computed here independently of ISA-L.
$PY - b <<'PY' && ok "parity volumes match the FORMAT.md formula (independent GF(2^8) code)" || not_ok "parity volumes match the FORMAT.md formula"
import json, sys
d = sys.argv[1]
m = json.load(open(d + "/manifest.json"))
exp, log = [0] * 512, [0] * 256
x = 1
for i in range(255):
    exp[i] = x; log[x] = i
    x <<= 1
    if x & 0x100: x ^= 0x11D
for i in range(255, 512): exp[i] = exp[i - 255]
inv = lambda a: exp[255 - log[a]]
for g in m["parity"]["groups"]:
    k = len(g["data"])
    vols = [open(d + "/" + m["volumes"][i]["name"], "rb").read() for i in g["data"]]
    L = max(len(v) for v in vols)
    vols = [v + bytes(L - len(v)) for v in vols]
    for j, pi in enumerate(g["parity"]):
        pv = m["parity"]["volumes"][pi]
        par = open(d + "/" + pv["name"], "rb").read()
        assert len(par) == L == pv["size"]
        want = bytearray(L)
        for i in range(k):
            c = inv((k + j) ^ i); lc = log[c]; v = vols[i]
            for xx in range(L):
                if v[xx]: want[xx] ^= exp[lc + log[v[xx]]]
        assert bytes(want) == par, pv["name"]
PY
(cd b && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 && ok "SHA256SUMS covers the parity volumes" || not_ok "SHA256SUMS covers the parity volumes"
check "the intact bundle verifies" "$AGIMPORT" verify b --pubkey k.pub

# A bundle without --parity stays format 1.0.
"$AGPACK" build spec.json --key k.key --out plain --volume-size 64K --chunk-size 16K >/dev/null 2>&1
grep -q '"format_version": "1.0"' plain/manifest.json && ! grep -q '"parity"' plain/manifest.json &&
	ok "without --parity the manifest stays 1.0" || not_ok "without --parity the manifest stays 1.0"

names=$(cd b && ls vol-*.agv par-*.agp)
set -- $names
all=("$@")
pairs=0; bad_pairs=""
for ((i = 0; i < ${#all[@]}; i++)); do
	for ((j = i + 1; j < ${#all[@]}; j++)); do
		a=${all[$i]} c=${all[$j]}
		rm -rf t out && cp -al b t && rm "t/$a" "t/$c"
		pairs=$((pairs + 1))
		if [[ $a == vol-* && $c == vol-* ]]; then
			# Data pairs: extract and compare the tree byte for byte.
			if ! "$AGIMPORT" extract t --pubkey k.pub --to out >t.out 2>&1 || ! same_tree tree out/payload >/dev/null ||
				! grep -q "$a: missing; rebuilt from parity" t.out || ! grep -q "$c: missing; rebuilt from parity" t.out; then
				bad_pairs="$bad_pairs $a+$c"; sed 's/^/#   /' t.out | tail -5
			fi
		elif ! "$AGIMPORT" verify t --pubkey k.pub >t.out 2>&1; then
			bad_pairs="$bad_pairs $a+$c"; sed 's/^/#   /' t.out | tail -5
		fi
	done
done
diag "tried $pairs pairs of the ${#all[@]} volumes"
[ "$pairs" = 91 ] && [ -z "$bad_pairs" ] && ok "every lost pair of volumes is rebuilt (66 data pairs extracted and compared, 25 with a parity volume verified)" ||
	not_ok "every lost pair is rebuilt (failed:$bad_pairs)"
ls repair | grep -q . && not_ok "rebuild files left in AGKIT_REPAIR_DIR" || ok "no rebuild files left behind"

flip() { $PY -c 'import sys; f,o=sys.argv[1],int(sys.argv[2]); h=open(f,"r+b"); h.seek(o); b=h.read(1); h.seek(o); h.write(bytes([b[0]^1]))' "$1" "$2"; }
fresh() { rm -rf t out out.agtmp-*; cp -a b t; }

fresh; flip t/vol-00005.agv 1000
check "a corrupted volume: extract rebuilds it" "$AGIMPORT" extract t --pubkey k.pub --to out
last_output | grep -q "vol-00005.agv: sha256 does not match the signed manifest; rebuilt from parity" && ok "message names the corrupted volume" || { not_ok "message names the corrupted volume"; last_output | sed 's/^/#   /'; }
check "a corrupted volume: the tree is intact" same_tree tree out/payload

fresh; truncate -s -10 t/vol-00003.agv; flip t/vol-00008.agv 20
check "a truncated and a corrupted volume: verify rebuilds both" "$AGIMPORT" verify t --pubkey k.pub
last_output | grep -q "vol-00003.agv: truncated; rebuilt" && last_output | grep -q "vol-00008.agv: sha256 does not match" &&
	ok "message names both" || { not_ok "message names both"; last_output | sed 's/^/#   /'; }

fresh; rm t/vol-00002.agv t/vol-00007.agv t/vol-00011.agv
expect_exit 3 "three lost volumes: verify refuses" "$AGIMPORT" verify t --pubkey k.pub
last_output | grep -q "3 volumes of parity group 1 are missing or damaged: vol-00002.agv (missing), vol-00007.agv (missing), vol-00011.agv (missing); its 2 parity volume(s) can rebuild at most 2" &&
	ok "message names the three missing volumes" || { not_ok "message names the three missing volumes"; last_output | sed 's/^/#   /'; }
expect_exit 3 "three lost volumes: extract refuses" "$AGIMPORT" extract t --pubkey k.pub --to out
[ ! -e out ] && ! ls -d out.agtmp-* >/dev/null 2>&1 && ok "target absent, nothing left behind" || not_ok "target absent, nothing left behind"

fresh; rm t/vol-00001.agv t/par-00002.agp t/vol-00012.agv
expect_exit 3 "two data and one parity volume lost: refused" "$AGIMPORT" verify t --pubkey k.pub

# Tampered parity volumes are detected and never used.
fresh; flip t/par-00001.agp 300
check "a tampered parity volume: the data still verifies" "$AGIMPORT" verify t --pubkey k.pub
last_output | grep -q "par-00001.agp: sha256 does not match the signed manifest" && ok "verify names the tampered parity volume" ||
	{ not_ok "verify names the tampered parity volume"; last_output | sed 's/^/#   /'; }
fresh; flip t/par-00001.agp 300; rm t/vol-00004.agv
check "tampered parity + one lost volume: rebuilt from the other parity volume" "$AGIMPORT" extract t --pubkey k.pub --to out
last_output | grep -q "par-00001.agp: sha256 does not match the signed manifest; not used" && ok "the tampered parity volume was not used" ||
	{ not_ok "the tampered parity volume was not used"; last_output | sed 's/^/#   /'; }
check "tampered parity + one lost volume: the tree is intact" same_tree tree out/payload
fresh; flip t/par-00002.agp 40000; rm t/vol-00004.agv t/vol-00009.agv
expect_exit 3 "tampered parity + two lost volumes: refused" "$AGIMPORT" extract t --pubkey k.pub --to out
last_output | grep -q "par-00002.agp (sha256 does not match the signed manifest)" && ok "message names the tampered parity volume" ||
	{ not_ok "message names the tampered parity volume"; last_output | sed 's/^/#   /'; }
[ ! -e out ] && ok "target absent" || not_ok "target absent"
fresh; mv t/par-00001.agp x && mv t/par-00002.agp t/par-00001.agp && mv x t/par-00002.agp; rm t/vol-00006.agv
expect_exit 3 "swapped parity volumes + a lost volume: refused" "$AGIMPORT" verify t --pubkey k.pub
fresh; echo x > t/par-00003.agp
expect_exit 3 "a parity volume the manifest does not name is refused" "$AGIMPORT" verify t --pubkey k.pub
last_output | grep -q "par-00003.agp: unexpected file" && ok "message names it" || not_ok "message names it"
done_testing
