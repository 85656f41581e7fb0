#!/bin/bash
# GPU check of the CUDA execution path (issue 10).  Run on a machine with an
# NVIDIA GPU (written for one H200; sm_80 or newer), from anywhere:
#
#   tests/gpu/check.sh [BUILD_DIR]        (default build-gpu-check)
#
#  1. builds agrun, the bandwidth helper and the kernel test with
#     -Dcuda=enabled in its own build dir (only those targets);
#  1b. kernels/test_kernels: each CUDA kernel against its CPU twin (TAP);
#  1c. tests/runtime/test_api on a tiny model: the API on both devices, CUDA
#      logits against the CPU's;
#  2. tests/gpu/compare.py: for every gen_tiny.py architecture variant in
#     bf16 (plus f16, f32, mixed dtypes, a 300-token two-chunk prompt, odd
#     sizes and GQA 4:1) and a generated 1.1e9-parameter bf16 Llama
#     (2048,5632,22,32,4,32000), runs --device cpu and --device cuda and
#     compares logits (max |gpu-cpu| <= 2e-2 x max |cpu logit|) and greedy
#     tokens; prints load GB/s, prefill and decode tok/s, decode as a fraction
#     of the HBM roofline (weight bytes per token / measured device-to-device
#     copy bandwidth) and pinned host-to-device bandwidth.
# The full log goes to $OUT/gpu-check.log when $OUT is set, else to
# BUILD_DIR/gpu-check.log.  Exit status non-zero when the build or any
# comparison fails.  Budget: under 8 minutes on one H200 (the build about a
# minute, generating the 1.1B model about a minute, the CPU side of the big
# model about two); compare.py is stopped after 400 s.
# Needs: meson, ninja, gcc, nvcc (PATH or /usr/local/cuda/bin), Python 3
# with numpy, and the runtime's build dependencies (scripts/deps.sh).
set -u -o pipefail
cd "$(dirname "$0")/../.."
B=${1:-build-gpu-check}
export PATH="$PATH:/usr/local/cuda/bin"
mkdir -p "$B"
if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        LOG="$OUT/gpu-check.log"
else
        LOG="$B/gpu-check.log"
fi
WORK="$B/gpu-check-models"

steps() {
        local t0 rc
        t0=$(date +%s)
        echo "== gpu-check $(date -u +%FT%TZ) on $(hostname) in $(pwd), git $(git rev-parse --short HEAD 2>/dev/null)"
        nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
                --format=csv,noheader 2>&1 || echo "(nvidia-smi failed)"
        nvcc --version | tail -1
        echo "== build ($B, -Dcuda=enabled)"
        if [ -f "$B/build.ninja" ]; then
                meson configure "$B" -Dcuda=enabled || return 1
        else
                meson setup "$B" -Dcuda=enabled || return 1
        fi
        ninja -C "$B" tools/agrun/agrun kernels/libagrt-cuda.so kernels/agrt-cuda-bw kernels/test_kernels tests/runtime/test_api || return 1
        # the CUDA backend is a plugin: use the build tree's, uninstalled
        export AGRT_CUDA_PLUGIN="$(cd "$B" && pwd)/kernels/libagrt-cuda.so"
        echo "== build done after $(( $(date +%s) - t0 )) s"
        echo "== kernels vs their CPU twins (kernels/test_kernels)"
        timeout 60 "$B/kernels/test_kernels"
        krc=$?
        echo "== library API on the GPU (tests/runtime/test_api: CUDA logits vs CPU, chunked prefill)"
        mkdir -p "$WORK"
        /usr/bin/python3 tests/runtime/gen_tiny.py llama bf16 "$WORK/api-llama" &&
                timeout 60 "$B/tests/runtime/test_api" "$WORK/api-llama"
        arc=$?
        echo "== compare (tests/gpu/compare.py)"
        timeout 400 /usr/bin/python3 tests/gpu/compare.py "$B/tools/agrun/agrun" "$B/kernels/agrt-cuda-bw" "$WORK"
        rc=$?
        [ $krc != 0 ] && echo "FAIL: kernels/test_kernels exit $krc" && [ $rc = 0 ] && rc=$krc
        [ $arc != 0 ] && echo "FAIL: tests/runtime/test_api exit $arc" && [ $rc = 0 ] && rc=$arc
        [ $rc = 124 ] && echo "FAIL: compare.py ran past 400 s"
        echo "== done after $(( $(date +%s) - t0 )) s, exit $rc"
        return $rc
}

steps 2>&1 | tee "$LOG"
rc=$?
echo "log: $LOG"
exit $rc
