#!/bin/sh
# Batched decoding benchmark (not a test, not run in CI).
# Generates the same ~100M-parameter BF16 Llama model as bench.sh (tied
# embeddings) and measures aggregate decode tokens/s of 1, 4, 8 and 16
# sequences decoding together through rt_forward_batch (one pass over the
# weights per step for all of them), the per-sequence rate, and the ratio
# to single-sequence decode through rt_session_forward (agrun's path).
#
# usage: bench/runtime/batch.sh [BUILD_DIR] [THREADS] [PROMPT_TOKENS] [STEPS] [K,K,...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
threads=${2:-2}
plen=${3:-32}
steps=${4:-32}
ks=${5:-1,4,8,16}
drv=$build/bench/runtime/bench_batch
py=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/agrt-batch.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

[ -x "$drv" ] || { echo "batch: build first (ninja -C $build)" >&2; exit 2; }

# hidden 768, intermediate 2048, 12 layers, 12 heads, 4 KV heads, vocab 32000
"$py" "$root/tests/runtime/gen_tiny.py" llama_tied bf16 "$work/model" --dims 768,2048,12,12,4,32000
echo "load before: $(uptime)"
"$drv" "$work/model" "$threads" "$plen" "$steps" "$ks"
echo "load after:  $(uptime)"
