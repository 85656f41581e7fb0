#!/usr/bin/python3
"""A "scripted" model for the tool-call tests: its greedy output is a fixed
text, so a test knows what the model answers.  Every layer's weights are
zero, so each position's hidden state is its own token's embedding; the
embedding is one-hot (hidden >= vocab) and lm_head row j holds a 1 at
column i when j follows i in the script: greedy decoding after the prompt's
last token walks the script.  The prompt of a chat ends with
"<|im_start|>assistant\\n", so the script starts at the byte "\\n"; every
other token is followed by <|im_end|>, the end of sequence.

The tokenizer is byte-level BPE without merges plus added tokens: ChatML's
<|im_start|> and <|im_end|> (special) and one token per piece of the script
(not special, so they decode to their text).  The chat template is
Qwen2.5's own (tests/runtime/templates/qwen2.5.jinja), which asks for
<tool_call> calls, or with --template NAME another real template of
tests/runtime/templates/ (minimax-m2.jinja: <minimax:tool_call> calls;
kimi-k2.jinja, whose generation prompt ends with "<|im_middle|>", so that
its script starts at the byte ">").

usage: mkscripted.py [--template NAME] OUTDIR PIECE...   (the script, after the prompt)
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "runtime"))
import gen_tiny  # noqa: E402


# the last byte of a template's generation prompt, where it is not "\n"
GEN_PROMPT_END = {"kimi-k2.jinja": ">", "deepseek-v3.1.jinja": ">"}


def main(argv):
    template = "qwen2.5.jinja"
    if len(argv) > 2 and argv[1] == "--template":
        template = argv[2]
        argv = argv[:1] + argv[3:]
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    out, pieces = argv[1], argv[2:]
    tok = gen_tiny.make_tokenizer(259)  # 256 bytes + <|bos|> <|eos|> <|eot|>, no merges
    v = tok["model"]["vocab"]
    added = tok["added_tokens"]

    def add(content, special):
        i = len(v)
        v[content] = i
        added.append({"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": special})
        return i
    im_start, im_end = add("<|im_start|>", True), add("<|im_end|>", True)
    ids = [add(p, False) for p in pieces]
    vocab = len(v)
    hidden = 8 * ((vocab + 7) // 8) + 8  # one-hot embeddings; 4 heads of hidden/4
    # the script: the generation prompt's last byte ("\n" or ">") -> pieces -> <|im_end|>
    nxt = {i: im_end for i in range(vocab)}
    chain = [ord(GEN_PROMPT_END.get(template, "\n"))] + ids + [im_end]
    for a, b in zip(chain, chain[1:]):
        nxt[a] = b
    embed = np.zeros((vocab, hidden), np.float32)
    embed[np.arange(vocab), np.arange(vocab)] = 1.0
    lm_head = np.zeros((vocab, hidden), np.float32)
    for i, j in nxt.items():
        lm_head[j, i] = 1.0
    inter, layers = 16, 1
    t = [("model.embed_tokens.weight", embed)]
    for L in range(layers):
        p = f"model.layers.{L}."
        t += [(p + "input_layernorm.weight", np.ones(hidden, np.float32)),
              (p + "post_attention_layernorm.weight", np.ones(hidden, np.float32))]
        for n in ("q", "k", "v", "o"):
            t.append((p + f"self_attn.{n}_proj.weight", np.zeros((hidden, hidden), np.float32)))
        t += [(p + "mlp.gate_proj.weight", np.zeros((inter, hidden), np.float32)),
              (p + "mlp.up_proj.weight", np.zeros((inter, hidden), np.float32)),
              (p + "mlp.down_proj.weight", np.zeros((hidden, inter), np.float32))]
    t += [("model.norm.weight", np.ones(hidden, np.float32)), ("lm_head.weight", lm_head)]
    os.makedirs(out, exist_ok=True)
    gen_tiny.write_safetensors(os.path.join(out, "model.safetensors"), t, "f32", {"format": "pt"})
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": 4,
           "num_key_value_heads": 4, "vocab_size": vocab, "max_position_embeddings": 4096,
           "rms_norm_eps": 1e-6, "hidden_act": "silu", "rope_theta": 10000.0, "tie_word_embeddings": False,
           "bos_token_id": 256, "eos_token_id": im_end, "torch_dtype": "float32"}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    json.dump({"eos_token_id": im_end}, open(os.path.join(out, "generation_config.json"), "w"))
    tok["post_processor"] = None  # ChatML adds no BOS
    json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False)
    tmpl = open(os.path.join(HERE, "..", "runtime", "templates", template), encoding="utf-8").read()
    json.dump({"bos_token": None, "eos_token": "<|im_end|>", "chat_template": tmpl, "model_max_length": 4096,
               "tokenizer_class": "PreTrainedTokenizerFast"},
              open(os.path.join(out, "tokenizer_config.json"), "w", encoding="utf-8"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
