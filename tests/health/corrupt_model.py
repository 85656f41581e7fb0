#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Makes a damaged copy of a model directory for the health-check tests.

corrupt_model.py SRC DST MODE
  noise      multiply every attention and MLP weight by (1 + 0.3 * N(0,1)) (bf16, f16 or f32)
  tokenizer  swap two vocabulary entries of tokenizer.json (a "swapped tokenizer")
"""
import json, os, shutil, struct, sys
import numpy as np

src, dst, mode = sys.argv[1:4]
shutil.copytree(src, dst)
if mode == "tokenizer":
    p = os.path.join(dst, "tokenizer.json")
    t = json.load(open(p))
    v = t["model"]["vocab"]
    ks = sorted(v, key=v.get)
    # Swap frequent byte-level tokens (letters), so ordinary text encodes differently.
    a, b = next(k for k in ks if k == "e"), next(k for k in ks if k == "a")
    v[a], v[b] = v[b], v[a]
    json.dump(t, open(p, "w"))
    sys.exit(0)
p = os.path.join(dst, "model.safetensors")
buf = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", buf[:8])[0]
hdr = json.loads(buf[8:8 + n])
rng = np.random.default_rng(7)
for name, t in hdr.items():
    if name == "__metadata__" or not ("mlp" in name or "attn" in name):
        continue
    s, e = t["data_offsets"][0] + 8 + n, t["data_offsets"][1] + 8 + n
    raw = bytes(buf[s:e])
    if t["dtype"] == "BF16":
        f = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        f = f * (1 + 0.3 * rng.standard_normal(f.size).astype(np.float32))
        out = (f.view(np.uint32) >> 16).astype("<u2").tobytes()
    elif t["dtype"] == "F16":
        f = np.frombuffer(raw, "<f2").astype(np.float32) * (1 + 0.3 * rng.standard_normal(len(raw) // 2))
        out = f.astype("<f2").tobytes()
    else:
        f = np.frombuffer(raw, "<f4") * (1 + 0.3 * rng.standard_normal(len(raw) // 4))
        out = f.astype("<f4").tobytes()
    buf[s:e] = out
open(p, "wb").write(buf)
