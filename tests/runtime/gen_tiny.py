#!/usr/bin/python3
"""Deterministic tiny-model generator for the runtime tests.

Writes a Hugging Face style model directory (config.json,
generation_config.json, tokenizer.json, model.safetensors or shards) with
random weights for one architecture variant and dtype.

usage: gen_tiny.py VARIANT DTYPE OUTDIR [--shards N] [--dims hidden,inter,layers,heads,kv_heads,vocab]
                  [--moe experts,top_k,moe_inter]   (MoE variants; Mixtral's experts use inter)
VARIANT: one of VARIANTS below      DTYPE: f32 f16 bf16 mixed
Needs only Python 3 and numpy (Debian python3-numpy under /usr/bin/python3).
"""
import json
import os
import struct
import sys
import zlib

import numpy as np

VARIANTS = ["llama", "llama3", "mistral", "qwen2", "qwen3", "llama_tied", "llama_yarn", "qwen3_dynamic",
            "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3", "deepseek_v3_plain", "glm4_moe", "minimax_m2"]
# deepseek_v3: q lora, yarn with mscale (softmax scale), interleaved rope, 4 groups of 2 experts (2 kept),
# one MTP layer in the files; deepseek_v3_plain: q_proj (q_lora_rank null), attention biases, rotate-half
# rope (rope_interleave false), no groups, no renormalisation
# glm4_moe: partial rotary 0.5 of head_dim 24, q/k/v biases, qk norm, one group (as GLM-4.5),
# first layer dense, one MTP layer
# minimax_m2: q/k norms over all heads, partial rotary 0.5, sigmoid routing without groups, Mixtral names
MOE = {"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3", "deepseek_v3_plain", "glm4_moe", "minimax_m2"}
DTYPES = ["f32", "f16", "bf16"]
# "mixed": per-tensor dtypes as some checkpoints have (vectors f32, embedding f16, matrices bf16)
ALL_DTYPES = DTYPES + ["mixed"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def to_bf16_bits(a):
    """f32 -> bf16 bit patterns, round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def encode(a, dtype):
    if dtype == "f32":
        return "F32", np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "f16":
        return "F16", np.ascontiguousarray(a, dtype="<f2").tobytes()
    return "BF16", to_bf16_bits(a).astype("<u2").tobytes()


def write_safetensors(path, tensors, dtype, metadata=None):
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for name, a in tensors:
        dt = dtype
        if name.endswith("e_score_correction_bias"):
            dt = "f32"  # as DeepSeek-V3 / GLM-4.5 checkpoints keep it inside BF16 files
        elif dtype == "mixed":
            dt = "f32" if a.ndim == 1 else "f16" if "embed" in name else "bf16"
        tag, b = encode(a, dt)
        header[name] = {"dtype": tag, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)  # the reference writer pads to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def spec(variant, dims=None):
    s = dict(hidden=64, inter=96, layers=2, heads=4, kv_heads=2, vocab=300, head_dim=None, maxpos=512)
    if variant in ("qwen3", "qwen3_dynamic"):
        s["head_dim"] = 24  # != hidden / heads = 16
    if variant == "qwen3_dynamic":
        s["maxpos"] = 12  # the test prompts run past it, where dynamic NTK rescales
    if variant == "qwen3_moe":
        s["head_dim"] = 24
    # experts: 8 routed, k per token; moe_inter / shared_inter for the Qwen blocks
    if variant == "mixtral":
        s.update(experts=8, topk=2, layers=2)
    if variant == "qwen2_moe":
        s.update(experts=8, topk=3, moe_inter=48, shared_inter=80, layers=4)
    if variant == "qwen3_moe":
        s.update(experts=8, topk=2, moe_inter=40, layers=4)
    if variant == "glm4_moe":
        s.update(experts=8, topk=3, moe_inter=40, layers=3, head_dim=24)
    if variant == "minimax_m2":
        s.update(experts=8, topk=3, layers=2, head_dim=24)
    if variant.startswith("deepseek_v3"):
        s.update(experts=8, topk=3, moe_inter=40, layers=3, heads=4, kv_heads=4, q_lora=24, kv_lora=32, nope=16,
                 rope=8, vhd=12)
        if variant == "deepseek_v3_plain":
            s["q_lora"] = None
    if dims:
        h, i, l, nh, kv, v = dims
        s.update(hidden=h, inter=i, layers=l, heads=nh, kv_heads=kv, vocab=v)
    return s


def make_config(variant, s):
    arch = {"llama": "LlamaForCausalLM", "llama3": "LlamaForCausalLM", "llama_tied": "LlamaForCausalLM",
            "llama_yarn": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
            "qwen3": "Qwen3ForCausalLM", "qwen3_dynamic": "Qwen3ForCausalLM", "mixtral": "MixtralForCausalLM",
            "qwen2_moe": "Qwen2MoeForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM",
            "deepseek_v3": "DeepseekV3ForCausalLM", "deepseek_v3_plain": "DeepseekV3ForCausalLM",
            "glm4_moe": "Glm4MoeForCausalLM", "minimax_m2": "MiniMaxM2ForCausalLM"}[variant]
    mt = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2",
          "Qwen3ForCausalLM": "qwen3", "MixtralForCausalLM": "mixtral", "Qwen2MoeForCausalLM": "qwen2_moe",
          "Qwen3MoeForCausalLM": "qwen3_moe", "DeepseekV3ForCausalLM": "deepseek_v3",
          "Glm4MoeForCausalLM": "glm4_moe", "MiniMaxM2ForCausalLM": "minimax_m2"}[arch]
    c = {
        "architectures": [arch], "model_type": mt, "hidden_size": s["hidden"], "intermediate_size": s["inter"],
        "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
        "vocab_size": s["vocab"], "max_position_embeddings": s["maxpos"], "rms_norm_eps": 1e-5,
        "hidden_act": "silu", "rope_theta": 10000.0, "tie_word_embeddings": False,
        "bos_token_id": 256, "eos_token_id": 257, "torch_dtype": "bfloat16",
    }
    if variant == "llama3":
        c["rope_theta"] = 500000.0
        # original_max_position_embeddings small so all three frequency bands occur at head_dim 16
        c["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 16}
    if variant == "mistral":
        c["sliding_window"] = 8  # shorter than the test sequences, so the mask matters
    if variant == "qwen2":
        c["tie_word_embeddings"] = True
        c["use_sliding_window"] = False
        c["rope_theta"] = 1000000.0
    if variant == "qwen3":
        c["head_dim"] = s["head_dim"]
        del c["rope_theta"]  # newer transformers layout: rope_parameters
        c["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0}
        c["attention_bias"] = False
    if variant == "llama_tied":
        c["tie_word_embeddings"] = True
        c["eos_token_id"] = [257, 258]
    if variant == "llama_yarn":
        # factor = 512 / 128 = 4 (transformers takes the ratio when the original length is given);
        # with head_dim 16 the ramp spans dims 0..3, so both ends and the ramp occur
        c["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128,
                             "beta_fast": 32, "beta_slow": 1}
    if variant == "mixtral":
        c["num_local_experts"] = s["experts"]
        c["num_experts_per_tok"] = s["topk"]
        c["sliding_window"] = None
    if variant == "qwen2_moe":
        c.update(num_experts=s["experts"], num_experts_per_tok=s["topk"], moe_intermediate_size=s["moe_inter"],
                 shared_expert_intermediate_size=s["shared_inter"], norm_topk_prob=False, decoder_sparse_step=1,
                 mlp_only_layers=[2], use_sliding_window=False, qkv_bias=True)
    if variant == "qwen3_moe":
        # decoder_sparse_step 2: layers 1 and 3 are MoE, 0 and 2 dense
        c.update(num_experts=s["experts"], num_experts_per_tok=s["topk"], moe_intermediate_size=s["moe_inter"],
                 norm_topk_prob=True, decoder_sparse_step=2, mlp_only_layers=[], head_dim=s["head_dim"],
                 attention_bias=False)
    if variant.startswith("deepseek_v3"):
        plain = variant == "deepseek_v3_plain"
        c.update(n_routed_experts=s["experts"], num_experts_per_tok=s["topk"], moe_intermediate_size=s["moe_inter"],
                 n_shared_experts=1, n_group=1 if plain else 4, topk_group=1 if plain else 2,
                 first_k_dense_replace=1, routed_scaling_factor=2.5, norm_topk_prob=not plain,
                 q_lora_rank=s["q_lora"], kv_lora_rank=s["kv_lora"], qk_nope_head_dim=s["nope"],
                 qk_rope_head_dim=s["rope"], v_head_dim=s["vhd"], rope_interleave=not plain,
                 attention_bias=plain, num_nextn_predict_layers=0 if plain else 1)
        if not plain:
            c["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128,
                                 "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}
    if variant == "glm4_moe":
        c.update(head_dim=s["head_dim"], partial_rotary_factor=0.5, attention_bias=True, use_qk_norm=True,
                 n_routed_experts=s["experts"], num_experts_per_tok=s["topk"], moe_intermediate_size=s["moe_inter"],
                 n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1, routed_scaling_factor=2.5,
                 norm_topk_prob=True, num_nextn_predict_layers=1)
    if variant == "minimax_m2":
        c.update(head_dim=s["head_dim"], num_local_experts=s["experts"], num_experts_per_tok=s["topk"])
        del c["rope_theta"]
        c["rope_parameters"] = {"rope_type": "default", "rope_theta": 5000000.0, "partial_rotary_factor": 0.5}
    if variant == "qwen3_dynamic":
        c["head_dim"] = s["head_dim"]
        c["rope_theta"] = 10000.0
        c["rope_scaling"] = {"type": "dynamic", "factor": 4.0}
    return c


def is_moe_layer(variant, s, i):
    if variant == "glm4_moe":
        return i >= 1  # first_k_dense_replace 1
    if variant == "qwen2_moe":
        return i != 2  # mlp_only_layers [2]
    if variant == "qwen3_moe":
        return (i + 1) % 2 == 0  # decoder_sparse_step 2
    return True


def moe_weights(variant, s, p, w):
    """Router, experts (and shared expert) of one layer with the checkpoint's names.
    The router has the usual 1/sqrt(hidden) scale; test_forward.py checks the spread."""
    H, E = s["hidden"], s["experts"]
    t = []
    if variant in ("mixtral", "minimax_m2"):
        t.append((p + "block_sparse_moe.gate.weight", w(E, H, scale=1.0 / np.sqrt(H))))
        if variant == "minimax_m2":
            t.append((p + "block_sparse_moe.e_score_correction_bias", w(E, scale=0.05)))
        for e in range(E):
            q = p + f"block_sparse_moe.experts.{e}."
            t.append((q + "w1.weight", w(s["inter"], H)))
            t.append((q + "w2.weight", w(H, s["inter"])))
            t.append((q + "w3.weight", w(s["inter"], H)))
        return t
    I = s["moe_inter"]
    # sigmoid scores saturate less than softmax ones spread: a larger router there
    t.append((p + "mlp.gate.weight", w(E, H, scale=(1.0 if variant.startswith("deepseek") else 1.0) / np.sqrt(H))))
    for e in range(E):
        q = p + f"mlp.experts.{e}."
        t.append((q + "gate_proj.weight", w(I, H)))
        t.append((q + "up_proj.weight", w(I, H)))
        t.append((q + "down_proj.weight", w(H, I)))
    if variant.startswith("deepseek_v3") or variant == "glm4_moe":
        t.append((p + "mlp.gate.e_score_correction_bias", w(E, scale=0.05)))
        S = s["moe_inter"]  # n_shared_experts 1
        t.append((p + "mlp.shared_experts.gate_proj.weight", w(S, H)))
        t.append((p + "mlp.shared_experts.up_proj.weight", w(S, H)))
        t.append((p + "mlp.shared_experts.down_proj.weight", w(H, S)))
    if variant == "qwen2_moe":
        S = s["shared_inter"]
        t.append((p + "mlp.shared_expert.gate_proj.weight", w(S, H)))
        t.append((p + "mlp.shared_expert.up_proj.weight", w(S, H)))
        t.append((p + "mlp.shared_expert.down_proj.weight", w(H, S)))
        t.append((p + "mlp.shared_expert_gate.weight", w(1, H)))
    return t


def mla_weights(s, p, w, norm):
    H, nh, qk = s["hidden"], s["heads"], s["nope"] + s["rope"]
    lat = s["kv_lora"] + s["rope"]
    a = p + "self_attn."
    t = []
    if s["q_lora"]:
        t.append((a + "q_a_proj.weight", w(s["q_lora"], H)))
        t.append((a + "q_a_layernorm.weight", norm(s["q_lora"])))
        t.append((a + "q_b_proj.weight", w(nh * qk, s["q_lora"])))
    else:
        t.append((a + "q_proj.weight", w(nh * qk, H)))
    t.append((a + "kv_a_proj_with_mqa.weight", w(lat, H)))
    t.append((a + "kv_a_layernorm.weight", norm(s["kv_lora"])))
    t.append((a + "kv_b_proj.weight", w(nh * (s["nope"] + s["vhd"]), s["kv_lora"])))
    t.append((a + "o_proj.weight", w(H, nh * s["vhd"])))
    if s["q_lora"] is None:  # the plain variant also has attention_bias
        t.append((a + "kv_a_proj_with_mqa.bias", w(lat, scale=0.5)))
        t.append((a + "o_proj.bias", w(H, scale=0.5)))
    return t


def make_weights(variant, s, rng):
    H, I, nh, kv = s["hidden"], s["inter"], s["heads"], s["kv_heads"]
    hd = s["head_dim"] or H // nh
    V = s["vocab"]
    t = []

    def w(*shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    # tied heads read logits straight off the embedding, so the residual
    # stream must move away from the input embedding or greedy decoding
    # degenerates into repeating the last token
    big = 4.0 if variant in ("qwen2", "llama_tied") else 1.0

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t.append(("model.embed_tokens.weight", w(V, H, scale=1.0)))
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        t.append((p + "input_layernorm.weight", norm(H)))
        if variant.startswith("deepseek_v3"):
            t += mla_weights(s, p, w, norm)
            t.append((p + "post_attention_layernorm.weight", norm(H)))
            if i >= 1:  # first_k_dense_replace 1
                t += moe_weights(variant, s, p, w)
                continue
            t.append((p + "mlp.gate_proj.weight", w(I, H)))
            t.append((p + "mlp.up_proj.weight", w(I, H)))
            t.append((p + "mlp.down_proj.weight", w(H, I)))
            continue
        t.append((p + "self_attn.q_proj.weight", w(nh * hd, H)))
        t.append((p + "self_attn.k_proj.weight", w(kv * hd, H)))
        t.append((p + "self_attn.v_proj.weight", w(kv * hd, H)))
        if variant in ("qwen2", "qwen2_moe", "glm4_moe"):
            t.append((p + "self_attn.q_proj.bias", w(nh * hd, scale=0.5)))
            t.append((p + "self_attn.k_proj.bias", w(kv * hd, scale=0.5)))
            t.append((p + "self_attn.v_proj.bias", w(kv * hd, scale=0.5)))
        if variant == "minimax_m2":
            t.append((p + "self_attn.q_norm.weight", norm(nh * hd)))
            t.append((p + "self_attn.k_norm.weight", norm(kv * hd)))
        if variant in ("qwen3", "qwen3_dynamic", "qwen3_moe", "glm4_moe"):
            t.append((p + "self_attn.q_norm.weight", norm(hd)))
            t.append((p + "self_attn.k_norm.weight", norm(hd)))
        t.append((p + "self_attn.o_proj.weight", w(H, nh * hd, scale=big / np.sqrt(nh * hd))))
        t.append((p + "post_attention_layernorm.weight", norm(H)))
        if variant in MOE and is_moe_layer(variant, s, i):
            t += moe_weights(variant, s, p, w)
            continue
        t.append((p + "mlp.gate_proj.weight", w(I, H)))
        t.append((p + "mlp.up_proj.weight", w(I, H)))
        t.append((p + "mlp.down_proj.weight", w(H, I, scale=big / np.sqrt(I))))
    if variant in ("deepseek_v3", "glm4_moe"):
        # a multi-token-prediction layer (num_nextn_predict_layers 1) that decoding skips
        q = f"model.layers.{s['layers']}."
        t.append((q + "enorm.weight", norm(H)))
        t.append((q + "hnorm.weight", norm(H)))
        t.append((q + "eh_proj.weight", w(H, 2 * H)))
        t.append((q + "input_layernorm.weight", norm(H)))
    t.append(("model.norm.weight", norm(H)))
    if variant not in ("qwen2", "llama_tied"):
        t.append(("lm_head.weight", w(V, H)))
    return t


def make_tokenizer(vocab_size):
    """Byte-level BPE: 256 byte symbols, a few merges, specials at 256.."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    specials = ["<|bos|>", "<|eos|>", "<|eot|>"]
    added = []
    for i, sp in enumerate(specials):
        added.append({"id": 256 + i, "content": sp, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    merges = []
    nxt = 256 + len(specials)
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s")]:
        if nxt >= vocab_size:
            break
        merges.append(f"{a} {b}")
        vocab[a + b] = nxt
        nxt += 1
    for a in added:
        vocab[a["content"]] = a["id"]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [256], "tokens": ["<|bos|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def generate(variant, dtype, out, shards=1, dims=None, moe=None):
    seed = zlib.crc32(f"{variant}/{dtype}".encode())  # same weights every run
    rng = np.random.default_rng(seed)
    s = spec(variant, dims)
    if moe:
        s.update(experts=moe[0], topk=moe[1], moe_inter=moe[2], shared_inter=moe[2])
    os.makedirs(out, exist_ok=True)
    cfg = make_config(variant, s)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 256, "eos_token_id": [257, 258] if variant != "llama_tied" else 259}, f)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(make_tokenizer(s["vocab"]), f, ensure_ascii=False)
    tensors = make_weights(variant, s, rng)
    if shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype, {"format": "pt"})
        return
    per = (len(tensors) + shards - 1) // shards
    wm = {}
    for k in range(shards):
        fn = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        part = tensors[k * per:(k + 1) * per]
        write_safetensors(os.path.join(out, fn), part, dtype, {"format": "pt"})
        for name, _ in part:
            wm[name] = fn
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=1)


def main(argv):
    if len(argv) < 4 or argv[1] not in VARIANTS or argv[2] not in ALL_DTYPES:
        sys.stderr.write(__doc__)
        return 2
    shards, dims, moe = 1, None, None
    rest = argv[4:]
    while rest:
        if rest[0] == "--shards":
            shards = int(rest[1])
        elif rest[0] == "--dims":
            dims = [int(x) for x in rest[1].split(",")]
        elif rest[0] == "--moe":
            moe = [int(x) for x in rest[1].split(",")]
        else:
            sys.stderr.write(__doc__)
            return 2
        rest = rest[2:]
    generate(argv[1], argv[2], argv[3], shards, dims, moe)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
