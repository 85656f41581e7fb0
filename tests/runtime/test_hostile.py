#!/usr/bin/python3
"""Hostile and broken model directories must be refused with one clear line
on stderr and the documented exit code (2 usage, 3 invalid model files,
4 I/O error), never a crash or a hang.  TAP output.
usage: test_hostile.py AGRUN"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
try:
    import gen_tiny
except ImportError as e:
    print(f"1..0 # SKIP {e}")
    sys.exit(77)


def read_st(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_raw(path, header_bytes, data, hlen=None):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes) if hlen is None else hlen))
        f.write(header_bytes)
        f.write(data)


def write_st(path, hdr, data):
    write_raw(path, json.dumps(hdr).encode(), data)


def main():
    agrun = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="agrt-hostile-")
    base = os.path.join(tmp, "base")
    gen_tiny.generate("qwen2", "bf16", base)
    st = os.path.join(base, "model.safetensors")
    hdr0, data0 = read_st(st)
    moe_base = os.path.join(tmp, "moe")
    gen_tiny.generate("qwen2_moe", "bf16", moe_base)
    ds_base = os.path.join(tmp, "ds")
    gen_tiny.generate("deepseek_v3", "bf16", ds_base)
    cases = []

    def case(name, code, mutate, args=None, want=None, src=base):
        cases.append((name, code, mutate, args, want, src))

    def st_case(name, fn, want=None):
        def m(d):
            h = json.loads(json.dumps(hdr0))
            res = fn(h, bytearray(data0), os.path.join(d, "model.safetensors"))
            if isinstance(res, tuple):
                write_st(os.path.join(d, "model.safetensors"), *res)
        case(name, 3, m, want=want)

    first = sorted((k for k in hdr0 if k != "__metadata__"), key=lambda k: hdr0[k]["data_offsets"][0])
    t0, t1 = first[0], first[1]

    st_case("header length over 100 MB",
            lambda h, d, p: write_raw(p, json.dumps(h).encode(), d, hlen=100_000_001), "100 MB")
    st_case("header length past end of file",
            lambda h, d, p: write_raw(p, json.dumps(h).encode(), d, hlen=len(json.dumps(h)) + len(d) + 1))
    st_case("header length 2^64-1", lambda h, d, p: write_raw(p, b"{}", b"", hlen=2**64 - 1))
    st_case("header not JSON", lambda h, d, p: write_raw(p, b"{not json at all", bytes(d)))
    st_case("header invalid UTF-8", lambda h, d, p: write_raw(p, b'{"\xff\xfe": 1}', bytes(d)))
    st_case("header is an array", lambda h, d, p: write_raw(p, b"[1,2,3]", bytes(d)))
    st_case("file shorter than 8 bytes", lambda h, d, p: open(p, "wb").write(b"\x01\x02"))
    st_case("empty file", lambda h, d, p: open(p, "wb").close())

    def overlap(h, d, p):
        h[t1]["data_offsets"] = [h[t0]["data_offsets"][0], h[t0]["data_offsets"][0] + (
            h[t1]["data_offsets"][1] - h[t1]["data_offsets"][0])]
        return h, d
    st_case("overlapping offsets", overlap, "overlap")

    def gap(h, d, p):
        for k in h:
            if k != "__metadata__":
                b, e = h[k]["data_offsets"]
                if b > 0:
                    h[k]["data_offsets"] = [b + 2, e + 2]
        return h, bytes(2) + bytes(d)
    st_case("gap before first tensor", gap)
    st_case("trailing bytes after data", lambda h, d, p: (h, bytes(d) + b"xx"))
    st_case("data section truncated", lambda h, d, p: (h, bytes(d[:-10])))

    def shape_bytes(h, d, p):
        h[t0]["shape"] = [h[t0]["shape"][0] + 1] + h[t0]["shape"][1:]
        return h, d
    st_case("byte size != dtype x shape", shape_bytes, "does not match")

    def huge_shape(h, d, p):
        h[t0]["shape"] = [2**40, 2**40]
        return h, d
    st_case("shape product overflow", huge_shape)

    def neg_off(h, d, p):
        h[t0]["data_offsets"] = [-8, h[t0]["data_offsets"][1]]
        return h, d
    st_case("negative offset", neg_off)

    def i64(h, d, p):
        h[t0]["dtype"] = "I64"
        n = 1
        for s in h[t0]["shape"]:
            n *= s
        h[t0]["shape"] = [n // 4]  # same byte count, 8-byte elements
        return h, d
    st_case("unsupported dtype I64", i64, "I64")

    def bogus_dtype(h, d, p):
        h[t0]["dtype"] = "Q4_K"
        return h, d
    st_case("unknown dtype", bogus_dtype, "Q4_K")

    def dup_key(h, d, p):
        s = json.dumps(h)
        s = s[:-1] + ', "%s": %s}' % (t0, json.dumps(h[t0]))
        write_raw(p, s.encode(), bytes(d))
    st_case("duplicate tensor name", dup_key)

    def missing(h, d, p):
        name = "model.layers.1.mlp.up_proj.weight"
        b, e = h[name]["data_offsets"]
        del h[name]
        for k in h:
            if k != "__metadata__" and h[k]["data_offsets"][0] >= e:
                h[k]["data_offsets"] = [h[k]["data_offsets"][0] - (e - b), h[k]["data_offsets"][1] - (e - b)]
        return h, bytes(d[:b]) + bytes(d[e:])
    st_case("missing tensor", missing, "up_proj")

    def wrong_shape(h, d, p):
        name = "model.layers.0.self_attn.k_proj.weight"
        h[name]["shape"] = h[name]["shape"][::-1]
        return h, d
    st_case("transposed k_proj", wrong_shape, "k_proj")

    def bad_meta(h, d, p):
        h["__metadata__"] = {"format": 5}
        return h, d
    st_case("__metadata__ value not a string", bad_meta)

    def cfg_case(name, edit, code=3, want=None, src=base):
        def m(d):
            c = json.load(open(os.path.join(d, "config.json")))
            edit(c)
            json.dump(c, open(os.path.join(d, "config.json"), "w"))
        case(name, code, m, want=want, src=src)

    # mixture of experts (a Qwen2-MoE directory: 8 experts, top-3, shared expert, layer 2 dense)
    def moe_case(name, edit, want=None):
        cfg_case(name, edit, want=want, src=moe_base)
    moe_case("moe top-k larger than the experts", lambda c: c.update(num_experts_per_tok=9), "num_experts_per_tok")
    moe_case("moe top-k zero", lambda c: c.update(num_experts_per_tok=0), "num_experts_per_tok")
    moe_case("moe zero experts", lambda c: c.update(num_experts=0), "num_experts")
    moe_case("moe experts beyond the router", lambda c: c.update(num_experts=9), "mlp.gate.weight")
    moe_case("moe experts huge", lambda c: c.update(num_experts=1 << 30), "num_experts")
    moe_case("moe expert shape mismatch", lambda c: c.update(moe_intermediate_size=47), "experts.0.gate_proj")
    moe_case("moe shared expert shape mismatch", lambda c: c.update(shared_expert_intermediate_size=81),
             "shared_expert.gate_proj")
    moe_case("moe mlp_only_layers out of range", lambda c: c.update(mlp_only_layers=[4]), "mlp_only_layers")
    moe_case("moe mlp_only_layers not a list", lambda c: c.update(mlp_only_layers=2), "mlp_only_layers")
    moe_case("moe decoder_sparse_step zero", lambda c: c.update(decoder_sparse_step=0), "decoder_sparse_step")
    moe_case("moe dense layer without dense weights", lambda c: c.update(mlp_only_layers=[1]), "layers.1.mlp.gate_proj")
    moe_case("moe norm_topk_prob not a boolean", lambda c: c.update(norm_topk_prob="yes"), "norm_topk_prob")

    # DeepSeek-V3 (MLA, 8 experts in 4 groups, top-3)
    def ds_case(name, edit, want=None):
        cfg_case(name, edit, want=want, src=ds_base)
    ds_case("mla groups do not divide the experts", lambda c: c.update(n_group=3), "n_group")
    ds_case("mla topk_group above n_group", lambda c: c.update(topk_group=5), "topk_group")
    ds_case("mla top-k beyond the kept groups", lambda c: c.update(topk_group=1), "num_experts_per_tok")
    ds_case("mla top-k larger than the experts", lambda c: c.update(num_experts_per_tok=9), "num_experts_per_tok")
    ds_case("mla zero experts", lambda c: c.update(n_routed_experts=0), "n_routed_experts")
    ds_case("mla kv_lora_rank zero", lambda c: c.update(kv_lora_rank=0), "kv_lora_rank")
    ds_case("mla q_lora_rank zero", lambda c: c.update(q_lora_rank=0), "q_lora_rank")
    ds_case("mla odd rope dims", lambda c: c.update(qk_rope_head_dim=7), "qk_rope_head_dim")
    ds_case("mla latent too wide", lambda c: c.update(kv_lora_rank=1020), "kv_lora_rank")
    ds_case("mla kv_b shape mismatch", lambda c: c.update(v_head_dim=13), "kv_b_proj")
    ds_case("mla q_b shape mismatch", lambda c: c.update(qk_nope_head_dim=15), "q_b_proj")
    ds_case("mla routed_scaling_factor negative", lambda c: c.update(routed_scaling_factor=-1),
            "routed_scaling_factor")
    ds_case("mla q lora null but no q_proj", lambda c: c.update(q_lora_rank=None), "q_proj")
    cfg_case("partial rotary outside GLM", lambda c: c.update(partial_rotary_factor=0.5), want="partial_rotary_factor")
    glm_base = os.path.join(tmp, "glm")
    gen_tiny.generate("glm4_moe", "bf16", glm_base)
    cfg_case("glm partial rotary gives odd dims", lambda c: c.update(partial_rotary_factor=0.125),
             want="partial_rotary_factor", src=glm_base)
    cfg_case("glm partial rotary above 1", lambda c: c.update(partial_rotary_factor=1.5),
             want="partial_rotary_factor", src=glm_base)
    mm_base = os.path.join(tmp, "minimax")
    gen_tiny.generate("minimax_m2", "bf16", mm_base)
    cfg_case("minimax rotary_dim disagrees", lambda c: c.update(rotary_dim=24), want="rotary_dim", src=mm_base)
    cfg_case("minimax top-k larger than the experts", lambda c: c.update(num_experts_per_tok=9),
             want="num_experts_per_tok", src=mm_base)
    cfg_case("minimax full-width k_norm shape", lambda c: c.update(num_key_value_heads=4), want="k_proj", src=mm_base)
    cfg_case("glm groups do not divide the experts", lambda c: c.update(n_group=3), want="n_group", src=glm_base)
    cfg_case("glm first_k_dense_replace 0: layer 0 has no router", lambda c: c.update(first_k_dense_replace=0),
             want="layers.0.mlp.gate.weight", src=glm_base)

    cfg_case("unsupported architecture", lambda c: c.update(architectures=["GPT2LMHeadModel"]), want="GPT2LMHeadModel")
    cfg_case("hidden_size huge", lambda c: c.update(hidden_size=1 << 40), want="hidden_size")
    cfg_case("negative vocab", lambda c: c.update(vocab_size=-5), want="vocab_size")
    cfg_case("heads not multiple of kv heads", lambda c: c.update(num_key_value_heads=3))
    cfg_case("odd head_dim", lambda c: c.update(head_dim=15))
    cfg_case("hidden_size is a string", lambda c: c.update(hidden_size="64"))
    cfg_case("rope scaling longrope", lambda c: c.update(rope_scaling={"rope_type": "longrope", "factor": 4.0}),
             want="longrope")
    cfg_case("yarn without factor", lambda c: c.update(rope_scaling={"rope_type": "yarn"}), want="factor")
    cfg_case("yarn beta_fast negative", lambda c: c.update(rope_scaling={"rope_type": "yarn", "factor": 2.0, "beta_fast": -1}),
             want="yarn")
    cfg_case("hidden_act gelu", lambda c: c.update(hidden_act="gelu"), want="gelu")
    cfg_case("layers beyond tensors", lambda c: c.update(num_hidden_layers=3), want="layers.2")
    cfg_case("shape mismatch via config", lambda c: c.update(intermediate_size=97))
    cfg_case("eos id out of range", lambda c: c.update(eos_token_id=10**6))
    case("config.json not JSON", 3, lambda d: open(os.path.join(d, "config.json"), "w").write("{oops"))
    case("config.json missing", 4, lambda d: os.unlink(os.path.join(d, "config.json")))
    case("generation_config.json broken", 3,
         lambda d: open(os.path.join(d, "generation_config.json"), "w").write("[]"))
    case("no weights", 4, lambda d: os.unlink(st))

    def shard_escape(d):
        os.rename(os.path.join(d, "model.safetensors"), os.path.join(d, "a.safetensors"))
        json.dump({"weight_map": {k: "../a.safetensors" for k in hdr0 if k != "__metadata__"}},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"))
    case("shard path escapes the directory", 3, shard_escape)

    def shard_missing(d):
        os.unlink(os.path.join(d, "model.safetensors"))
        json.dump({"weight_map": {k: "nope.safetensors" for k in hdr0 if k != "__metadata__"}},
                  open(os.path.join(d, "model.safetensors.index.json"), "w"))
    case("shard file missing", 4, shard_missing)

    def shard_wrong(d):
        os.rename(os.path.join(d, "model.safetensors"), os.path.join(d, "a.safetensors"))
        open(os.path.join(d, "b.safetensors"), "wb").write(struct.pack("<Q", 2) + b"{}")
        wm = {k: "a.safetensors" for k in hdr0 if k != "__metadata__"}
        wm[t0] = "b.safetensors"
        json.dump({"weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
    case("index names the wrong shard", 3, shard_wrong)

    case("tokenizer.json not JSON", 3, lambda d: open(os.path.join(d, "tokenizer.json"), "w").write("{"),
         args=["--prompt", "hi"])

    def tok_wordpiece(d):
        t = json.load(open(os.path.join(d, "tokenizer.json")))
        t["model"]["type"] = "WordPiece"
        json.dump(t, open(os.path.join(d, "tokenizer.json"), "w"))
    case("tokenizer model WordPiece", 3, tok_wordpiece, args=["--prompt", "hi"], want="WordPiece")

    def tok_badmerge(d):
        t = json.load(open(os.path.join(d, "tokenizer.json")))
        t["model"]["merges"].append("zz qq")
        json.dump(t, open(os.path.join(d, "tokenizer.json"), "w"))
    case("tokenizer merge of unknown tokens", 3, tok_badmerge, args=["--tokenize", "hi"])

    def tok_badregex(d):
        t = json.load(open(os.path.join(d, "tokenizer.json")))
        t["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated",
                              "invert": False}
        json.dump(t, open(os.path.join(d, "tokenizer.json"), "w"))
    case("tokenizer regex does not compile", 3, tok_badregex, args=["--tokenize", "hi"])
    def tok_edit(name, fn, want=None):
        def m(d):
            t = json.load(open(os.path.join(d, "tokenizer.json")))
            fn(t)
            json.dump(t, open(os.path.join(d, "tokenizer.json"), "w"))
        case(name, 3, m, args=["--tokenize", "hi"], want=want)

    tok_edit("tokenizer vocab id huge", lambda t: t["model"]["vocab"].update({"zz": 50_000_000}))
    tok_edit("tokenizer id used twice", lambda t: t["model"]["vocab"].update({"zz": 65}), "two different")
    tok_edit("tokenizer empty added token", lambda t: t["added_tokens"].append(
        {"id": 259, "content": "", "special": True}))
    tok_edit("tokenizer unknown normalizer", lambda t: t.update(normalizer={"type": "BertNormalizer"}),
             "BertNormalizer")
    tok_edit("tokenizer unknown decoder", lambda t: t.update(decoder={"type": "WordPiece"}), "WordPiece")
    tok_edit("tokenizer template names unknown token", lambda t: t.update(post_processor={
        "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}],
        "special_tokens": {}}), "<nope>")
    case("token id out of range", 2, lambda d: None, args=["--ids", "1,99999"])
    case("ids not numbers", 2, lambda d: None, args=["--ids", "1,x"])
    case("no mode given", 2, lambda d: None, args=[])
    case("model dir missing", 4, lambda d: shutil.rmtree(d), args=["--ids", "1,2"])
    case("prompt longer than context", 2, lambda d: None, args=["--ids", ",".join(["5"] * 600)])

    print(f"1..{len(cases)}")
    failed = 0
    for i, (name, code, mutate, args, want, src) in enumerate(cases, 1):
        d = os.path.join(tmp, f"c{i}")
        shutil.copytree(src, d)
        st = os.path.join(d, "model.safetensors")
        mutate(d)
        argv = [agrun, d] + (args if args is not None else ["--ids", "256,72,101", "-n", "2"])
        try:
            p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=60)
            rc, err = p.returncode, p.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, err = "timeout", ""
        lines = err.splitlines()
        ok = rc == code and (len(lines) == 1 or (code == 2 and not args and len(lines) >= 1)) and \
            (want is None or want in err)
        failed += not ok
        print(f"{'ok' if ok else 'not ok'} {i} - {name}: exit {rc} (want {code})")
        print(f"#   {lines[0] if lines else '(no stderr)'}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
