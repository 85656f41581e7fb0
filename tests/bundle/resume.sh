#!/bin/bash
# The parallel extract keeps the resumable extraction that bn_deploy_import
# relies on: a run killed at a checkpoint leaves its work dir and progress
# record; the next run resumes after the checkpointed chunk and the result is
# byte-identical (also for byte-grouped tensor chunks).
. "$(dirname "$0")/../lib.sh"
: "${XRESUME:?XRESUME must point at the xresume helper}"
cd "$WORK"
keygen k
mkdir data
head -c 150M /dev/urandom > data/a.bin
$PY "$TESTS_DIR/../bench/bundle/mksafetensors.py" data/model.safetensors 100 --seed 3
spec s.json res 1 files:data:data
check "build" "$AGPACK" build s.json --key k.key --out b --chunk-size 1M
for t in 1 3; do
	rm -rf out work
	AGKIT_CRASH_AT=extract:checkpoint "$XRESUME" b k.pub out work $t >/dev/null 2>&1
	code=$?
	check "threads $t: a run killed at the first checkpoint dies by SIGKILL" test "$code" = 137
	check "threads $t: it leaves the work dir with a progress record" test -f work/.agkit-progress
	check "threads $t: and no target" test ! -e out
	check "threads $t: the next run completes" sh -c "\"$XRESUME\" b k.pub out work $t > res.txt"
	check "threads $t: it resumed after checkpointed chunks" sh -c 'n=$(sed -n "s/^resumed_chunks //p" res.txt); test "${n:-0}" -gt 0'
	check "threads $t: content identical" same_tree data out/data
	check "threads $t: work dir is gone" test ! -e work
done
done_testing
