#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A tiny Llama-shaped model directory for the demo: safetensors (bf16),
config.json, generation_config.json, tokenizer.json.  Deterministic."""
import json, os, struct, sys
import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(42)
dim, hidden, layers, heads, kv, vocab = 64, 128, 2, 4, 2, 256
hd = dim // heads
shapes = {"model.embed_tokens.weight": (vocab, dim), "model.norm.weight": (dim,), "lm_head.weight": (vocab, dim)}
for i in range(layers):
    p = f"model.layers.{i}."
    shapes.update({p + "input_layernorm.weight": (dim,), p + "post_attention_layernorm.weight": (dim,),
                   p + "self_attn.q_proj.weight": (heads * hd, dim), p + "self_attn.k_proj.weight": (kv * hd, dim),
                   p + "self_attn.v_proj.weight": (kv * hd, dim), p + "self_attn.o_proj.weight": (dim, heads * hd),
                   p + "mlp.gate_proj.weight": (hidden, dim), p + "mlp.up_proj.weight": (hidden, dim),
                   p + "mlp.down_proj.weight": (dim, hidden)})
header, blobs, off = {}, [], 0
for name in sorted(shapes):
    a = rng.normal(0, 0.02, shapes[name]).astype(np.float32)
    if name.endswith("norm.weight"):
        a = np.ones(shapes[name], np.float32)
    bf16 = (a.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    header[name] = {"dtype": "BF16", "shape": list(shapes[name]), "data_offsets": [off, off + len(bf16)]}
    blobs.append(bf16)
    off += len(bf16)
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
           "intermediate_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "vocab_size": vocab, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "max_position_embeddings": 256, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16"}, open(os.path.join(out, "config.json"), "w"), indent=1)
json.dump({"bos_token_id": 1, "eos_token_id": 2}, open(os.path.join(out, "generation_config.json"), "w"))
vocab_map = {f"<0x{i:02X}>": i for i in range(256)}
json.dump({"version": "1.0", "model": {"type": "BPE", "vocab": vocab_map, "merges": [], "byte_fallback": True},
           "added_tokens": []}, open(os.path.join(out, "tokenizer.json"), "w"))
