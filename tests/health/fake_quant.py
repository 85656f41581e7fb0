#!/usr/bin/python3
"""Fake-quantized copies of a model for measuring the quantized tolerance
profile (docs/HEALTH.md, "Quantized variants"): every layer matrix (attention
and MLP projections) is rounded the way a dequantizing kernel reconstructs
it, and stored as F32 so that the runtime multiplies exactly those values.

usage: fake_quant.py SRC_DIR OUT_DIR fp8|int4
  fp8:  FP8 e4m3 (finite, max 448, round to nearest even, subnormals) of
        w / s with one power-of-two scale s per tensor, times s
  int4: symmetric int4 in groups of 128 along the input dimension (the last
        group partial): scale = max|w| / 7, q = clip(round(w / scale), -8, 7)
Written from the formats' definitions (OCP FP8, compressed-tensors W4A16),
not from agkit's C code.  Needs numpy.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

MATS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        raw = data[a:b]
        if t["dtype"] == "BF16":
            v = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif t["dtype"] == "F16":
            v = np.frombuffer(raw, "<f2").astype(np.float32)
        else:
            v = np.frombuffer(raw, "<f4").astype(np.float32)
        out[name] = (t["dtype"], t["shape"], raw, v.reshape(t["shape"]))
    return out


def e4m3(x):
    """Round float32 values to the nearest FP8 e4m3fn value (ties to even)."""
    a = np.abs(x).astype(np.float64)
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, -6.0)  # below 2^-6: subnormal spacing 2^-9
    step = np.exp2(e - 3)
    q = np.round(a / step) * step  # numpy rounds half to even
    q = np.minimum(q, 448.0)
    return (np.sign(x) * q).astype(np.float32)


def fp8(w):
    m = float(np.max(np.abs(w)))
    s = 2.0 ** np.ceil(np.log2(m / 448.0)) if m > 0 else 1.0
    return e4m3(w / s) * np.float32(s)


def int4(w, g=128):
    out = np.empty_like(w)
    for c0 in range(0, w.shape[1], g):
        blk = w[:, c0:c0 + g]
        sc = np.max(np.abs(blk), axis=1, keepdims=True) / 7.0
        sc = np.where(sc > 0, sc, 1.0).astype(np.float32)
        out[:, c0:c0 + g] = np.clip(np.round(blk / sc), -8, 7) * sc
    return out


def main(argv):
    if len(argv) != 4 or argv[3] not in ("fp8", "int4"):
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, kind = argv[1:]
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        if not f.endswith(".safetensors"):
            shutil.copy(os.path.join(src, f), dst)
    # round trip of the rounding itself: e4m3 values are fixed points, int4 codes stay in range
    grid = np.array([0.0, 2.0 ** -9, 0.875 * 2 ** -6, 1.0, 1.125, 240.0, 448.0], np.float32)
    assert np.array_equal(e4m3(grid), grid) and e4m3(np.float32([1.0625]))[0] == 1.0
    assert e4m3(np.float32([1000.0]))[0] == 448.0
    for f in sorted(os.listdir(src)):
        if not f.endswith(".safetensors"):
            continue
        ts = load(os.path.join(src, f))
        hdr, blobs, off = {}, [], 0
        for name in sorted(ts):
            dt, shape, raw, v = ts[name]
            if len(shape) == 2 and any("." + m + "." in name for m in MATS):
                q = fp8(v) if kind == "fp8" else int4(v)
                raw, dt = np.ascontiguousarray(q, "<f4").tobytes(), "F32"
            hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
        h = json.dumps(hdr).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(dst, f), "wb") as out:
            out.write(struct.pack("<Q", len(h)) + h)
            for b in blobs:
                out.write(b)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
