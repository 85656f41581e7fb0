#!/usr/bin/python3
"""Independent numpy reference of the Hugging Face Llama/Mistral/Qwen2/Qwen3
forward pass (float64 throughout, weights read from safetensors as stored).

Follows transformers' modeling_llama.py / modeling_qwen3.py: RMSNorm,
rotate_half RoPE (with llama3 rope scaling), grouped-query attention with a
causal (and for Mistral sliding-window) mask, SwiGLU MLP, optional tied
lm_head.  Written without looking at the C code.
"""
import json
import math
import os
import struct

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        buf = raw[base + b:base + en]
        dt = e["dtype"]
        if dt == "F32":
            a = np.frombuffer(buf, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            a = np.frombuffer(buf, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        else:
            raise ValueError(dt)
        out[name] = a.reshape(e["shape"])
    return out


def load(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    w = {}
    if os.path.exists(os.path.join(d, "model.safetensors")):
        w = read_safetensors(os.path.join(d, "model.safetensors"))
    else:
        idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
        for fn in sorted(set(idx["weight_map"].values())):
            w.update(read_safetensors(os.path.join(d, fn)))
    eos = []
    for src in [cfg, json.load(open(os.path.join(d, "generation_config.json")))
                if os.path.exists(os.path.join(d, "generation_config.json")) else {}]:
        e = src.get("eos_token_id")
        if e is None:
            continue
        eos += e if isinstance(e, list) else [e]
    return cfg, w, set(eos)


def rope_scaling(cfg):
    rp = cfg.get("rope_parameters") or {}
    sc = cfg.get("rope_scaling") or (rp if rp.get("rope_type") not in (None, "default") else None)
    return sc


def rope_theta(cfg):
    rp = cfg.get("rope_parameters") or {}
    return rp.get("rope_theta", cfg.get("rope_theta", 10000.0))


def inv_freq(cfg, hd, seq_len=None):
    """transformers' ROPE_INIT_FUNCTIONS -> (inv_freq, attention_factor)."""
    theta = rope_theta(cfg)
    f = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    att = 1.0
    sc = rope_scaling(cfg)
    if sc:
        kind = sc.get("rope_type", sc.get("type"))
        if kind == "linear":
            f = f / sc["factor"]
        elif kind == "llama3":
            factor, lo, hi, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], \
                sc["original_max_position_embeddings"]
            low_wl, high_wl = old / lo, old / hi
            wl = 2 * math.pi / f
            scaled = np.where(wl > low_wl, f / factor, f)
            smooth = (old / wl - lo) / (hi - lo)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = ~(wl < high_wl) & ~(wl > low_wl)
            f = np.where(medium, smoothed, scaled)
        elif kind == "dynamic":
            # _compute_dynamic_ntk_parameters with the forward's seq_len
            mp = cfg.get("max_position_embeddings", 2048)
            factor = sc["factor"]
            sl = seq_len if seq_len is not None and seq_len > mp else mp
            base = theta * ((factor * sl / mp) - (factor - 1)) ** (hd / (hd - 2))
            f = 1.0 / (base ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
        elif kind == "yarn":
            # _compute_yarn_parameters
            factor = sc["factor"]
            mp = cfg.get("max_position_embeddings", 2048)
            if "original_max_position_embeddings" in sc:
                orig = sc["original_max_position_embeddings"]
                factor = mp / orig
            else:
                orig = mp

            def get_mscale(scale, m=1.0):
                return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
            att = sc.get("attention_factor")
            ms, msa = sc.get("mscale"), sc.get("mscale_all_dim")
            if att is None:
                att = get_mscale(factor, ms) / get_mscale(factor, msa) if ms and msa else get_mscale(factor)
            bf = sc.get("beta_fast") or 32
            bs = sc.get("beta_slow") or 1

            def corr_dim(rot):
                return (hd * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(theta))
            low, high = corr_dim(bf), corr_dim(bs)
            if sc.get("truncate", True):
                low, high = math.floor(low), math.ceil(high)
            low, high = max(low, 0), min(high, hd - 1)
            if low == high:
                high += 0.001
            ramp = np.clip((np.arange(hd // 2, dtype=np.float64) - low) / (high - low), 0, 1)
            extra = 1 - ramp
            f = (f / factor) * (1 - extra) + f * extra
        else:
            raise ValueError(kind)
    return f, att


def rope_cos_sin(cfg, hd, seq_lens):
    """cos, sin [T][hd] for positions 0..T-1; seq_lens[p] is the length of the
    forward call that computed position p (dynamic rope recomputes per call,
    and the cache keeps keys rotated as they were)."""
    T = len(seq_lens)
    cos = np.zeros((T, hd))
    sin = np.zeros((T, hd))
    for p in range(T):
        f, att = inv_freq(cfg, hd, seq_lens[p])
        ang = p * f
        emb = np.concatenate([ang, ang])
        cos[p], sin[p] = np.cos(emb) * att, np.sin(emb) * att
    return cos, sin


def rms(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def swiglu(h, w, pre, g="gate_proj", u="up_proj", d="down_proj"):
    a = h @ w[pre + g + ".weight"].T
    b = h @ w[pre + u + ".weight"].T
    return ((a / (1 + np.exp(-a))) * b) @ w[pre + d + ".weight"].T


def is_moe_layer(cfg, i):
    """Which decoder layers carry the sparse block (transformers' *DecoderLayer)."""
    arch = cfg["architectures"][0]
    if arch in ("MixtralForCausalLM", "MiniMaxM2ForCausalLM"):
        return True
    if arch == "DeepseekV3ForCausalLM":
        return i >= cfg.get("first_k_dense_replace", 3)
    if arch == "Glm4MoeForCausalLM":
        return i >= cfg.get("first_k_dense_replace", 1)
    if arch in ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"):
        ne = cfg.get("num_experts", 0)
        return i not in (cfg.get("mlp_only_layers") or []) and ne > 0 and \
            (i + 1) % cfg.get("decoder_sparse_step", 1) == 0
    return False


def route_deepseek(cfg, logits, bias):
    """DeepseekV3MoE.route_tokens_to_experts for one token: (indices, weights)."""
    E = logits.shape[0]
    ds = cfg["architectures"][0] == "DeepseekV3ForCausalLM"
    ng, kg, k = cfg.get("n_group", 8 if ds else 1), cfg.get("topk_group", 4 if ds else 1), cfg["num_experts_per_tok"]
    scores = 1 / (1 + np.exp(-logits))
    choice = scores + bias
    groups = choice.reshape(ng, E // ng)
    gscore = np.sort(groups, axis=-1)[:, ::-1][:, :2].sum(-1)
    keep = np.argsort(-gscore, kind="stable")[:kg]
    mask = np.zeros(ng, dtype=bool)
    mask[keep] = True
    masked = np.where(np.repeat(mask, E // ng), choice, 0.0)
    top = np.argsort(-masked, kind="stable")[:k]
    wt = scores[top]
    if cfg.get("norm_topk_prob", True):
        wt = wt / (wt.sum() + 1e-20)
    return top, wt * cfg.get("routed_scaling_factor", 2.5 if ds else 1.0)


def moe(cfg, w, p, h, stats):
    """MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock / DeepseekV3MoE on h [T][H]."""
    arch = cfg["architectures"][0]
    k = cfg["num_experts_per_tok"]
    if arch in ("MixtralForCausalLM", "MiniMaxM2ForCausalLM"):
        router, ex, names, norm = p + "block_sparse_moe.gate.weight", p + "block_sparse_moe.experts.", \
            ("w1", "w3", "w2"), True
    else:
        router, ex, names, norm = p + "mlp.gate.weight", p + "mlp.experts.", \
            ("gate_proj", "up_proj", "down_proj"), cfg.get("norm_topk_prob", False)
    logits = h @ w[router].T
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.zeros_like(h)
    for t in range(h.shape[0]):
        if arch in ("DeepseekV3ForCausalLM", "Glm4MoeForCausalLM"):
            top, wt = route_deepseek(cfg, logits[t], w[p + "mlp.gate.e_score_correction_bias"])
        elif arch == "MiniMaxM2ForCausalLM":
            # MiniMaxM2TopKRouter: sigmoid, bias for choosing only, top-k renormalised
            sc = 1 / (1 + np.exp(-logits[t]))
            top = np.argsort(-(sc + w[p + "block_sparse_moe.e_score_correction_bias"]), kind="stable")[:k]
            wt = sc[top] / sc[top].sum()
        else:
            top = np.argsort(-probs[t], kind="stable")[:k]
            wt = probs[t][top]
            if norm:
                wt = wt / wt.sum()
        for e, we in zip(top, wt):
            out[t] += we * swiglu(h[t:t + 1], w, ex + f"{e}.", *names)[0]
            if stats is not None:
                stats.setdefault(p, np.zeros(w[router].shape[0], dtype=int))[e] += 1
    if p + "mlp.shared_experts.gate_proj.weight" in w:
        out = out + swiglu(h, w, p + "mlp.shared_experts.")
    if p + "mlp.shared_expert_gate.weight" in w:
        sh = swiglu(h, w, p + "mlp.shared_expert.")
        gate = h @ w[p + "mlp.shared_expert_gate.weight"].T
        out = out + (1 / (1 + np.exp(-gate))) * sh
    return out


def mla(cfg, w, p, h, cos, sin, mask):
    """DeepseekV3Attention (eager, no cache) on h [T][H]."""
    T = h.shape[0]
    nh = cfg["num_attention_heads"]
    nope, rp, vd, rank = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    qk = nope + rp
    a = p + "self_attn."

    def lin(x, name):
        y = x @ w[a + name + ".weight"].T
        return y + w[a + name + ".bias"] if a + name + ".bias" in w else y
    if cfg.get("q_lora_rank") is None:
        q = lin(h, "q_proj")
    else:
        q = lin(rms(lin(h, "q_a_proj"), w[a + "q_a_layernorm.weight"], 1e-6), "q_b_proj")  # RMSNorm default eps
    q = q.reshape(T, nh, qk).transpose(1, 0, 2)
    q_pass, q_rot = q[..., :nope], q[..., nope:]
    ckv = lin(h, "kv_a_proj_with_mqa")
    k_pass, k_rot = ckv[:, :rank], ckv[:, rank:]
    kv = (rms(k_pass, w[a + "kv_a_layernorm.weight"], 1e-6) @ w[a + "kv_b_proj.weight"].T)
    kv = kv.reshape(T, nh, nope + vd).transpose(1, 0, 2)
    k_pass, v = kv[..., :nope], kv[..., nope:]
    k_rot = k_rot[None]  # one shared rope key
    if cfg.get("rope_interleave", True):
        def perm(x):
            return x.reshape(*x.shape[:-1], rp // 2, 2).swapaxes(-1, -2).reshape(x.shape)
        q_rot, k_rot = perm(q_rot), perm(k_rot)
    q_rot = q_rot * cos + rotate_half(q_rot) * sin
    k_rot = k_rot * cos + rotate_half(k_rot) * sin
    query = np.concatenate([q_pass, q_rot], -1)
    key = np.concatenate([k_pass, np.broadcast_to(k_rot, (nh, T, rp))], -1)
    scale = qk ** -0.5
    sc = rope_scaling(cfg)
    if sc and sc.get("rope_type", sc.get("type")) != "default" and sc.get("mscale_all_dim"):
        m = 0.1 * sc["mscale_all_dim"] * math.log(sc["factor"]) + 1.0 if sc["factor"] > 1 else 1.0
        scale = scale * m * m
    s = query @ key.transpose(0, 2, 1) * scale
    s = np.where(mask[None], s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    pr = np.exp(s)
    pr /= pr.sum(-1, keepdims=True)
    o = (pr @ v).transpose(1, 0, 2).reshape(T, nh * vd)
    return lin(o, "o_proj")


def forward(cfg, w, ids, seq_lens=None, stats=None):
    """Logits [T][vocab] for all positions of ids (positions 0..T-1), as one
    forward call unless seq_lens says which call computed each position.
    stats (a dict) receives, per MoE layer, how many tokens each expert got."""
    arch = cfg["architectures"][0]
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or H // nh
    if arch == "DeepseekV3ForCausalLM":
        hd = cfg["qk_rope_head_dim"]  # DeepseekV3Config.head_dim: the rotary part
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    # Glm4MoeAttention: RoPE on the first head_dim * partial_rotary_factor dims
    prf = cfg.get("partial_rotary_factor", (cfg.get("rope_parameters") or {}).get("partial_rotary_factor", 1.0))
    rd = int(hd * prf) if arch in ("Glm4MoeForCausalLM", "MiniMaxM2ForCausalLM") else hd
    cos, sin = rope_cos_sin(cfg, rd, seq_lens if seq_lens is not None else [T] * T)
    mask = np.tril(np.ones((T, T), dtype=bool))
    win = cfg.get("sliding_window") if arch in ("MistralForCausalLM", "MixtralForCausalLM") else None
    if win:
        qi, ki = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        mask &= (qi - ki) < win
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        if arch == "DeepseekV3ForCausalLM":
            x = x + mla(cfg, w, p, h, cos, sin, mask)
            h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
            x = x + (moe(cfg, w, p, h, stats) if is_moe_layer(cfg, i) else swiglu(h, w, p + "mlp."))
            continue

        def proj(name):
            y = h @ w[p + f"self_attn.{name}_proj.weight"].T
            b = w.get(p + f"self_attn.{name}_proj.bias")
            return y if b is None else y + b
        if arch == "MiniMaxM2ForCausalLM":
            # MiniMaxM2Attention (FlexOlmo's): RMSNorm over the whole q and k projections
            q = rms(proj("q"), w[p + "self_attn.q_norm.weight"], eps).reshape(T, nh, hd).transpose(1, 0, 2)
            k = rms(proj("k"), w[p + "self_attn.k_norm.weight"], eps).reshape(T, kv, hd).transpose(1, 0, 2)
        else:
            q = proj("q").reshape(T, nh, hd).transpose(1, 0, 2)
            k = proj("k").reshape(T, kv, hd).transpose(1, 0, 2)
        v = proj("v").reshape(T, kv, hd).transpose(1, 0, 2)
        if arch in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM") or \
                (arch == "Glm4MoeForCausalLM" and cfg.get("use_qk_norm")):
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q = np.concatenate([q[..., :rd] * cos + rotate_half(q[..., :rd]) * sin, q[..., rd:]], -1)
        k = np.concatenate([k[..., :rd] * cos + rotate_half(k[..., :rd]) * sin, k[..., rd:]], -1)
        rep = nh // kv
        k = np.repeat(k, rep, axis=0)
        v = np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.where(mask[None], s, -np.inf)
        s = s - s.max(-1, keepdims=True)
        pr = np.exp(s)
        pr /= pr.sum(-1, keepdims=True)
        a = (pr @ v).transpose(1, 0, 2).reshape(T, nh * hd)
        o = a @ w[p + "self_attn.o_proj.weight"].T
        if p + "self_attn.o_proj.bias" in w:
            o = o + w[p + "self_attn.o_proj.bias"]
        x = x + o
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        if is_moe_layer(cfg, i):
            x = x + moe(cfg, w, p, h, stats)
        else:
            x = x + swiglu(h, w, p + "mlp.")
    x = rms(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def greedy(cfg, w, eos, ids, n):
    """Greedy decoding as generate() with a KV cache: the prompt in one call,
    then one call per token (matters for dynamic rope only)."""
    ids = list(ids)
    seq_lens = [len(ids)] * len(ids)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(forward(cfg, w, ids, seq_lens)[-1]))
        out.append(nxt)
        if nxt in eos:
            break
        ids.append(nxt)
        seq_lens.append(len(ids))
    return out
