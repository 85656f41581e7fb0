#!/bin/sh
# CI step for the CUDA execution path (issue 10); needs no GPU.
#  1. configure -Dcuda=enabled in its own build dir and build everything
#     (nvcc: sm_80 + sm_90 cubins and compute_90 PTX; C files -Wall -Wextra);
#     the C compile must be warning-free;
#  2. run the runtime suite there: on a GPU-less machine device-fallback
#     checks that --device cuda fails cleanly (exit 8) and that --device auto
#     falls back to the CPU with identical output;
#     and kernels/test_kernels (without a GPU: the quantized kernels' element
#     math on the host against rt_q_weight);
#  3. configure -Dcuda=disabled and check that agrun links no CUDA library.
# usage: scripts/ci-cuda-build.sh [BUILD_DIR_PREFIX]   (default build-ci-cuda)
set -eu
cd "$(dirname "$0")/.."
pre=${1:-build-ci-cuda}
export PATH="$PATH:/usr/local/cuda/bin"

if ! command -v nvcc >/dev/null 2>&1; then
        echo "ci-cuda-build: nvcc not found (install the CUDA toolkit or put it on PATH)" >&2
        exit 1
fi
nvcc --version | tail -1

rm -rf "$pre-on" "$pre-off"
meson setup "$pre-on" -Dcuda=enabled >/dev/null
ninja -C "$pre-on" 2>&1 | tee "$pre-on/ninja.log" | tail -1
if grep -E 'warning:' "$pre-on/ninja.log" | grep -E 'kernels/|runtime/|agrun' ; then
        echo "ci-cuda-build: compiler warnings in the runtime / CUDA files" >&2
        exit 1
fi
# the fat binary must carry sm_80 and sm_90 code and compute_90 PTX
f="$pre-on/kernels/cuda_kernels.o"
if command -v cuobjdump >/dev/null 2>&1; then
        l=$(cuobjdump --list-elf --list-ptx "$f")
        for want in sm_80 sm_90 compute_90; do
                echo "$l" | grep -q "$want" || { echo "ci-cuda-build: $f lacks $want" >&2; exit 1; }
        done
else
        # no cuobjdump (minimal toolkits): the cubins' ptxas options, and the PTX flag on the command line
        for want in "-arch sm_80" "-arch sm_90"; do
                strings "$f" | grep -q -- "$want" || { echo "ci-cuda-build: $f lacks $want" >&2; exit 1; }
        done
        grep -q 'arch=compute_90,code=compute_90' "$pre-on/build.ninja" ||
                { echo "ci-cuda-build: no compute_90 PTX in the nvcc command" >&2; exit 1; }
fi
meson test -C "$pre-on" --suite runtime --print-errorlogs
# the quantized kernels' element math runs on the host too (without a GPU
# the device kernels are not run: test_kernels says so)
meson test -C "$pre-on" cuda-kernels --print-errorlogs

meson setup "$pre-off" -Dcuda=disabled >/dev/null
ninja -C "$pre-off" tools/agrun/agrun | tail -1
if ldd "$pre-off/tools/agrun/agrun" | grep -Ei 'cuda|cublas'; then
        echo "ci-cuda-build: -Dcuda=disabled agrun links CUDA" >&2
        exit 1
fi
test ! -e "$pre-off/kernels/cuda_kernels.o"
echo "ci-cuda-build: ok"
