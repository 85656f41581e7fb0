#!/usr/bin/python3
"""A tiny model for the serving tests: tests/runtime/gen_tiny.py's weights, a
vocabulary the size of the tokenizer (every id decodes), byte tokens >= 0x80
renamed to ASCII text ("x200") so greedy output is printable ASCII and equal
text means equal tokens, and tokenizer_config.json with a real chat template
(Qwen2.5's ChatML, without its tool branches, opened with {{ bos_token }} as
Llama's and Mistral's templates are, since this tokenizer's post-processor
adds BOS as theirs do) and bos/eos tokens. The
output rows of the special tokens (bos, eos, eot) are zero: their logit is 0
while the largest of the 264 random others is positive, so greedy decoding
never ends early (every run is max_tokens long, finish_reason "length").

usage: mkmodel.py OUTDIR [VARIANT] [--dims hidden,inter,layers,heads,kv_heads]
"""
import json
import os
import struct
import subprocess
import sys

CHATML = (
    "{{- bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n")
VOCAB = 256 + 3 + 8  # gen_tiny's tokenizer: bytes, 3 specials, 8 merges


def zero_rows(path, name, rows):
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        t = h.get(name) or h["model.embed_tokens.weight"]  # tied embeddings
        assert t["dtype"] == "BF16"
        row = t["shape"][1] * 2
        for r in rows:
            f.seek(8 + n + t["data_offsets"][0] + r * row)
            f.write(b"\0" * row)


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    out, variant, dims = argv[1], "llama", "64,96,2,4,2"
    rest = argv[2:]
    if rest and not rest[0].startswith("--"):
        variant, rest = rest[0], rest[1:]
    if len(rest) == 2 and rest[0] == "--dims":
        dims = rest[1]
    here = os.path.dirname(os.path.abspath(__file__))
    gen = os.path.join(here, "..", "runtime", "gen_tiny.py")
    subprocess.run([sys.executable, gen, variant, "bf16", out, "--dims", f"{dims},{VOCAB}"],
                   check=True, stdout=subprocess.DEVNULL)
    zero_rows(os.path.join(out, "model.safetensors"), "lm_head.weight", range(256, 259))
    p = os.path.join(out, "tokenizer.json")
    t = json.load(open(p, encoding="utf-8"))
    v = t["model"]["vocab"]
    assert len(v) == VOCAB, len(v)
    inv = {i: s for s, i in v.items()}
    # (also NUL: agrun --json ends its "text" at a NUL byte)
    for i in [0] + list(range(128, 256)):
        del v[inv[i]]
        v[f"x{i}"] = i
    json.dump(t, open(p, "w", encoding="utf-8"), ensure_ascii=False)
    cfg = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "chat_template": CHATML,
           "model_max_length": 512, "tokenizer_class": "PreTrainedTokenizerFast"}
    json.dump(cfg, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
