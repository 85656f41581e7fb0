#!/usr/bin/python3
"""Error model behind tests/gpu/compare.py's logits bound (runs on any CPU).

Emulates in float64 numpy the roundings the CUDA path adds to the CPU path:
bf16 rounding (round to nearest even) of every GEMM input (the activations
before q/k/v, o, gate/up, down and lm_head) and of the KV cache entries, and
compares with the unrounded forward pass (tests/runtime/ref_forward.py
semantics) on gen_tiny.py models.  Prints max |rounded - exact| / max |exact|
and the number of argmax flips per case.

usage: bf16_sim.py [WORKDIR]
Seen on the build host (2026-11-28): 3.8e-3 ... 5.9e-3 for the six variants
at T=18, 4.1e-3 for mistral at T=300, 6.1e-3 for a 22-layer model
(512,1408,22,8,2,4000); hence the bound 2e-2 (about 3x margin).  Random
models have near-ties, so argmax can flip (mistral T=300: 10 of 300) — why
the greedy comparison tolerates a flip at a small top-2 gap."""
import math
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runtime"))
import gen_tiny  # noqa: E402
import ref_forward as R  # noqa: E402

def bf(a):
    a = np.asarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)

def fwd(cfg, w, ids, rnd):
    arch = cfg["architectures"][0]
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", nh); hd = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]; T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    ang = np.outer(np.arange(T, dtype=np.float64), R.inv_freq(cfg, hd)); emb = np.concatenate([ang, ang], -1)
    cos, sin = np.cos(emb), np.sin(emb)
    mask = np.tril(np.ones((T, T), dtype=bool))
    win = cfg.get("sliding_window") if arch == "MistralForCausalLM" else None
    if win:
        qi, ki = np.meshgrid(np.arange(T), np.arange(T), indexing="ij"); mask &= (qi - ki) < win
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rnd(R.rms(x, w[p + "input_layernorm.weight"], eps))
        def proj(name):
            y = h @ w[p + f"self_attn.{name}_proj.weight"].T
            b = w.get(p + f"self_attn.{name}_proj.bias")
            return y if b is None else y + b
        q = proj("q").reshape(T, nh, hd).transpose(1, 0, 2)
        k = proj("k").reshape(T, kv, hd).transpose(1, 0, 2)
        v = proj("v").reshape(T, kv, hd).transpose(1, 0, 2)
        if arch == "Qwen3ForCausalLM":
            q = R.rms(q, w[p + "self_attn.q_norm.weight"], eps); k = R.rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + R.rotate_half(q) * sin
        k = rnd(k * cos + R.rotate_half(k) * sin); v = rnd(v)
        rep = nh // kv; k = np.repeat(k, rep, 0); v = np.repeat(v, rep, 0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd); s = np.where(mask[None], s, -np.inf)
        s = s - s.max(-1, keepdims=True); pr = np.exp(s); pr /= pr.sum(-1, keepdims=True)
        a = rnd((pr @ v).transpose(1, 0, 2).reshape(T, nh * hd))
        o = a @ w[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in w: o = o + w[p + "self_attn.o_proj.bias"]
        x = x + o
        h = rnd(R.rms(x, w[p + "post_attention_layernorm.weight"], eps))
        g = h @ w[p + "mlp.gate_proj.weight"].T; u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + rnd((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rnd(R.rms(x, w["model.norm.weight"], eps))
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T

work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="agrt-bf16sim-")
IDS = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 200, 150, 3]
cases = [(v, None, 18) for v in gen_tiny.VARIANTS] + [("mistral", None, 300), ("llama", "512,1408,22,8,2,4000", 32)]
for v, dims, T in cases:
    md = os.path.join(work, f"{v}-{dims}-{T}")
    gen_tiny.generate(v, "bf16", md, 1, [int(x) for x in dims.split(",")] if dims else None)
    cfg, w, eos = R.load(md)
    ids = (IDS * 40)[:T]
    ex = fwd(cfg, w, ids, lambda a: a); b = fwd(cfg, w, ids, bf)
    err = np.max(np.abs(b - ex)) / np.max(np.abs(ex))

    flips = int(np.sum(np.argmax(b, -1) != np.argmax(ex, -1)))
    print(f"{v:12} dims={dims} T={T}: rel err {err:.2e}  argmax flips {flips}/{T}  max|logit| {np.max(np.abs(ex)):.1f}", flush=True)
