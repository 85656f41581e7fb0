#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Hostile safetensors headers: mkhostile.py DIR.

Every file is named *.safetensors and carries bf16-like data after its
header, so a parser that wrongly trusted the header would byte-group it.
agpack must pack each of them as plain zstd (the last one is valid but
made of tensors too small to be worth byte-grouped chunks).
"""
import json, os, random, struct, sys

def data(n, seed):
    r = random.Random(seed)
    # Plausible bf16 weights: a few exponents, random mantissas.
    return bytes(b for _ in range(n // 2) for b in (r.randrange(256), r.choice((0x3c, 0x3d, 0xbc, 0xbd))))

def st(header, payload, raw=None):
    hb = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(hb)) + hb + payload

def main():
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    p = data(65536, 1)
    t = lambda b, e, dt="BF16", shape=None: {"dtype": dt, "shape": shape if shape is not None else [(e - b) // 2], "data_offsets": [b, e]}
    files = {
        "short": b"\x05\x00\x00",
        "hlen-zero": struct.pack("<Q", 0) + p,
        "hlen-huge": struct.pack("<Q", 1 << 63) + b"{}" + p,
        "hlen-past-eof": struct.pack("<Q", len(p) + 100) + b"{}" + p,
        "hlen-over-cap": st(None, p, raw=b"{" + b" " * ((16 << 20) + 10) + b"}"),
        "not-json": st(None, p, raw=b"{\"a\": [1, 2,"),
        "not-object": st(None, p, raw=b"[1, 2, 3]"),
        "dup-key": st(None, p, raw=b'{"a": {"dtype": "BF16", "shape": [16], "data_offsets": [0, 32]}, "a": {"dtype": "BF16", "shape": [16], "data_offsets": [0, 32]}}'),
        "offset-past-data": st({"w": t(0, len(p) + 2)}, p),
        "overlap": st({"a": t(0, 4096), "b": t(2048, 8192)}, p),
        "shape-mismatch": st({"w": t(0, 4096, shape=[4096])}, p),
        "negative-offset": st({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [-4, 0]}}, p),
        "begin-after-end": st({"w": {"dtype": "BF16", "shape": [0], "data_offsets": [4096, 2048]}}, p),
        "unknown-dtype": st({"w": t(0, 4096, dt="BF17")}, p),
        "shape-overflow": st({"w": t(0, 4096, shape=[1 << 62, 1 << 62, 16])}, p),
        "offsets-not-ints": st({"w": {"dtype": "BF16", "shape": [2048], "data_offsets": ["0", "4096"]}}, p),
        "offsets-three": st({"w": {"dtype": "BF16", "shape": [2048], "data_offsets": [0, 4096, 8192]}}, p),
        "tensor-not-object": st({"w": [0, 4096]}, p),
        "deep-nesting": st(None, p, raw=b"[" * 5000 + b"]" * 5000),
        # Valid, but every tensor is far below the 64 KiB worth a chunk of its own.
        "many-tiny-tensors": st({f"t{i}": t(32 * i, 32 * i + 32) for i in range(2000)}, p),
    }
    for name, b in files.items():
        with open(os.path.join(d, name + ".safetensors"), "wb") as f:
            f.write(b)

main()
