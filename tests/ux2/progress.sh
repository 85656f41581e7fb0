#!/usr/bin/env bash
# Progress off a terminal: a line every $AGKIT_PROGRESS_INTERVAL seconds,
# ending at 100%; none with -q, with the interval 0, or for short work at
# the default 10 s; the terminal bar reaches 100% before "staged".
source "$(dirname "$0")/../lib.sh"
source "$TESTS_DIR/deploy/lib-deploy.sh"
cd "$WORK" || exit 1
keygen k
mkdir -p src
head -c 24000000 /dev/urandom > src/big.bin
printf '{"name":"p","channel":"stable","version":1,"artifacts":[{"type":"files","name":"model","path":"src"}]}' > s.json
line='^agkit_tool: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z LABEL: [0-9]+\.[0-9]% \([0-9.]+ of [0-9.]+ MiB, [0-9.]+ MiB/s\)$'
pat() { printf '%s' "$line" | sed "s/agkit_tool/$1/; s/LABEL/$2/"; }
# lines_ok FILE TOOL LABEL: at least two lines, percentages rising, the last 100.0%.
lines_ok() {
	grep -E "$(pat "$2" "$3")" "$1" | sed -E 's/.*: ([0-9.]+)% .*/\1/' > "$WORK/pct"
	$PY -c '
import sys
p = [float(x) for x in open(sys.argv[1])]
assert len(p) >= 2, p
assert p == sorted(p) and p[-1] == 100.0, p' "$WORK/pct"
}
AGKIT_PROGRESS_INTERVAL=0.000001 "$AGPACK" build s.json --key k.key --out b --chunk-size 1M --threads 1 >/dev/null 2> pack.err
if lines_ok pack.err agpack pack; then ok "agpack build: periodic progress lines ending at 100%"; else not_ok "pack progress"; head -5 pack.err | sed 's/^/#   /'; fi
AGKIT_PROGRESS_INTERVAL=0.000001 "$AGIMPORT" verify b --pubkey k.pub > /dev/null 2> verify.err
if lines_ok verify.err agimport verify; then ok "agimport verify: periodic progress lines ending at 100%"; else not_ok "verify progress"; head -5 verify.err | sed 's/^/#   /'; fi
AGKIT_PROGRESS_INTERVAL=0.000001 "$AGIMPORT" verify b --pubkey k.pub -q > /dev/null 2> q.err
if ! grep -q "%" q.err; then ok "-q: no progress"; else not_ok "-q printed progress"; head -3 q.err | sed 's/^/#   /'; fi
AGKIT_PROGRESS_INTERVAL=0 "$AGIMPORT" verify b --pubkey k.pub > /dev/null 2> zero.err
if ! grep -q "%" zero.err; then ok "AGKIT_PROGRESS_INTERVAL=0: no progress"; else not_ok "interval 0 printed progress"; fi
"$AGIMPORT" verify b --pubkey k.pub > /dev/null 2> def.err
if ! grep -q "%" def.err; then ok "default interval (10 s): nothing for a short verify"; else not_ok "short verify printed progress"; fi

"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
AGKIT_PROGRESS_INTERVAL=0.000001 "$AGIMPORT" b --root "$R" > stage.out 2> stage.err
if lines_ok stage.err agimport import; then ok "agimport stage: periodic progress lines ending at 100%"; else not_ok "import progress"; head -5 stage.err | sed 's/^/#   /'; fi
if grep -q "staged bundle p" stage.out; then ok "... and then staged"; else not_ok "staged"; fi

# A stream being received: bytes so far (its length is unknown).
"$AGPACK" stream b > b.stream 2>/dev/null
AGKIT_PROGRESS_INTERVAL=0.000001 "$AGIMPORT" receive rx < b.stream > /dev/null 2> rx.err
if grep -Eq '^agimport: [0-9T:Z-]+ receive: [0-9.]+ MiB so far \([0-9.]+ MiB/s\)$' rx.err && grep -q "received" rx.err; then
	ok "agimport receive: periodic 'MiB so far' lines, then the summary"
else not_ok "receive progress"; head -3 rx.err | sed 's/^/#   /'; fi
rm -rf rx
AGKIT_PROGRESS_INTERVAL=0.000001 "$AGIMPORT" receive rx -q < b.stream > /dev/null 2> rxq.err
if ! grep -q "so far" rxq.err && [ -d rx ]; then ok "agimport receive -q: no progress"; else not_ok "receive -q"; fi

# On a terminal (script(1) gives one): the bar, at 100% before "staged".
if command -v script >/dev/null; then
	"$AGCTL" --root "$WORK/R2" init --pubkey k.pub >/dev/null
	script -qec "$AGIMPORT b --root $WORK/R2" /dev/null > tty.out 2>&1
	tr '\r' '\n' < tty.out | grep -a -E "import +[0-9.]+%|staged" > tty.lines
	if tail -1 tty.lines | grep -q "staged bundle p" && tail -2 tty.lines | head -1 | grep -q "import  100.0%"; then
		ok "terminal bar reaches 100.0% before 'staged'"
	else not_ok "terminal bar"; sed 's/^/#   /' tty.lines | tail -5; fi
	script -qec "$AGIMPORT verify b --pubkey k.pub -q" /dev/null > ttyq.out 2>&1
	if ! grep -aq "%" ttyq.out && grep -aq "OK: 1 volume" ttyq.out; then ok "-q on a terminal: no bar"; else not_ok "-q on a terminal"; fi
else
	diag "no script(1): terminal part skipped"
fi
done_testing
