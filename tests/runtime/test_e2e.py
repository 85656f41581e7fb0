#!/usr/bin/python3
"""End-to-end: generate a tiny model (with tokenizer.json), run the library
API test on it, and agrun's --prompt/--json/--tokenize/--detokenize.  TAP.
usage: test_e2e.py AGRUN TEST_API"""
import json
import os
import shutil
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


def main():
    agrun, test_api = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="agrt-e2e-")
    md = os.path.join(tmp, "m")
    gen_tiny.generate("llama", "bf16", md)
    n = 0
    fails = 0

    def ok(cond, what):
        nonlocal n, fails
        n += 1
        fails += not cond
        print(f"{'ok' if cond else 'not ok'} {n} - {what}")

    print("1..23")
    p = subprocess.run([test_api, md], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        print("#   api: " + line)
    ok(p.returncode == 0, "library API test (test_api)")

    p = subprocess.run([agrun, md, "--tokenize", "the then<|eot|>"], capture_output=True, text=True)
    ids = p.stdout.split()
    # <|bos|> template, "t" "he" "Ġthe" "n", special token split out (checked with HF tokenizers)
    ok(p.returncode == 0 and ids == ["256", "116", "260", "261", "110", "258"], f"--tokenize: {p.stdout.strip()}")
    p = subprocess.run([agrun, md, "--detokenize", ",".join(ids)], capture_output=True, text=True)
    ok(p.returncode == 0 and p.stdout == "<|bos|>the then<|eot|>\n", f"--detokenize: {p.stdout.strip()!r}")
    p = subprocess.run([agrun, md, "--prompt", "hello there", "-n", "5", "--json", "--top-k", "3", "--no-eos"],
                       capture_output=True, text=True)
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    keys = {"prompt_ids", "output_ids", "text", "prefill_ms", "decode_tok_s", "top_k"}
    ok(p.returncode == 0 and keys <= set(j), "--json has the documented fields")
    ok(j.get("prompt_ids", [None])[0] == 256 and len(j.get("output_ids", [])) == 5 and
       all(len(s) == 3 for s in j.get("top_k", [])), "--json prompt has BOS, 5 outputs, 3 top-k per step")
    ok(all(s[0]["id"] == o for s, o in zip(j.get("top_k", []), j.get("output_ids", []))),
       "top-1 of each step is the emitted id")
    p2 = subprocess.run([agrun, md, "--detokenize", ",".join(map(str, j.get("output_ids", [0])))],
                        capture_output=True, text=True)
    ok(p2.stdout[:-1] == j.get("text"), "--json text equals detokenized output ids")
    p = subprocess.run([agrun, md, "--prompt", "hello there", "-n", "5", "--no-eos"], capture_output=True, text=True)
    ok(p.returncode == 0 and p.stdout[:-1] == j.get("text"), "plain output prints the generated text")
    p = subprocess.run([agrun, md, "--ids", ",".join(map(str, j.get("prompt_ids", [1]))), "-n", "5", "--no-eos",
                        "--json", "--threads", "1"], capture_output=True, text=True)
    ok(p.returncode == 0 and json.loads(p.stdout)["output_ids"] == j.get("output_ids"),
       "--ids with the same ids and one thread gives the same tokens")
    # EOS from generation_config.json: make the 3rd greedy token an EOS id
    out = j.get("output_ids", [0, 0, 0])
    gc = os.path.join(md, "generation_config.json")
    json.dump({"eos_token_id": [out[2]]}, open(gc, "w"))
    p = subprocess.run([agrun, md, "--prompt", "hello there", "-n", "5", "--json"], capture_output=True, text=True)
    jj = json.loads(p.stdout) if p.returncode == 0 else {}
    ok(jj.get("output_ids") == out[:out.index(out[2]) + 1] and jj.get("hit_eos") is True,
       f"stops at an EOS id from generation_config.json: {jj.get('output_ids')}")
    os.unlink(gc)
    c = json.load(open(os.path.join(md, "config.json")))
    c["eos_token_id"] = out[1]
    json.dump(c, open(os.path.join(md, "config.json"), "w"))
    p = subprocess.run([agrun, md, "--prompt", "hello there", "-n", "5", "--json"], capture_output=True, text=True)
    jj = json.loads(p.stdout) if p.returncode == 0 else {}
    ok(jj.get("output_ids") == out[:out.index(out[1]) + 1] and jj.get("hit_eos") is True,
       f"stops at an EOS id from config.json: {jj.get('output_ids')}")

    # health suite round on mixture-of-experts models: record, check passes,
    # and a routing change (one expert fewer per token) fails the check
    for v in ["mixtral", "qwen3_moe", "deepseek_v3", "glm4_moe"]:
        mm = os.path.join(tmp, v)
        gen_tiny.generate(v, "bf16", mm)
        suite = os.path.join(tmp, v + ".suite.json")
        p = subprocess.run([agrun, "record", mm, "--out", suite], capture_output=True, text=True)
        q = subprocess.run([agrun, "check", mm, "--suite", suite, "--json"], capture_output=True, text=True)
        files = sum(os.path.getsize(os.path.join(mm, f)) for f in os.listdir(mm) if f.endswith(".safetensors"))
        try:
            rep = json.loads(q.stdout)
            good = p.returncode == 0 and q.returncode == 0 and rep["pass"] is True
            wts = rep["weights"]
            # just read by the check: all of a tiny model is in the page cache
            mem = wts["mapped_bytes"] == files and 0 < wts["resident_bytes"] <= files
        except (ValueError, KeyError, TypeError):
            good = mem = False
            wts = None
        ok(good, f"{v}: agrun record, then check passes ({(p.stderr + q.stderr).strip()[:200]})")
        ok(mem, f"{v}: the check reports resident and mapped weight bytes: {wts} (files {files})")
        c = json.load(open(os.path.join(mm, "config.json")))
        c["num_experts_per_tok"] -= 1
        json.dump(c, open(os.path.join(mm, "config.json"), "w"))
        q = subprocess.run([agrun, "check", mm, "--suite", suite, "--json"], capture_output=True, text=True)
        try:
            bad = q.returncode != 0 and json.loads(q.stdout)["pass"] is False
        except (ValueError, KeyError):
            bad = False
        ok(bad, f"{v}: with num_experts_per_tok {c['num_experts_per_tok']} the check fails (exit {q.returncode})")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
