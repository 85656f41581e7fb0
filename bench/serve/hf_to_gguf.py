#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Convert a small Llama-family model directory (config.json, safetensors,
byte-level BPE tokenizer.json) to GGUF with llama.cpp's own gguf-py, for the
side-by-side benchmark only (bench/serve/bench.sh).  llama.cpp's
convert_hf_to_gguf.py needs torch and transformers, which are not packaged
offline; this converter needs numpy (python3-numpy) and LLAMA_DIR/gguf-py.

Written from the GGUF key and tensor naming of llama.cpp's llama
architecture: Q and K rows are permuted from Hugging Face's rotate-half
layout to GGML's interleaved RoPE, as llama.cpp's converter does.

usage: hf_to_gguf.py LLAMA_DIR MODEL_DIR OUT.gguf [q4_0|q8_0]
With a type, every matrix (the embedding too) is quantized to it by gguf-py's
own quantizer (what llama-quantize makes of them, bench/runtime/quant.sh).
"""
import json
import os
import struct
import sys

import numpy as np

llama_dir, model_dir, out = sys.argv[1:4]
sys.path.insert(0, os.path.join(llama_dir, "gguf-py"))
import gguf  # noqa: E402
import gguf.quants  # noqa: E402

QTYPE = {"q4_0": gguf.GGMLQuantizationType.Q4_0, "q8_0": gguf.GGMLQuantizationType.Q8_0}.get(
    sys.argv[4] if len(sys.argv) > 4 else "")
if len(sys.argv) > 4 and QTYPE is None:
    sys.exit(f"hf_to_gguf: type {sys.argv[4]}: q4_0 or q8_0")

cfg = json.load(open(os.path.join(model_dir, "config.json")))
if cfg.get("architectures", [""])[0] not in ("LlamaForCausalLM", "MistralForCausalLM"):
    sys.exit(f"hf_to_gguf: {model_dir}: only Llama-style models are converted here")

DT = {"BF16": (np.uint16, gguf.GGMLQuantizationType.BF16), "F16": (np.float16, gguf.GGMLQuantizationType.F16),
      "F32": (np.float32, gguf.GGMLQuantizationType.F32)}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        npdt, _ = DT[t["dtype"]]
        yield name, t["dtype"], mm[base + a:base + b].view(npdt).reshape(t["shape"])


tensors = {}
files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
for fn in files:
    for name, dt, arr in read_safetensors(os.path.join(model_dir, fn)):
        tensors[name] = (dt, arr)

H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
nkv = cfg.get("num_key_value_heads", nh)
hd = cfg.get("head_dim", H // nh)


def permute(w, heads):
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


w = gguf.GGUFWriter(out, "llama")
w.add_name(os.path.basename(os.path.normpath(model_dir)))
w.add_context_length(cfg.get("max_position_embeddings", 2048))
w.add_embedding_length(H)
w.add_block_count(cfg["num_hidden_layers"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(nh)
w.add_head_count_kv(nkv)
w.add_rope_dimension_count(hd)
w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
w.add_vocab_size(cfg["vocab_size"])

tok = json.load(open(os.path.join(model_dir, "tokenizer.json")))
vocab = tok["model"]["vocab"]
added = {a["content"]: a for a in tok.get("added_tokens", [])}
V = cfg["vocab_size"]
names = ["<unused%d>" % i for i in range(V)]
types = [gguf.TokenType.UNUSED] * V
for s, i in vocab.items():
    if i < V:
        names[i], types[i] = s, gguf.TokenType.NORMAL
for s, a in added.items():
    if a["id"] < V:
        names[a["id"]] = s
        types[a["id"]] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
merges = tok["model"]["merges"]
merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("gpt-2")
w.add_token_list(names)
w.add_token_types(types)
w.add_token_merges(merges)
if isinstance(cfg.get("bos_token_id"), int):
    w.add_bos_token_id(cfg["bos_token_id"])
eos = cfg.get("eos_token_id")
if isinstance(eos, list):
    eos = eos[0]
if isinstance(eos, int):
    w.add_eos_token_id(eos)
w.add_add_bos_token(False)

MAP = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
       "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
       "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
for name, (dt, arr) in tensors.items():
    if name == "model.embed_tokens.weight":
        gname = "token_embd.weight"
    elif name == "model.norm.weight":
        gname = "output_norm.weight"
    elif name == "lm_head.weight":
        gname = "output.weight"
    else:
        parts = name.split(".")  # model.layers.N.<module>.<proj>.weight
        mod = ".".join(parts[3:-1])
        if parts[:2] != ["model", "layers"] or mod not in MAP:
            sys.exit(f"hf_to_gguf: unexpected tensor {name}")
        gname = f"blk.{parts[2]}.{MAP[mod]}.{parts[-1]}"
    a = np.ascontiguousarray(arr)
    if name.endswith("q_proj.weight"):
        a = np.ascontiguousarray(permute(a, nh))
    elif name.endswith("k_proj.weight"):
        a = np.ascontiguousarray(permute(a, nkv))
    if a.ndim == 1:  # norms in f32, as llama.cpp's converter writes them
        a = (a.astype(np.uint32) << 16).view(np.float32) if dt == "BF16" else a.astype(np.float32)
        w.add_tensor(gname, a)
    elif QTYPE is not None:
        f = (a.astype(np.uint32) << 16).view(np.float32) if dt == "BF16" else a.astype(np.float32)
        w.add_tensor(gname, gguf.quants.quantize(f, QTYPE), raw_dtype=QTYPE)
    else:
        w.add_tensor(gname, a, raw_dtype=DT[dt][1])
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"hf_to_gguf: wrote {out}")
