#!/bin/sh
# Runtime benchmark (not a test, not run in CI).
# Generates a ~100M-parameter BF16 Llama model (tied embeddings), measures
# prefill and decode tokens/s with agrun, measures this machine's memory read
# bandwidth, and prints decode speed beside the bandwidth roofline
# (weight bytes read per decoded token / read bandwidth).
#
# usage: bench/runtime/bench.sh [BUILD_DIR] [PROMPT_TOKENS] [NEW_TOKENS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build-rt}
plen=${2:-128}
nnew=${3:-64}
agrun=$build/tools/agrun/agrun
py=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/agrt-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

[ -x "$agrun" ] || { echo "bench: build first (ninja -C $build)" >&2; exit 2; }

# hidden 768, intermediate 2048, 12 layers, 12 heads, 4 KV heads, vocab 32000
"$py" "$root/tests/runtime/gen_tiny.py" llama_tied bf16 "$work/model" --dims 768,2048,12,12,4,32000
cc -O2 -march=native -pthread -o "$work/membw" "$here/membw.c"

ids=$("$py" -c "import random; random.seed(1); print(','.join(str(random.randrange(300, 32000)) for _ in range($plen)))")
# first run warms the page cache for the mapped weights
"$agrun" "$work/model" --raw --ids "$ids" -n 4 --no-eos --json --device cpu >/dev/null
"$agrun" "$work/model" --raw --ids "$ids" -n "$nnew" --no-eos --json --device cpu > "$work/run.json"
bw=$("$work/membw" 1024 2>/dev/null)

"$py" - "$work/run.json" "$work/model" "$bw" "$plen" "$nnew" <<'PY'
import json, os, struct, sys
run = json.load(open(sys.argv[1]))
md, bw, plen, nnew = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
raw = open(os.path.join(md, "model.safetensors"), "rb")
n = struct.unpack("<Q", raw.read(8))[0]
hdr = json.loads(raw.read(n))
size = {"BF16": 2, "F16": 2, "F32": 4}
nbytes, params, emb = 0, 0, 0
for k, v in hdr.items():
    if k == "__metadata__":
        continue
    cnt = 1
    for s in v["shape"]:
        cnt *= s
    params += cnt
    nbytes += cnt * size[v["dtype"]]
# per decoded token every matrix is read once; the tied embedding is read
# in full as lm_head (the single embedding row is negligible)
per_tok = nbytes
roof = bw * 1e9 / per_tok
dec = run["decode_tok_s"]
pre = plen / (run["prefill_ms"] / 1e3)
print(f"model: {params/1e6:.1f}M params, BF16, {nbytes/1e6:.1f} MB of weights; "
      f"prompt {plen} tokens, {nnew} new tokens; threads = all cores ({os.cpu_count()})")
print(f"{'metric':<34}{'value':>12}")
print(f"{'prefill tokens/s':<34}{pre:>12.1f}")
print(f"{'decode tokens/s':<34}{dec:>12.2f}")
print(f"{'measured read bandwidth GB/s':<34}{bw:>12.2f}")
print(f"{'weight bytes per decoded token MB':<34}{per_tok/1e6:>12.1f}")
print(f"{'roofline decode tokens/s':<34}{roof:>12.2f}")
print(f"{'decode / roofline':<34}{dec/roof:>12.2f}")
PY
