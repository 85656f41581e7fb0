#!/bin/bash
# Security review (issue 13), finding 4: a medium whose files are symlinks to
# devices, or FIFOs, is refused quickly (never a read that does not end);
# SIGTERM ends a long receive promptly and releases the lock; recovery after
# a kill keeps a slot's intact bundle instead of marking the slot empty.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
cd "$WORK"
keygen k
mkdir t
head -c 200000 /dev/urandom > t/blob.bin
spec s.json hang 1 files:model:t
"$AGPACK" build s.json --key k.key --out set --volume-size 64K --chunk-size 16K --media 128K >b.out 2>&1 || { echo "Bail out! $(tail -2 b.out)"; exit 1; }
[ -d set/medium-02 ] && ok "a set of several media" || not_ok "a set of several media"
"$AGCTL" --root R init --pubkey k.pub >/dev/null
# refused_quickly DESC CMD...: ends (not killed by the 20 s timeout) with a failure.
refused_quickly() { # timeout -k: a process that ignores SIGTERM is killed too
	local d=$1; shift
	timeout -k 3 20 "$@" >"$WORK/.out" 2>&1
	local rc=$?
	if [ $rc != 0 ] && [ $rc != 124 ] && [ $rc != 137 ]; then ok "$d (exit $rc)"; else not_ok "$d (exit $rc)"; sed 's/^/#   /' "$WORK/.out" | tail -5; fi
}

# 1. Another medium's manifest.json -> /dev/zero.
cp -a set zset && rm zset/medium-02/manifest.json && ln -s /dev/zero zset/medium-02/manifest.json
refused_quickly "verify: a set with manifest.json -> /dev/zero is refused quickly" "$AGIMPORT" verify zset --pubkey k.pub
refused_quickly "stage: the same is refused quickly" "$AGIMPORT" stage zset --root R
cp -a set/medium-01 zmed && rm zmed/manifest.json && ln -s /dev/zero zmed/manifest.json
refused_quickly "verify: a medium with manifest.json -> /dev/zero is refused quickly" "$AGIMPORT" verify zmed --pubkey k.pub
refused_quickly "stage: the same is refused quickly" "$AGIMPORT" stage zmed --root R
# 2. FIFOs: a manifest.json, a signature, a volume (swapped in after the checks cannot block either).
cp -a set/medium-01 fmed && rm fmed/manifest.json && mkfifo fmed/manifest.json
refused_quickly "verify: a medium whose manifest.json is a FIFO is refused quickly" "$AGIMPORT" verify fmed --pubkey k.pub
refused_quickly "stage: the same is refused quickly" "$AGIMPORT" stage fmed --root R
cp -a set/medium-01 smed && sig=$(ls smed/signatures | head -1) && rm "smed/signatures/$sig" && mkfifo "smed/signatures/$sig"
refused_quickly "verify: a FIFO signature is refused quickly" "$AGIMPORT" verify smed --pubkey k.pub
cp -a set fset && rm fset/medium-02/manifest.json && mkfifo fset/medium-02/manifest.json
refused_quickly "verify: a set with a FIFO manifest.json on another medium is refused quickly" "$AGIMPORT" verify fset --pubkey k.pub
cp -a set/medium-01 lmed && rm lmed/LABEL.txt && mkfifo lmed/LABEL.txt
refused_quickly "stage: a FIFO LABEL.txt is refused quickly" "$AGIMPORT" stage lmed --root R
timeout -k 3 20 "$AGCTL" --root R status >/dev/null 2>&1 && ok "the lock is free afterwards" || not_ok "the lock is free afterwards"

# 3. SIGTERM during a receive that would never end (a stream of zeros holds no record).
timeout -k 3 30 "$AGIMPORT" stage --stream --root R </dev/zero >term.out 2>&1 & pid=$!
sleep 1
kill -TERM $pid
t0=$(date +%s%N)
wait $pid
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc != 0 ] && [ $rc != 124 ] && ok "SIGTERM ends a long receive (exit $rc)" || { not_ok "SIGTERM ends a long receive (exit $rc)"; sed 's/^/#   /' term.out; }
[ $ms -lt 5000 ] && ok "... promptly (${ms} ms)" || not_ok "... promptly (${ms} ms)"
grep -q "interrupted" term.out && ok "... with a clean error" || { not_ok "... with a clean error"; sed 's/^/#   /' term.out; }
test ! -e R/staging/stream && ok "... and removes what it received" || not_ok "... and removes what it received"
timeout -k 3 20 "$AGCTL" --root R status >/dev/null 2>&1 && ok "the lock is released" || not_ok "the lock is released"

# 4. A kill during an import into a slot holding a staged bundle: the bundle stays.
"$AGPACK" build s.json --key k.key --out flat1 >/dev/null 2>&1
mkdir t2 && head -c 100000 /dev/urandom > t2/blob.bin && spec s2.json hang 2 files:model:t2
"$AGPACK" build s2.json --key k.key --out flat2 >/dev/null 2>&1
mkdir t3 && head -c 100000 /dev/urandom > t3/blob.bin && spec s3.json hang 3 files:model:t3
"$AGPACK" build s3.json --key k.key --out flat3 >/dev/null 2>&1
"$AGCTL" --root R5 init --pubkey k.pub >/dev/null
"$AGIMPORT" flat1 --root R5 >/dev/null 2>&1 && "$AGCTL" --root R5 promote >/dev/null 2>&1 && "$AGIMPORT" flat2 --root R5 >/dev/null 2>&1
state() { "$AGCTL" --root R5 status --json | $PY -c "import json,sys; s=json.load(sys.stdin)['slots']['green']; print(s['state'], s.get('version'))"; }
[ "$(state)" = "staged 2" ] && ok "v2 staged in green" || not_ok "v2 staged in green ($(state))"
for step in import:intent extract:before-rename; do
	(AGKIT_CRASH_AT=$step "$AGIMPORT" flat3 --root R5 --force >/dev/null 2>&1)
	rc=$?
	[ $rc = 137 ] && ok "$step: killed" || not_ok "$step: killed (exit $rc)"
	[ "$(state)" = "staged 2" ] && ok "$step: recovery keeps green's intact v2 (not marked empty)" || not_ok "$step: recovery keeps green's intact v2 ($(state))"
	check "$step: its tree is v2's" cmp t2/blob.bin R5/slots/green/model/blob.bin
done
(AGKIT_CRASH_AT=extract:after-rename "$AGIMPORT" flat3 --root R5 --force >/dev/null 2>&1)
st=$(state)
[ "$st" != "staged 2" ] && ok "after the exchange the slot no longer claims v2 ($st)" || not_ok "after the exchange the slot no longer claims v2"
check "a re-run completes" "$AGIMPORT" flat3 --root R5 --force
[ "$(state)" = "staged 3" ] && ok "v3 staged" || not_ok "v3 staged ($(state))"
done_testing
