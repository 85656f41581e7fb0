#!/bin/sh
# Mixture-of-experts decode cost (issue 18; not a test, not run in CI).
# Two BF16 models with the same active parameters per token: a Mixtral
# (8 experts of intermediate I, 2 per token, in every layer) and a dense
# Llama with intermediate 2*I; same hidden size, layers, heads and vocab.
# Decode at batch 1 on the CPU reads only the two chosen experts' matrices,
# so its time per token should be close to the dense model's (target: within
# 1.3x) although the MoE model holds about 4x the feed-forward weights.
# Prints both rates side by side, their ratio, and the load of the machine.
#
# usage: bench/runtime/moe.sh [BUILD_DIR] [THREADS] [PROMPT_TOKENS] [NEW_TOKENS] [HIDDEN,I,LAYERS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
threads=${2:-2}
plen=${3:-32}
nnew=${4:-64}
dims=${5:-768,1024,12}
agrun=$build/tools/agrun/agrun
py=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/agrt-moe.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

[ -x "$agrun" ] || { echo "moe: build first (ninja -C $build)" >&2; exit 2; }
h=${dims%%,*}
rest=${dims#*,}
i=${rest%%,*}
l=${rest#*,}
"$py" "$root/tests/runtime/gen_tiny.py" mixtral bf16 "$work/moe" --dims "$h,$i,$l,12,4,32000" --moe "8,2,$i"
"$py" "$root/tests/runtime/gen_tiny.py" llama bf16 "$work/dense" --dims "$h,$((2 * i)),$l,12,4,32000"
ids=$("$py" -c "import random; random.seed(1); print(','.join(str(random.randrange(300, 32000)) for _ in range($plen)))")

echo "load before: $(uptime)"
for m in dense moe; do
	# --warmup: page the weights in and settle the pool before the timed run
	"$agrun" "$work/$m" --raw --ids "$ids" -n "$nnew" --no-eos --json --device cpu --threads "$threads" \
		--warmup > "$work/$m.json"
done
echo "load after:  $(uptime)"

"$py" - "$work" "$plen" "$nnew" "$threads" <<'PY'
import json, os, struct, sys
work, plen, nnew, thr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def weights(md):
    raw = open(os.path.join(md, "model.safetensors"), "rb")
    n = struct.unpack("<Q", raw.read(8))[0]
    hdr = json.loads(raw.read(n))
    tot = act = 0
    cfg = json.load(open(os.path.join(md, "config.json")))
    e, k = cfg.get("num_local_experts", 1), cfg.get("num_experts_per_tok", 1)
    for name, v in hdr.items():
        if name == "__metadata__":
            continue
        c = 1
        for s in v["shape"]:
            c *= s
        tot += c
        act += c * k / e if ".experts." in name else c
    return tot, act


rows = []
for m in ("dense", "moe"):
    r = json.load(open(os.path.join(work, m + ".json")))
    tot, act = weights(os.path.join(work, m))
    rows.append((m, tot, act, r["decode_tok_s"], 1e3 / r["decode_tok_s"], plen / (r["prefill_ms"] / 1e3)))
print(f"prompt {plen} tokens, {nnew} new tokens, {thr} threads, BF16, CPU")
print(f"{'model':<8}{'total M':>10}{'active M':>10}{'decode tok/s':>14}{'ms/token':>10}{'prefill tok/s':>15}")
for m, tot, act, tps, ms, pre in rows:
    print(f"{m:<8}{tot / 1e6:>10.1f}{act / 1e6:>10.1f}{tps:>14.2f}{ms:>10.2f}{pre:>15.1f}")
ratio = rows[1][4] / rows[0][4]
print(f"MoE / dense time per token: {ratio:.2f}x (target <= 1.3x): {'ok' if ratio <= 1.3 else 'over'}")
PY
