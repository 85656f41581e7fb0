#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a safetensors file (the published format: an 8-byte little-endian
header length, a JSON header of dtype/shape/data_offsets, the data).

mkst.py OUT SEED ROWS0 : BF16 tensors "t0".."t7" of [ROWS, 1024] (ROWS0 rows
for t0, 256 for the others), pseudo-random bytes from SEED for t1..t7 and
from SEED + ROWS0 for t0 (so t0 differs when it is resized).
"""
import json, random, struct, sys

out, seed, rows0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hdr, blobs, off = {}, [], 0
for i in range(8):
    rows = rows0 if i == 0 else 256
    n = rows * 1024 * 2
    r = random.Random(seed + (rows0 if i == 0 else i))
    blobs.append(r.randbytes(n))
    hdr["t%d" % i] = {"dtype": "BF16", "shape": [rows, 1024], "data_offsets": [off, off + n]}
    off += n
h = json.dumps(hdr, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
