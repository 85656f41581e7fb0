#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Chat template corpus against python3-jinja2 (TAP).

Every tests/runtime/templates/*.jinja x conversations/*.json is rendered by
render_ref.py (jinja2 with transformers' settings) and by
`agrun MODEL_DIR --render-chat FILE`; the outputs must be byte-identical,
and when the reference raises, agrun must fail (non-zero, one line on
stderr, nothing on stdout).  A template's model directory is built in a temp
dir with tokenizer_config.json (bos/eos below) and chat_template.jinja.
Exits 77 when python3-jinja2 is missing.

usage: test_templates.py AGRUN [TEMPLATE_DIR]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# bos/eos as the models' tokenizer_config.json declare them (AddedToken
# objects for some, to exercise that form)
TOKENS = {
    "llama-3.1": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.2": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama-3.3": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2.5": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "gemma-2": ({"content": "<bos>", "lstrip": False}, "<eos>"),
    "gemma-3": ({"content": "<bos>", "lstrip": False}, "<eos>"),
    "mistral-nemo": ("<s>", "</s>"),
    "mistral-small-3.1": ("<s>", "</s>"),
    "phi-3.5": ("<s>", "<|endoftext|>"),
    "phi-4-mini": ("<|endoftext|>", "<|endoftext|>"),
    "deepseek-v3": ({"content": "<｜begin▁of▁sentence｜>"}, {"content": "<｜end▁of▁sentence｜>"}),
    "deepseek-v3.1": ({"content": "<｜begin▁of▁sentence｜>"}, {"content": "<｜end▁of▁sentence｜>"}),
    "kimi-k2": ("[BOS]", "[EOS]"),
    "glm-4.5": (None, "<|endoftext|>"),
    "minimax-m2": ("]~!b[", "[e~["),
}


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    agrun = sys.argv[1]
    tdir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "templates")
    try:
        import jinja2  # noqa: F401
    except ImportError:
        print("1..0 # SKIP python3-jinja2 not installed")
        return 77
    templates = sorted(f for f in os.listdir(tdir) if f.endswith(".jinja"))
    convs = sorted(f for f in os.listdir(os.path.join(tdir, "conversations")) if f.endswith(".json"))
    cases = [(t, c) for t in templates for c in convs]
    print("1..%d" % len(cases))
    failed = 0
    raised = 0
    work = tempfile.mkdtemp(prefix="agkit-tpl-")
    try:
        for i, (t, c) in enumerate(cases, 1):
            name = t[: -len(".jinja")]
            mdir = os.path.join(work, name)
            if not os.path.isdir(mdir):
                os.mkdir(mdir)
                bos, eos = TOKENS.get(name, ("<s>", "</s>"))
                cfg = {"model_max_length": 4096}
                if bos is not None:
                    cfg["bos_token"] = bos
                if eos is not None:
                    cfg["eos_token"] = eos
                with open(os.path.join(mdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                    json.dump(cfg, f, ensure_ascii=False)
                shutil.copy(os.path.join(tdir, t), os.path.join(mdir, "chat_template.jinja"))
            conv = os.path.join(tdir, "conversations", c)
            ref = subprocess.run([sys.executable, os.path.join(HERE, "render_ref.py"), mdir, conv],
                                 capture_output=True)
            got = subprocess.run([agrun, mdir, "--render-chat", conv], capture_output=True)
            desc = "%s x %s" % (name, c[:-5])
            if ref.returncode != 0:
                raised += 1
                err = got.stderr.decode("utf-8", "replace")
                if got.returncode != 0 and got.stdout == b"" and err.count("\n") == 1:
                    print("ok %d - %s (both refuse: %s)" % (i, desc, err.strip()[:100]))
                else:
                    failed += 1
                    print("not ok %d - %s: reference raised (%s) but agrun rc=%d stderr=%r" %
                          (i, desc, ref.stderr.decode().strip()[:200], got.returncode, err[:200]))
                continue
            if got.returncode == 0 and got.stdout == ref.stdout:
                print("ok %d - %s (%d bytes)" % (i, desc, len(got.stdout)))
                continue
            failed += 1
            print("not ok %d - %s: agrun rc=%d %s" % (i, desc, got.returncode,
                                                      got.stderr.decode("utf-8", "replace").strip()[:300]))
            a, b = ref.stdout, got.stdout
            k = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
            print("#   first difference at byte %d of %d/%d" % (k, len(a), len(b)))
            print("#   reference: %r" % a[max(0, k - 60):k + 60])
            print("#   agrun:     %r" % b[max(0, k - 60):k + 60])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("# %d cases, %d failed, %d where the reference raises" % (len(cases), failed, raised))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
