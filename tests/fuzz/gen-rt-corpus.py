#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Seeds for the runtime harnesses (fuzz-safetensors, fuzz-config,
fuzz-tokenizer, fuzz-health) in tests/fuzz/corpus/, from the runtime tests'
tiny-model generator (tests/runtime/gen_tiny.py) scaled down to the model the
harnesses embed: hidden 8, intermediate 16, 1 layer, 2 heads (1 KV head,
head_dim 4), vocab 16.  Inputs named regress-* are kept (never regenerated).

    tests/fuzz/gen-rt-corpus.py          (needs /usr/bin/python3 and numpy)
"""
import copy
import glob
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "runtime"))
import gen_quant  # noqa: E402
import gen_tiny  # noqa: E402

C = os.path.join(HERE, "corpus")
DIMS = dict(hidden=8, inter=16, layers=1, heads=2, kv_heads=1, vocab=16, head_dim=4, maxpos=64)
MAX_SEED = 200 * 1024


def clean(name):
    d = os.path.join(C, name)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "*")):
        if not os.path.basename(f).startswith("regress-"):
            os.unlink(f)
    return d


def put(d, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= MAX_SEED, name
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def config(variant):
    """gen_tiny's config of one variant at DIMS, ids in range of vocab 16."""
    s = gen_tiny.spec(variant)
    s.update(DIMS)
    if variant not in ("qwen3", "qwen3_dynamic", "qwen3_moe"):
        s["head_dim"] = None
    # mixture of experts at the harness model's sizes: 2 experts of 16, top-1;
    # MLA with q lora 8, kv lora 8, nope/rope/v 4 (fuzz-config.c's tensors)
    s.update(experts=2, topk=1, moe_inter=16, shared_inter=16, q_lora=8, kv_lora=8, nope=4, rope=4, vhd=4)
    c = gen_tiny.make_config(variant, s)
    if variant in gen_tiny.MOE:
        c.update({k: v for k, v in dict(mlp_only_layers=[], decoder_sparse_step=1, n_group=1, topk_group=1,
                                         first_k_dense_replace=0).items() if k in c})
    if variant == "qwen3_dynamic":
        c["max_position_embeddings"] = 4
    c["bos_token_id"], c["eos_token_id"] = 1, [2, 3] if variant == "llama_tied" else 2
    if variant in ("qwen3", "qwen3_dynamic", "qwen3_moe"):
        c["head_dim"] = 4
    if variant == "llama3":
        c["rope_scaling"]["original_max_position_embeddings"] = 8
    if variant == "mistral":
        c["sliding_window"] = 1
    return c


def safetensors_bytes(tensors, dtype, metadata=None):
    """gen_tiny.write_safetensors() into memory."""
    path = os.path.join(C, ".tmp.safetensors")
    gen_tiny.write_safetensors(path, tensors, dtype, metadata)
    data = open(path, "rb").read()
    os.unlink(path)
    return data


def raw_safetensors(header, blob=b"", pad=True):
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def quant_seeds():
    """fuzz-quant: a selector byte (fuzz-quant.c's configs[]) + model.safetensors
    of the harness model with 2 KV heads, quantized by gen_quant.py"""
    d = clean("quant")
    s = gen_tiny.spec("llama")
    s.update(DIMS)
    s.update(kv_heads=2, head_dim=None)
    tensors = gen_tiny.make_weights("llama", s, np.random.default_rng(19))
    forms = [("fp8", dict(block=(4, 4))), ("ct-int4", dict(group=4, sym=False)), ("ct-fp8", dict(strategy="channel")),
             ("awq", dict(group=4)), ("gptq", dict(group=4, desc_act=True))]
    path = os.path.join(C, ".tmp.safetensors")
    for sel, (fmt, opt) in enumerate(forms):
        qt, _ = gen_quant.quantize(fmt, tensors, np.random.default_rng(sel), **opt)
        gen_quant.write_st(path, qt)
        data = open(path, "rb").read()
        os.unlink(path)
        put(d, "%d-%s.bin" % (sel, fmt), bytes([sel]) + data)
        # the same files under another format's config: every check refuses them
        put(d, "%d-%s-as-%d.bin" % (sel, fmt, (sel + 1) % 5), bytes([(sel + 1) % 5]) + data)


def main():
    quant_seeds()
    # The model the fuzz-safetensors harness loads (its config.json is the
    # llama one below, compiled in).
    d = clean("safetensors")
    s = gen_tiny.spec("llama")
    s.update(DIMS)
    s["head_dim"] = None
    rng = np.random.default_rng(8)
    tensors = gen_tiny.make_weights("llama", s, rng)
    for dt in ["f32", "f16", "bf16", "mixed"]:
        put(d, "tiny-%s.safetensors" % dt, safetensors_bytes(tensors, dt, {"format": "pt"}))
    good = safetensors_bytes(tensors, "f32")
    hlen = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8:8 + hlen])
    blob = good[8 + hlen:]
    put(d, "truncated-header.safetensors", good[:8 + hlen // 2])
    put(d, "truncated-data.safetensors", good[:-5])
    put(d, "huge-header-len.safetensors", struct.pack("<Q", 1 << 62) + good[8:])
    put(d, "header-len-past-eof.safetensors", struct.pack("<Q", len(good)) + good[8:])
    put(d, "tiny-file.safetensors", good[:7])
    h = copy.deepcopy(header)
    names = sorted(k for k in h if k != "__metadata__")
    h[names[1]]["data_offsets"] = list(h[names[0]]["data_offsets"])  # overlap
    put(d, "overlap.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    h[names[2]]["dtype"] = "F64"
    put(d, "bad-dtype-f64.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    h[names[2]]["dtype"] = "Q4_K"
    put(d, "bad-dtype-unknown.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    h[names[3]]["shape"] = [1 << 40, 1 << 40]
    put(d, "huge-shape.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    h[names[3]]["data_offsets"] = [2 ** 63 - 1, 2 ** 64 - 1]
    put(d, "huge-offsets.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    emb = h["model.embed_tokens.weight"]
    emb["shape"] = [emb["shape"][1], emb["shape"][0]]  # transposed: same bytes, wrong shape
    put(d, "transposed.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    h["model.embed_tokens.weight"]["shape"] = [16 * 8]  # 1-D
    put(d, "flat-embed.safetensors", raw_safetensors(h, blob))
    h = copy.deepcopy(header)
    del h["lm_head.weight"]
    put(d, "missing-tensor.safetensors", raw_safetensors(h, blob))
    put(d, "not-json.safetensors", struct.pack("<Q", 8) + b"{\"a\":[1,")
    put(d, "empty-object.safetensors", struct.pack("<Q", 2) + b"{}")
    h = dict(header)
    h["__metadata__"] = {"format": 5}
    put(d, "bad-metadata.safetensors", raw_safetensors(h, blob))
    # NaN and Inf weights load; the forward pass must not care.
    nan = [(n, np.full_like(a, np.nan if "embed" in n else np.inf)) for n, a in tensors]
    put(d, "nan-weights.safetensors", safetensors_bytes(nan, "bf16"))

    # config.json variants for the fixed superset model in fuzz-config.c
    d = clean("config")
    for v in gen_tiny.VARIANTS:
        put(d, "%s.json" % v, json.dumps(config(v), indent=1))
    c = config("llama")
    bad = {
        "bos-out-of-range": dict(c, bos_token_id=16),
        "head-dim-odd": dict(c, head_dim=3),
        "gqa-mismatch": dict(c, num_key_value_heads=3),
        "no-hidden": {k: v for k, v in c.items() if k != "hidden_size"},
        "rope-linear": dict(c, rope_scaling={"type": "linear", "factor": 2.0}),
        "rope-yarn": dict(c, rope_scaling={"rope_type": "yarn", "factor": 2.0}),
        "max-pos-1": dict(c, max_position_embeddings=1),
        "eos-list-9": dict(c, eos_token_id=list(range(9))),
        "theta-nan-string": dict(c, rope_theta="nan"),
        "arch-two": dict(c, architectures=["LlamaForCausalLM", "MistralForCausalLM"]),
        "huge-dims": dict(c, hidden_size=65536, intermediate_size=1 << 20, vocab_size=1 << 22, num_hidden_layers=1024),
        "rope-dynamic-factor-0": dict(c, rope_scaling={"type": "dynamic", "factor": 0}),
        "rope-yarn-mscale": dict(c, rope_scaling={"rope_type": "yarn", "factor": 4.0, "mscale": 1.0,
                                                  "mscale_all_dim": 0.5, "original_max_position_embeddings": 16}),
    }
    # hostile mixture-of-experts and MLA configs
    mx, qm, ds = config("mixtral"), config("qwen2_moe"), config("deepseek_v3")
    bad.update({
        "moe-topk-above-experts": dict(mx, num_experts_per_tok=3),
        "moe-zero-experts": dict(qm, num_experts=0),
        "moe-experts-huge": dict(qm, num_experts=1 << 20, num_experts_per_tok=64),
        "moe-mlp-only-out-of-range": dict(qm, mlp_only_layers=[1]),
        "moe-sparse-step-0": dict(qm, decoder_sparse_step=0),
        "moe-shape-mismatch": dict(qm, moe_intermediate_size=15),
        "mla-groups-not-dividing": dict(ds, n_group=3),
        "mla-topk-group-above-groups": dict(ds, topk_group=2),
        "mla-kv-lora-0": dict(ds, kv_lora_rank=0),
        "mla-q-lora-0": dict(ds, q_lora_rank=0),
        "mla-latent-too-wide": dict(ds, kv_lora_rank=1024),
        "mla-rope-odd": dict(ds, qk_rope_head_dim=3),
        "mla-shape-mismatch": dict(ds, v_head_dim=5),
    })
    for k, v in bad.items():
        put(d, "%s.json" % k, json.dumps(v, indent=1))
    put(d, "not-json.json", "{\"architectures\": [")
    put(d, "dup-key.json", '{"hidden_size": 8, "hidden_size": 8}')

    # tokenizers: gen_tiny's byte-level BPE at two sizes, and the committed
    # real tokenizers (zstd) cut down to their first ids
    d = clean("tokenizer")
    put(d, "bytelevel-bpe.json", json.dumps(gen_tiny.make_tokenizer(300), ensure_ascii=False))
    put(d, "bytelevel-bpe-no-merges.json", json.dumps(gen_tiny.make_tokenizer(259), ensure_ascii=False))
    for z in sorted(glob.glob(os.path.join(ROOT, "tests", "runtime", "data", "*.tokenizer.json.zst"))):
        name = os.path.basename(z)[:-len(".tokenizer.json.zst")]
        tok = json.loads(subprocess.run(["zstd", "-dcq", z], check=True, stdout=subprocess.PIPE).stdout)
        put(d, name + "-small.json", json.dumps(shrink(tok, 400), ensure_ascii=False))
    put(d, "not-json.json", "{\"model\": {")
    t = gen_tiny.make_tokenizer(300)
    t["model"]["merges"].append("x y")  # merge of unknown symbols
    put(d, "bad-merge.json", json.dumps(t, ensure_ascii=False))

    # health suites as agrun record writes them (vocab 300: gen_tiny's)
    d = clean("health")
    put(d, "suite.json", json.dumps(suite(), indent=1))
    s2 = suite()
    s2["prompts"][0]["topk"] = s2["prompts"][0]["topk"][:-1]
    put(d, "steps-mismatch.json", json.dumps(s2))
    s2 = suite()
    s2["prompts"] = s2["prompts"] * 65
    put(d, "too-many-prompts.json", json.dumps(s2))
    s2 = suite()
    s2["tolerances"] = {"logit_margin": -1, "kl_max": "x"}
    s2["prompts"][0]["ids"] = [299, 300]
    put(d, "bad-ids.json", json.dumps(s2))
    put(d, "not-a-suite.json", '{"agkit_health_suite": "1", "prompts": []}')
    print("seeds:", sum(len(files) for _, _, files in os.walk(C)), "files")


def shrink(tok, n):
    """Keep ids < n of the model vocab, merges among them, and the added tokens."""
    m = tok["model"]
    if isinstance(m.get("vocab"), dict):
        m["vocab"] = {k: v for k, v in m["vocab"].items() if v < n}
        keep = set(m["vocab"])
        merges = []
        for mg in m.get("merges", []):
            a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
            if a in keep and b in keep and a + b in keep:
                merges.append(mg)
        m["merges"] = merges
        base = len(m["vocab"])
        added = []
        for i, a in enumerate(tok.get("added_tokens") or []):
            if a["id"] >= n:
                a = dict(a, id=base + i)
            added.append(a)
        tok["added_tokens"] = added[:8]
        ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
        pp = tok.get("post_processor")
        if pp and pp.get("type") == "TemplateProcessing":
            for k, sp in list(pp.get("special_tokens", {}).items()):
                if k in ids:
                    sp["ids"] = [ids[k]]
                else:
                    del pp["special_tokens"][k]
            for key in ("single", "pair"):
                pp[key] = [e for e in pp.get(key, []) if "SpecialToken" not in e or e["SpecialToken"]["id"] in ids]
    return tok


def suite():
    prompts = []
    for i, (name, text) in enumerate([("facts", "The capital of France is"), ("code", "def f(n):\n")]):
        ids = [256] + [ord(ch) % 256 for ch in text][:6]
        out = [32 + i, 116, 104]
        steps = [[[o, -0.1], [o + 1, -2.5], [o + 2, -3.0]] for o in out]
        prompts.append({"name": name, "text": text, "add_special": True, "ids": ids, "output_ids": out,
                        "output_text": " th", "topk": steps})
    return {"agkit_health_suite": 1,
            "model": {"arch": "LlamaForCausalLM", "vocab": 300, "n_params": 100000, "weight_bytes": 400000},
            "recorded_on": {"device": "cpu/avx2", "threads": 2},
            "tolerances": {"logit_margin": 1.0, "kl_max": 0.01, "top_k": 3},
            "recorded": {"ttft_ms": 1.5, "decode_tok_s": 900.0},
            "budgets": {"ttft_ms": 1015.0, "decode_tok_s": 90.0},
            "prompts": prompts}


if __name__ == "__main__":
    main()
