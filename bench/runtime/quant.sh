#!/bin/sh
# Quantized decode benchmark (issue 19; not a test, not run in CI): the bench
# model of bench.sh (hidden 768, intermediate 2048, 12 layers, vocab 32000,
# about 110M parameters) as agrun bf16, compressed-tensors int4 (group 128,
# symmetric), FP8 block-scaled ([128,128]), GPTQ and AWQ (group 128,
# asymmetric; each repacked at load into rows, with the CPU's kernels and with
# AGRT_SIMD=avx2, and kept in its columns, AGRT_INT4_COLUMNS, side by side;
# GPTQ with desc_act's permuted g_idx too, sorted into rows at load and kept in
# columns), with lm_head quantized too (an
# untied copy of the embedding, as llama.cpp's Q4_0/Q8_0 quantize its output
# matrix), side by side with llama.cpp's llama-bench on the same weights
# converted to GGUF bf16, Q4_0 and Q8_0 (bench/serve/hf_to_gguf.py, gguf-py's
# quantizer).  Decode tokens/s and the ratios the issue asks for; the load
# averages before and after, since other work on the machine moves them.
#
# usage: bench/runtime/quant.sh [BUILD_DIR] [LLAMA_BUILD] [LLAMA_DIR]
#   LLAMA_BUILD: a llama.cpp build (-DGGML_NATIVE=ON) with bin/llama-bench; absent: agrun only
#   NEW_TOKENS (env, default 128), THREADS (env, default all cores), REPS (env, default 3: the
#   interleaved rounds; best and median are printed, the ratios on both)
#   BENCH_LOCK (env): a lock file (e.g. /tmp/agk-bench.lock) held with flock around the timed runs only
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build}
llama_build=${2:-/work/llama-build}
llama_dir=${3:-/work/llama.cpp}
nnew=${NEW_TOKENS:-128}
reps=${REPS:-3}
thr=${THREADS:-$(nproc)}
agrun=$build/tools/agrun/agrun
py=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/agrt-qbench.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

[ -x "$agrun" ] || { echo "bench: build first (ninja -C $build)" >&2; exit 2; }
dims=768,2048,12,12,4,32000
"$py" "$root/tests/runtime/gen_tiny.py" llama_tied bf16 "$work/bf16" --dims $dims
"$py" - "$root/tests/runtime" "$work" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import gen_quant
d = [768, 2048, 12, 12, 4, 32000]
gen_quant.generate("ct-int4", sys.argv[2] + "/int4", "llama_tied", d, write_ref=False, group=128, sym=True,
                   lm_head=True)
gen_quant.generate("fp8", sys.argv[2] + "/fp8", "llama_tied", d, write_ref=False, lm_head=True)
for f in ("gptq", "awq"):
    gen_quant.generate(f, sys.argv[2] + "/" + f, "llama_tied", d, write_ref=False, group=128, lm_head=True)
# act-order: a permuted g_idx (sorted into rows at load)
gen_quant.generate("gptq", sys.argv[2] + "/gptqact", "llama_tied", d, write_ref=False, group=128, lm_head=True,
                   desc_act=True)
PY
# model[:AGRT_SIMD]: the result files are named model[-simd]
# (:cols: AGRT_INT4_COLUMNS, the stored column layout and its kernels instead of the rows it is repacked
# into at load)
runs="bf16 int4 fp8 gptq gptq:avx2 gptq:cols awq awq:avx2 awq:cols gptqact gptqact:cols"
ids=$("$py" -c "import random; random.seed(1); print(','.join(str(random.randrange(300, 32000)) for _ in range(16)))")
for m in bf16 int4 fp8 gptq awq gptqact; do
	"$agrun" "$work/$m" --raw --ids "$ids" -n 4 --no-eos --json --device cpu --threads "$thr" >/dev/null 2>&1
done
llama_note=""
have_llama=0
if [ -x "$llama_build/bin/llama-bench" ] && [ -d "$llama_dir/gguf-py" ]; then
	have_llama=1
	for t in bf16 q4_0 q8_0; do
		q=$t
		[ "$t" = bf16 ] && q=""
		"$py" "$root/bench/serve/hf_to_gguf.py" "$llama_dir" "$work/bf16" "$work/$t.gguf" $q >/dev/null
	done
else
	llama_note="llama.cpp not run (no $llama_build/bin/llama-bench or $llama_dir/gguf-py)"
fi
# agrun and llama.cpp interleaved, REPS rounds: the machine's other load comes and goes
if [ -n "${BENCH_LOCK:-}" ]; then
	exec 9>>"$BENCH_LOCK"
	flock 9
fi
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq 1 "$reps"); do
	for r in $runs; do
		m=${r%%:*}
		simd=${r#"$m"}
		simd=${simd#:}
		ev=${simd:+AGRT_SIMD=$simd}
		[ "$simd" = cols ] && ev=AGRT_INT4_COLUMNS=1
		env $ev "$agrun" "$work/$m" --raw --ids "$ids" -n "$nnew" --no-eos --json \
			--device cpu --threads "$thr" 2>/dev/null > "$work/$m${simd:+-$simd}.$rep.json"
		if [ "$have_llama" = 1 ] && [ -z "$simd" ] && [ "${m#gptq}" = "$m" ] && [ "$m" != awq ]; then
			t=$m
			[ "$m" = int4 ] && t=q4_0
			[ "$m" = fp8 ] && t=q8_0
			LD_LIBRARY_PATH="$llama_build/bin" "$llama_build/bin/llama-bench" -m "$work/$t.gguf" -p 0 \
				-n "$nnew" -t "$thr" -r 1 -o json 2>/dev/null > "$work/ll-$t.$rep.json" || true
		fi
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
[ -z "${BENCH_LOCK:-}" ] || flock -u 9
"$py" - "$work" "$nnew" "$thr" "$load0" "$load1" "$llama_note" "$reps" <<'PY'
import glob, json, os, statistics, sys
work, nnew, thr, load0, load1, note, reps = sys.argv[1:8]
med = {}
def best(pat, key):
    v = []
    for f in glob.glob(os.path.join(work, pat)):
        try:
            j = json.load(open(f))
        except ValueError:
            continue
        if isinstance(j, list):  # llama-bench
            v += [r["avg_ts"] for r in j if r.get("n_gen")]
        else:
            v.append(j[key])
    if v:
        med[pat] = statistics.median(v)
    return max(v) if v else None
def mb(d):
    return sum(os.path.getsize(os.path.join(work, d, f)) for f in os.listdir(os.path.join(work, d))
               if f.endswith(".safetensors")) / 1e6
a = {m: best(f"{m}.*.json", "decode_tok_s")
     for m in ("bf16", "int4", "fp8", "gptq", "awq", "gptq-avx2", "awq-avx2", "gptq-cols", "awq-cols", "gptqact",
               "gptqact-cols")}
kern = {}
for m in ("int4", "gptq", "gptq-avx2"):
    try:
        kern[m] = json.load(open(os.path.join(work, m + ".1.json")))["backend"]
    except (OSError, ValueError, KeyError):
        kern[m] = "?"

am = {m: med.get(f"{m}.*.json") for m in a}
l = {t: best(f"ll-{t}.*.json", None) for t in ("bf16", "q4_0", "q8_0")}
lm = {t: med.get(f"ll-{t}.*.json") for t in l}
print(f"decode {nnew} tokens, {thr} threads, {reps} interleaved rounds; load average {load0} before, {load1} after")
print(f"{'':<28}{'best':>9}{'median':>9}{'weights MB':>12}   (tok/s)")
for m, lbl in (("bf16", "agrun bf16"), ("int4", "agrun int4 (ct W4A16 g128)"), ("fp8", "agrun fp8 (block 128)"),
               ("gptq", f"agrun gptq g128 {kern['gptq']}"), ("gptq-avx2", f"agrun gptq g128 {kern['gptq-avx2']}"),
               ("gptq-cols", "agrun gptq g128 columns"),
               ("awq", f"agrun awq g128 {kern['gptq']}"), ("awq-avx2", f"agrun awq g128 {kern['gptq-avx2']}"),
               ("awq-cols", "agrun awq g128 columns"), ("gptqact", f"agrun gptq act {kern['gptq']}"),
               ("gptqact-cols", "agrun gptq act columns")):
    print(f"{lbl:<28}{a[m]:>9.1f}{am[m]:>9.1f}{mb(m.split('-')[0]):>12.1f}")
for t in ("bf16", "q4_0", "q8_0"):
    if l[t]:
        print(f"{'llama.cpp ' + t:<28}{l[t]:>9.1f}{lm[t]:>9.1f}"
              f"{os.path.getsize(os.path.join(work, t + '.gguf')) / 1e6:>12.1f}")
def ratio(lbl, x, xm, y, ym, note=""):
    print(f"{lbl:<28}{x / y:>9.2f}{xm / ym:>9.2f}{'':>12}   {note}".rstrip())
ratio("int4 / agrun bf16", a["int4"], am["int4"], a["bf16"], am["bf16"], "(target >= 2)")
ratio("fp8 / agrun bf16", a["fp8"], am["fp8"], a["bf16"], am["bf16"], "(target >= 1.5)")
ratio("gptq / agrun bf16", a["gptq"], am["gptq"], a["bf16"], am["bf16"])
ratio("awq / agrun bf16", a["awq"], am["awq"], a["bf16"], am["bf16"])
ratio(f"gptq {kern['gptq']} / avx2", a["gptq"], am["gptq"], a["gptq-avx2"], am["gptq-avx2"])
ratio(f"awq {kern['gptq']} / avx2", a["awq"], am["awq"], a["awq-avx2"], am["awq-avx2"])
ratio("gptq rows / columns", a["gptq"], am["gptq"], a["gptq-cols"], am["gptq-cols"])
ratio("awq rows / columns", a["awq"], am["awq"], a["awq-cols"], am["awq-cols"])
ratio("gptq desc_act rows / cols", a["gptqact"], am["gptqact"], a["gptqact-cols"], am["gptqact-cols"])
if l["q4_0"]:
    ratio("int4 / llama.cpp Q4_0", a["int4"], am["int4"], l["q4_0"], lm["q4_0"], "(target >= 1)")
if l["q8_0"]:
    ratio("fp8 / llama.cpp Q8_0", a["fp8"], am["fp8"], l["q8_0"], lm["q8_0"])
if l["bf16"]:
    ratio("agrun bf16 / llama.cpp bf16", a["bf16"], am["bf16"], l["bf16"], lm["bf16"], "(target >= 1.1)")
if note:
    print(note)
PY
