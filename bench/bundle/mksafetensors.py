#!/usr/bin/python3
"""Writes a safetensors file of normally distributed weights.

usage: mksafetensors.py OUT SIZE_MIB [--dtype BF16|F16|F32] [--seed N]

Tensors look like a transformer's: square and rectangular projection
matrices (std 0.02 scaled per layer), plus small norm vectors near 1.0, so
exponent statistics match real checkpoints rather than one flat
distribution.  Written in pieces: memory stays at one tensor.
"""
import json
import struct
import sys

import numpy as np


def to_dtype(a, dtype):
    if dtype == "F32":
        return a.astype(np.float32).tobytes()
    if dtype == "F16":
        return a.astype(np.float16).tobytes()
    # BF16: round-to-nearest-even of the float32's upper 16 bits.
    u = a.astype(np.float32).view(np.uint32)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16).tobytes()


def main():
    args = sys.argv[1:]
    dtype, seed = "BF16", 1
    if "--dtype" in args:
        i = args.index("--dtype"); dtype = args[i + 1]; del args[i:i + 2]
    if "--seed" in args:
        i = args.index("--seed"); seed = int(args[i + 1]); del args[i:i + 2]
    out, mib = args[0], float(args[1])
    esize = {"BF16": 2, "F16": 2, "F32": 4}[dtype]
    total = int(mib * (1 << 20))
    rng = np.random.default_rng(seed)
    # Plan tensors: per layer q,k,v,o (d x d), up (d x 4d) and a norm (d).
    d = 1024 if total >= (256 << 20) else 256
    plan, used, layer = [], 0, 0
    while True:
        mats = [("q", (d, d)), ("k", (d, d)), ("v", (d, d)), ("o", (d, d)), ("up", (4 * d, d)), ("norm", (d,))]
        added = False
        for nm, shape in mats:
            n = int(np.prod(shape)) * esize
            if used + n > total:
                continue
            plan.append((f"layers.{layer}.{nm}.weight", shape, n))
            used += n
            added = True
        if not added:
            break
        layer += 1
    if used < total and (total - used) // esize > 0:
        rest = (total - used) // esize
        plan.append(("tail.weight", (rest,), rest * esize))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, n in plan:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, n in plan:
            count = n // esize
            if name.endswith("norm.weight"):
                a = 1.0 + 0.05 * rng.standard_normal(count, dtype=np.float32)
            else:
                layer = int(name.split(".")[1]) if name.startswith("layers.") else 0
                a = (0.02 * (1 + (layer % 4) * 0.25)) * rng.standard_normal(count, dtype=np.float32)
            f.write(to_dtype(a, dtype))


if __name__ == "__main__":
    main()
