#!/bin/bash
# Pack time with and without --parity 2 over 12 volumes, alternating runs.
# usage: bench/media/parity-overhead.sh AGPACK [RUNS]   (needs ~3 GiB in $TMPDIR)
# Prints one line per run (wall and CPU seconds, agpack's own parity timing).
set -eu
AGPACK=$(realpath "$1"); RUNS=${2:-5}
W=$(mktemp -d "${TMPDIR:-/tmp}/agkit-parity-bench.XXXXXX"); trap 'rm -rf "$W"' EXIT
cd "$W"
"$AGPACK" keygen --out k --no-passphrase >/dev/null
mkdir random half
head -c 700M /dev/urandom > random/r.bin   # incompressible: the worst case for the overhead ratio
python3 -c "import os; n=350<<20; b=bytearray(2*n); b[0::2]=os.urandom(n); open('half/h.bin','wb').write(b)"
for d in random half; do
	printf '{"name":"bench","channel":"stable","version":1,"artifacts":[{"type":"files","name":"w","path":"%s"}]}' $d > $d.json
done
for cfg in "random 64M" "half 38M"; do
	set -- $cfg
	for i in $(seq 1 "$RUNS"); do
		for p in 0 2; do
			rm -rf o
			extra=""; [ $p = 2 ] && extra="--parity 2"
			/usr/bin/time -f "%e %U %S" -o t "$AGPACK" build $1.json --key k.key --out o --volume-size $2 $extra >/dev/null 2>err
			read -r wall user sys < t
			echo "$1 parity=$p run=$i volumes=$(ls o | grep -c '^vol-') wall=$wall cpu=$(echo "$user + $sys" | bc) $(grep -o 'written in [0-9.]* s' err || true)"
		done
	done
done
