#!/bin/bash
# Serving benchmark (not a test, not run in CI).
# On bench/runtime's model (~100M-parameter BF16 Llama, tied embeddings) with
# 2 threads: agserve's aggregate decode tokens/s with 1, 4, 8 and 16
# concurrent streams, per-stream decode rate, time to first token p50/p99,
# and the ratio to single-stream agrun. Two aggregates (client.py): "steady",
# the tokens/s while every stream decodes (from the last first token to the
# first end; the issue's targets are read on it), and "aggregate", over the
# whole span from the first first token to the last end, which also holds
# the other streams' prefills (the requests go out together, but the first to
# arrive is prefilled alone and waits while the rest are). With LLAMA_DIR (a llama.cpp source
# tree) it also builds llama.cpp into LLAMA_BUILD (outside this tree), converts
# the same model to GGUF and runs llama-server --parallel 8 side by side.
#
# usage: bench/serve/bench.sh [BUILD_DIR] [LLAMA_DIR [LLAMA_BUILD]]
#   BUILD_DIR    agkit build (default: build)          THREADS (env, default 2)
#   LLAMA_BUILD  default /tmp/llama-build              NEW_TOKENS (env, default 64)
#   AGSERVE_ARGS (env) more agserve options, e.g. "--prefill-chunk 2048"
#   REPS (env, default 3) runs of agrun and of each concurrency level; each row
#   is the run with the best steady rate (a shared machine only slows runs)
# Every stream of every run has its own prompt (client.py), so no run is helped
# by a prompt another left in a server's cache.
# The bench model's tokenizer gets one entry per id (t300, t301, ...) so every
# generated id decodes, and the output rows of bos/eos are zero so greedy
# decoding never stops early: every stream is NEW_TOKENS long.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(realpath "${1:-$root/build}")
llama_dir=${2:-}
llama_build=${3:-/tmp/llama-build}
threads=${THREADS:-2}
nnew=${NEW_TOKENS:-64}
reps=${REPS:-3}
agrun=$build/tools/agrun/agrun agserve=$build/tools/agserve/agserve
py=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/agserve-bench.XXXXXX")
pids=()
cleanup() { local p; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM
[ -x "$agrun" ] && [ -x "$agserve" ] || { echo "bench: build first (ninja -C $build)" >&2; exit 2; }

# hidden 768, intermediate 2048, 12 layers, 12 heads, 4 KV heads, vocab 32000
"$py" "$root/tests/runtime/gen_tiny.py" llama_tied bf16 "$work/model" --dims 768,2048,12,12,4,32000 >/dev/null
"$py" - "$work/model" <<'PY'
import json, struct, sys
d = sys.argv[1]
t = json.load(open(d + "/tokenizer.json", encoding="utf-8"))
v = t["model"]["vocab"]
used = set(v.values())
for i in range(32000):
    if i not in used:
        v[f"t{i}"] = i
json.dump(t, open(d + "/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)
with open(d + "/model.safetensors", "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    e = json.loads(f.read(n))["model.embed_tokens.weight"]
    row = e["shape"][1] * 2
    for r in (256, 257, 258):
        f.seek(8 + n + e["data_offsets"][0] + r * row)
        f.write(b"\0" * row)
PY
ctx=$((nnew + 512))  # the 24-word prompts are ~150 byte-level tokens
prompt=$("$py" -B -c "import sys; sys.path.insert(0, '$here'); import client; print(client.prompt(0))")
"$agrun" "$work/model" --prompt "$prompt" -n 4 --json --device cpu --threads "$threads" >/dev/null  # page cache
single=0
agrun_once() {
	"$agrun" "$work/model" --prompt "$prompt" -n "$nnew" --json --device cpu --threads "$threads" > "$work/agrun.json"
	single=$("$py" -c "import json,sys; print(max(float(sys.argv[2]), json.load(open(sys.argv[1]))['decode_tok_s']))" \
		"$work/agrun.json" "$single")
}

# start NAME CMD...: a server in the background; waits for /health (at most 300 s)
start() {
	local name=$1 port=$2; shift 2
	"$@" > "$work/$name.log" 2>&1 &
	pids+=($!)
	local i
	for i in $(seq 3000); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: $name did not start:" >&2; tail -n 20 "$work/$name.log" >&2; return 1
}
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run_levels() { # run_levels NAME URL MODEL EXTRA LEVELS...
	local name=$1 url=$2 model=$3 extra=$4 c; shift 4
	"$py" "$here/client.py" "$url" "$model" 1 8 "$extra" 999 > "$work/warm.json" || { echo "bench: $name: $(cat "$work/warm.json")" >&2; return 1; }  # warm up
	for c in "$@"; do
		for i in $(seq "$reps"); do
			# agserve's single stream and agrun alternate, so that the
			# overhead compares runs of the same moment of a shared machine
			[ "$name" = agserve ] && [ "$c" = 1 ] && agrun_once
			"$py" "$here/client.py" "$url" "$model" "$c" "$nnew" "$extra" "$((c * 100 + i))" > "$work/run.json" || {
				echo "bench: $name at $c streams: $(cat "$work/run.json")" >&2; return 1; }
			"$py" -c '
import json, os, sys
new, best = json.load(open(sys.argv[1])), sys.argv[2]
if not os.path.exists(best) or json.load(open(best))["steady_tok_s"] < new["steady_tok_s"]:
    json.dump(new, open(best, "w"))' "$work/run.json" "$work/$name-$c.json"
		done
	done
}
port=$(free_port)
start agserve "$port" "$agserve" --model "$work/model" --listen "127.0.0.1:$port" --threads "$threads" \
	--parallel 16 --ctx "$ctx" --device cpu ${AGSERVE_ARGS:-}
run_levels agserve "http://127.0.0.1:$port" model '{}' 1 4 8 16

llama_note="not run (no LLAMA_DIR given)"
if [ -n "$llama_dir" ]; then
	llama_note=""
	if [ ! -x "$llama_build/bin/llama-server" ]; then
		echo "bench: building llama.cpp from $llama_dir into $llama_build (native CPU, no GPU)" >&2
		cmake -S "$llama_dir" -B "$llama_build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
			-DGGML_CUDA=OFF > "$work/llama-build.log" 2>&1 &&
			cmake --build "$llama_build" -j "$(nproc)" --target llama-server >> "$work/llama-build.log" 2>&1 ||
			llama_note="build failed: $(tail -n 3 "$work/llama-build.log" | tr '\n' ' ')"
	fi
	if [ -z "$llama_note" ]; then
		# llama.cpp's convert_hf_to_gguf.py needs torch and transformers, which
		# offline machines rarely have: bench/serve/hf_to_gguf.py (numpy and
		# llama.cpp's gguf-py only) first, llama.cpp's converter as the fallback.
		if "$py" -B "$here/hf_to_gguf.py" "$llama_dir" "$work/model" "$work/model.gguf" > "$work/convert.log" 2>&1 ||
			PYTHONPATH="$llama_dir/gguf-py${PYTHONPATH:+:$PYTHONPATH}" "$py" "$llama_dir/convert_hf_to_gguf.py" "$work/model" \
				--outfile "$work/model.gguf" --outtype bf16 >> "$work/convert.log" 2>&1; then
			lport=$(free_port)
			if start llama-server "$lport" "$llama_build/bin/llama-server" -m "$work/model.gguf" --host 127.0.0.1 \
				--port "$lport" -t "$threads" --parallel 8 -c $((ctx * 8)) --alias model; then
				run_levels llama "http://127.0.0.1:$lport" model '{"ignore_eos": true}' 1 8 ||
					llama_note="llama-server requests failed"
			else
				llama_note="llama-server did not start"
			fi
		else
			llama_note="GGUF conversion failed (python packages missing offline?): $(grep -m1 -E 'Error|error' "$work/convert.log" || tail -n 1 "$work/convert.log")"
		fi
	fi
fi

"$py" - "$work" "$single" "$threads" "$nnew" "$llama_note" <<'PY'
import json, os, sys
w, single, threads, nnew, note = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
def load(name, c):
    p = os.path.join(w, f"{name}-{c}.json")
    return json.load(open(p)) if os.path.exists(p) else None
print(f"model: bench/runtime's ~100M BF16 Llama (tied), {threads} threads, {nnew} new tokens a stream, 24-word prompts")
print(f"agrun single stream decode: {single:.2f} tok/s; every figure the best of {os.environ.get('REPS', '3')} runs")
print(f"{'server':<14}{'streams':>8}{'aggregate tok/s':>17}{'steady tok/s':>14}{'per stream':>12}{'x agrun':>9}{'TTFT p50 ms':>13}{'TTFT p99 ms':>13}{'window s':>10}")
rows = {}
for name, levels in (("agserve", (1, 4, 8, 16)), ("llama", (1, 8))):
    for c in levels:
        r = load(name, c)
        if not r:
            continue
        rows[(name, c)] = r
        print(f"{name if name == 'agserve' else 'llama-server':<14}{c:>8}{r['aggregate_tok_s']:>17.1f}{r['steady_tok_s']:>14.1f}{r['per_stream_tok_s']:>12.1f}"
              f"{r['aggregate_tok_s'] / single:>9.2f}{r['ttft_p50_ms']:>13.1f}{r['ttft_p99_ms']:>13.1f}{r['steady_s']:>10.2f}")
if note:
    print(f"llama-server: {note}")
a1, a8 = rows.get(("agserve", 1)), rows.get(("agserve", 8))
if a1 and a8:
    # the targets on the steady-state rate (every stream decoding: prefills
    # are in TTFT); the whole-span ratio (other streams' prefills inside it) beside it
    print(f"targets: 8-stream steady aggregate / agserve single stream = {a8['steady_tok_s'] / a1['aggregate_tok_s']:.2f} "
          f"(goal >= 4; whole span {a8['aggregate_tok_s'] / a1['aggregate_tok_s']:.2f}); "
          f"per-stream at 8 / single = {a8['steady_tok_s'] / 8 / a1['per_stream_tok_s']:.2f} (goal >= 0.5; "
          f"whole span {a8['per_stream_tok_s'] / a1['per_stream_tok_s']:.2f}); "
          f"serving overhead at 1 stream = {100 * (1 - a1['per_stream_tok_s'] / single):.1f}% of agrun's rate (goal <= 5%)")
    l8 = rows.get(("llama", 8))
    if l8:
        print(f"agserve / llama-server at 8 streams: {a8['steady_tok_s'] / l8['steady_tok_s']:.2f} steady, "
              f"{a8['aggregate_tok_s'] / l8['aggregate_tok_s']:.2f} whole span (goal > 1)")
PY
