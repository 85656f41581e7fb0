#!/usr/bin/python3
"""Quantized tiny models for the runtime tests (issue 19), written from the
published format descriptions, independently of runtime/quant.c:

  fp8        transformers' FineGrainedFP8 / DeepSeek-V3: X.weight F8_E4M3,
             X.weight_scale_inv F32 [ceil(out/b0), ceil(in/b1)], W = code * scale_inv
  ct-int4    compressed-tensors pack-quantized W4A16: X.weight_packed I32 [out, ceil(in/8)]
             (value + 8 in nibble k % 8 of word k // 8), X.weight_scale [out, groups],
             X.weight_zero_point I32 [ceil(out/8), groups] packed along dim 0 (asymmetric),
             X.weight_shape; W = (q - zp) * scale
  ct-fp8     compressed-tensors float-quantized: X.weight F8_E4M3, X.weight_scale [out, 1] or [1]
  awq        AutoAWQ GEMM: qweight I32 [in, out/8] with the order 0,2,4,6,1,3,5,7,
             qzeros I32 [in/g, out/8] the same, scales F16 [in/g, out]; W = (q - z) * s
  gptq       AutoGPTQ: qweight I32 [in/8, out] (nibble k % 8), qzeros I32 [groups, out/8]
             storing z - 1, scales F16 [groups, out], g_idx I32 [in]; W = (q - z) * s

Each writes the quantized model to OUT and, to OUT.ref, the same model with
every quantized matrix replaced by its dequantized f32 values (all other
tensors in f32 as well), after a numpy round-trip check of the unpacking.

usage: gen_quant.py FORMAT OUT [options as in VARIANTS]
"""
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import gen_tiny  # noqa: E402

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "w1", "w2", "w3",
          "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj")


# ---- fp8 e4m3 (OCP FP8 spec: bias 7, no infinities, S.1111.111 NaN) ----
def e4m3_values():
    v = np.zeros(256, dtype=np.float64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 15, c & 7
        if e == 15 and m == 7:
            v[c] = np.nan
        elif e == 0:
            v[c] = m / 8.0 * 2.0 ** -6
        else:
            v[c] = (1 + m / 8.0) * 2.0 ** (e - 7)
        if s:
            v[c] = -v[c]
    return v


E4M3 = e4m3_values()
_POS = np.array([c for c in range(127)], dtype=np.int64)  # 0x00..0x7e: the finite non-negative codes
_POSV = E4M3[_POS]


def to_e4m3(a):
    """nearest e4m3 code (ties to the lower magnitude; saturating at 448)"""
    x = np.abs(a.astype(np.float64)).ravel()
    i = np.clip(np.searchsorted(_POSV, x), 1, len(_POSV) - 1)
    lo, hi = _POSV[i - 1], _POSV[i]
    pick = np.where(x - lo <= hi - x, i - 1, i)
    pick = np.where(x >= _POSV[-1], len(_POSV) - 1, pick)
    code = _POS[pick] | np.where(a.ravel() < 0, 0x80, 0)
    return code.astype(np.uint8).reshape(a.shape)


def fp8_block(w, b0, b1):
    R, C = w.shape
    nr, nc = -(-R // b0), -(-C // b1)
    sinv = np.zeros((nr, nc), dtype=np.float32)
    codes = np.zeros((R, C), dtype=np.uint8)
    for i in range(nr):
        for j in range(nc):
            blk = w[i * b0:(i + 1) * b0, j * b1:(j + 1) * b1]
            s = np.float32(np.abs(blk).max() / 448.0)
            sinv[i, j] = s
            codes[i * b0:(i + 1) * b0, j * b1:(j + 1) * b1] = to_e4m3(blk / s)
    # dequantize: code value times the scale of its block, in f32
    srep = np.repeat(np.repeat(sinv, b0, axis=0), b1, axis=1)[:R, :C]
    deq = E4M3[codes].astype(np.float32) * srep
    assert np.all(np.abs(deq - w) <= np.abs(w) / 16 + srep * 2.0 ** -9 + 1e-12), "fp8 round trip"
    return codes, sinv, deq


# ---- packing helpers ----
def pack_rows8(vals):
    """[R, C] nibbles -> I32 [R, ceil(C/8)], column k in bits 4*(k%8) of word k//8"""
    R, C = vals.shape
    pc = -(-C // 8)
    v = np.zeros((R, pc * 8), dtype=np.uint32)
    v[:, :C] = vals
    out = np.zeros((R, pc), dtype=np.uint32)
    for i in range(8):
        out |= v[:, i::8] << (4 * i)
    return out.view(np.int32)


def unpack_rows8(packed, C):
    u = packed.view(np.uint32)
    out = np.zeros((u.shape[0], u.shape[1] * 8), dtype=np.int64)
    for i in range(8):
        out[:, i::8] = (u >> (4 * i)) & 15
    return out[:, :C]


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]  # nibble i holds column 8j + AWQ_ORDER[i]


def pack_awq(vals):
    """[rows, cols] (cols = the output features) -> I32 [rows, cols/8] in AWQ's order"""
    R, C = vals.shape
    out = np.zeros((R, C // 8), dtype=np.uint32)
    for i in range(8):
        out |= vals[:, AWQ_ORDER[i]::8].astype(np.uint32) << (4 * i)
    return out.view(np.int32)


def unpack_awq(packed):
    u = packed.view(np.uint32)
    out = np.zeros((u.shape[0], u.shape[1] * 8), dtype=np.int64)
    for i in range(8):
        out[:, AWQ_ORDER[i]::8] = (u >> (4 * i)) & 15
    return out


def bf16_round(a):
    return gen_tiny.to_bf16_bits(a).astype(np.uint32).__lshift__(16).view(np.float32).reshape(a.shape)


# ---- formats: each returns ({suffix: (array, dtype tag)}, dequantized f32) ----
def round_scale(s, sdt):
    """scales as stored in sdt (bf16, f16 or f32), back in f32"""
    if sdt == "bf16":
        return bf16_round(s.astype(np.float32))
    if sdt == "f16":
        return s.astype(np.float16).astype(np.float32)
    return s.astype(np.float32)


def q_ct_int4(w, group, sym, sdt="bf16", rng=None):
    """rng: activation ordering (actorder "group"): columns join groups in a
    random order, written to weight_g_idx"""
    R, C = w.shape
    G = group or C
    ng = -(-C // G)
    if rng is not None:
        gi = np.zeros(C, dtype=np.int64)
        gi[rng.permutation(C)] = np.arange(C) // G
    else:
        gi = np.arange(C) // G
    scale = np.zeros((R, ng), dtype=np.float32)
    zp = np.zeros((R, ng), dtype=np.int64)  # unsigned 0..15 (the signed zero point + 8)
    q = np.zeros((R, C), dtype=np.int64)    # unsigned 0..15 (the signed value + 8)
    for g in range(ng):
        cols = np.nonzero(gi == g)[0]
        blk = w[:, cols]
        if sym:
            s = np.abs(blk).max(axis=1) / 7.5
            s = round_scale(s, sdt)
            z = np.full(R, 8)
        else:
            lo, hi = np.minimum(blk.min(axis=1), 0), np.maximum(blk.max(axis=1), 0)
            s = (hi - lo) / 15.0
            s = round_scale(s, sdt)
            z = np.clip(np.round(-lo / s), 0, 15).astype(np.int64)
        scale[:, g] = s
        zp[:, g] = z
        q[:, cols] = np.clip(np.round(blk / s[:, None]) + z[:, None], 0, 15)
    t = {"weight_packed": (pack_rows8(q), "I32"), "weight_shape": (np.array([R, C], dtype=np.int64), "I64"),
         "weight_scale": (scale, sdt)}
    if rng is not None:
        t["weight_g_idx"] = (gi.astype(np.int32), "I32")
    if not sym:
        t["weight_zero_point"] = (pack_rows8(zp.T).T.copy(), "I32")  # packed along dim 0
        zu = unpack_rows8(t["weight_zero_point"][0].T.copy(), R).T
        assert np.array_equal(zu, zp), "zero point round trip"
    assert np.array_equal(unpack_rows8(t["weight_packed"][0], C), q), "int4 round trip"
    deq = (q - zp[:, gi]).astype(np.float32) * scale[:, gi]
    assert np.all(np.abs(deq - w) <= scale[:, gi] * 1.01 + 1e-7), "int4 error bound"
    return t, deq


def q_ct_fp8(w, strategy):
    R, C = w.shape
    if strategy == "channel":
        s = (np.abs(w).max(axis=1, keepdims=True) / 448.0).astype(np.float32)
    else:
        s = np.array([np.abs(w).max() / 448.0], dtype=np.float32)
    codes = to_e4m3(w / (s if strategy == "channel" else s[0]))
    deq = E4M3[codes].astype(np.float32) * (s if strategy == "channel" else s[0])
    return {"weight": (codes, "F8_E4M3"), "weight_scale": (s, "f32")}, deq


def q_fp8_block(w, b0=128, b1=128):
    codes, sinv, deq = fp8_block(w, b0, b1)
    return {"weight": (codes, "F8_E4M3"), "weight_scale_inv": (sinv, "f32")}, deq


def q_awq_gptq(w, group, fmt, rng, desc_act=False, sym=False):
    R, C = w.shape  # out, in
    G = group if group > 0 else C
    ng = C // G
    if desc_act:
        perm = rng.permutation(C)
        g_idx = np.zeros(C, dtype=np.int64)
        g_idx[perm] = np.arange(C) // G  # every group G columns, not in order
    else:
        g_idx = np.arange(C) // G
    scale = np.zeros((ng, R), dtype=np.float32)
    zero = np.zeros((ng, R), dtype=np.int64)
    q = np.zeros((R, C), dtype=np.int64)
    for g in range(ng):
        cols = np.nonzero(g_idx == g)[0]
        blk = w[:, cols]
        if sym:
            s = (np.abs(blk).max(axis=1) * 2 / 15).astype(np.float16).astype(np.float32)
            z = np.full(R, 8)
        else:
            lo, hi = np.minimum(blk.min(axis=1), 0), np.maximum(blk.max(axis=1), 0)
            s = ((hi - lo) / 15).astype(np.float16).astype(np.float32)
            # GPTQ's original format stores zero - 1 in 4 bits: 0 is not representable
            z = np.clip(np.round(-lo / s), 1 if fmt == "gptq" else 0, 15).astype(np.int64)
        scale[g], zero[g] = s, z
        q[:, cols] = np.clip(np.round(blk / s[:, None]) + z[:, None], 0, 15)
    deq = (q - zero[g_idx].T).astype(np.float32) * scale[g_idx].T
    t = {"scales": (scale.astype(np.float16), "f16")}
    if fmt == "awq":
        t["qweight"] = (pack_awq(q.T), "I32")          # [in, out/8]
        t["qzeros"] = (pack_awq(zero), "I32")          # [groups, out/8]
        assert np.array_equal(unpack_awq(t["qweight"][0]).T, q) and np.array_equal(unpack_awq(t["qzeros"][0]), zero)
    else:
        t["qweight"] = (pack_rows8(q).T.copy(), "I32")  # [in/8, out]: word [k/8][r], nibble k % 8
        t["qzeros"] = (pack_rows8(zero - 1), "I32")    # AutoGPTQ stores zero - 1
        t["g_idx"] = (g_idx.astype(np.int32), "I32")
        assert np.array_equal(unpack_rows8(t["qweight"][0].T.copy(), C), q)
        assert np.array_equal(unpack_rows8(t["qzeros"][0], R) + 1, zero)
    return t, deq


def encode(a, tag):
    if tag in ("f32", "f16", "bf16"):
        return gen_tiny.encode(a, tag)
    return tag, np.ascontiguousarray(a).tobytes()


def write_st(path, tensors):
    """tensors: [(name, array, tag)]"""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a, tag in tensors:
        t, b = encode(a, tag)
        header[name] = {"dtype": t, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def quant_config(fmt, opt):
    if fmt == "fp8":
        return {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                "weight_block_size": list(opt.get("block", (128, 128)))}
    if fmt == "ct-int4":
        w = {"num_bits": 4, "type": "int", "symmetric": opt["sym"], "dynamic": False,
             "strategy": "group" if opt["group"] else "channel", "group_size": opt["group"] or None,
             "actorder": "group" if opt.get("actorder") else None, "observer": "minmax"}
        return {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
                "config_groups": {"group_0": {"targets": ["Linear"], "weights": w, "input_activations": None,
                                              "output_activations": None}},
                "ignore": ([] if opt.get("lm_head") else ["lm_head"]) + opt.get("ignore", [])}
    if fmt == "ct-fp8":
        w = {"num_bits": 8, "type": "float", "symmetric": True, "dynamic": False, "strategy": opt["strategy"]}
        return {"quant_method": "compressed-tensors", "format": "float-quantized",
                "config_groups": {"group_0": {"targets": ["Linear"], "weights": w}},
                "ignore": ["lm_head"] + opt.get("ignore", [])}
    if fmt == "awq":
        return {"quant_method": "awq", "bits": 4, "group_size": opt["group"], "zero_point": True, "version": "gemm",
                "modules_to_not_convert": None}
    return {"quant_method": "gptq", "bits": 4, "group_size": opt["group"], "desc_act": opt.get("desc_act", False),
            "sym": opt.get("sym", False), "checkpoint_format": "gptq", "true_sequential": True}


def is_ignored(name, opt):
    import re
    return any(re.match(p[3:], name) if p.startswith("re:") else p == name for p in opt.get("ignore", []))


def quantize(fmt, tensors, rng, **opt):
    """gen_tiny tensors -> (quantized [(name, array, tag)], reference [(name, f32 array, "f32")])"""
    qt, rt = [], []
    for name, a in tensors:
        mod = name[:-len(".weight")] if name.endswith(".weight") else None
        lin = mod and (mod.split(".")[-1] in LINEAR or (mod == "lm_head" and opt.get("lm_head")))
        if lin and a.ndim == 2 and not is_ignored(mod, opt):
            if fmt == "fp8":
                t, deq = q_fp8_block(a, *opt.get("block", (128, 128)))
            elif fmt == "ct-int4":
                t, deq = q_ct_int4(a, opt["group"], opt["sym"], opt.get("sdt", "bf16"),
                                   rng=rng if opt.get("actorder") else None)
            elif fmt == "ct-fp8":
                t, deq = q_ct_fp8(a, opt["strategy"])
            else:
                t, deq = q_awq_gptq(a, opt["group"], fmt, rng, opt.get("desc_act", False), opt.get("sym", False))
            for suf, (arr, tag) in t.items():
                qt.append((mod + "." + suf, arr, tag))
            rt.append((name, deq, "f32"))
        else:
            qt.append((name, a, "bf16" if a.ndim == 2 else "f32"))
            # the reference holds the same values the quantized model has
            rt.append((name, bf16_round(a) if a.ndim == 2 else a, "f32"))
    return qt, rt


def generate(fmt, out, variant="llama", dims=None, write_ref=True, **opt):
    """Writes OUT (quantized) and OUT.ref (dequantized, f32).  opt lm_head:
    a tied model gets its own lm_head.weight (the embedding), quantized."""
    seed = zlib.crc32(f"quant/{fmt}/{variant}".encode())
    rng = np.random.default_rng(seed)
    gen_tiny.generate(variant, "f32", out, 1, dims)  # config, tokenizer (weights replaced below)
    s = gen_tiny.spec(variant, dims)
    tensors = gen_tiny.make_weights(variant, s, np.random.default_rng(seed + 1))
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    if opt.get("lm_head") and cfg["tie_word_embeddings"]:
        tensors.append(("lm_head.weight", dict(tensors)["model.embed_tokens.weight"].copy()))
        cfg["tie_word_embeddings"] = False
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
    qt, rt = quantize(fmt, tensors, rng, **opt)
    os.remove(os.path.join(out, "model.safetensors"))
    ref = out + ".ref"
    if write_ref:
        shutil.rmtree(ref, ignore_errors=True)
        shutil.copytree(out, ref)
        write_st(os.path.join(ref, "model.safetensors"), rt)
    write_st(os.path.join(out, "model.safetensors"), qt)
    cfg["quantization_config"] = quant_config(fmt, opt)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return out, ref


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    generate(sys.argv[1], sys.argv[2], **(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}))
