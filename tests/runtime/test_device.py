#!/usr/bin/python3
"""agrun --device on the machine the tests run on.  TAP.

usage: test_device.py AGRUN cuda|nocuda
  cuda:   agrun was built with the CUDA path (-Dcuda=enabled or auto with nvcc)
  nocuda: built without it (-Dcuda=disabled, or auto without nvcc)

Without a usable GPU (the CI machines, this project's build hosts):
  --device cuda fails with exit 8 (the shared exit-code table's "device") and one stderr line;
  --device auto runs on the CPU and gives byte-identical output (text,
  greedy ids, JSON ids and logprobs, dumped logits) to --device cpu; in a
  CUDA build it adds one line "no usable CUDA device (...); ran on the CPU"
  on stderr, in a CPU-only build nothing.
With a GPU the fallback cases are skipped (tests/gpu/check.sh covers that
machine)."""
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

IDS = "256,72,101,108,108,111,44,32,119"


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


def main():
    agrun, kind = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="agrt-dev-")
    md = os.path.join(tmp, "m")
    gen_tiny.generate("llama", "bf16", md)
    n = 0
    fails = 0

    def ok(cond, what, skip=None):
        nonlocal n, fails
        n += 1
        if skip:
            print(f"ok {n} - {what} # SKIP {skip}")
            return
        fails += not cond
        print(f"{'ok' if cond else 'not ok'} {n} - {what}")

    print("1..12")
    p = run(agrun, md, "--raw", "--ids", IDS, "-n", "4", "--device", "cuda")
    gpu = p.returncode == 0
    lines = p.stderr.strip().splitlines()
    if gpu:
        ok(kind == "cuda", "--device cuda ran: a GPU is present")
    else:
        want = "no CUDA support" if kind == "nocuda" else "no usable CUDA device"
        ok(p.returncode == 8 and len(lines) == 1 and want in lines[0] and p.stdout == "",
           f"--device cuda without a GPU: exit {p.returncode} (want 8), stderr {lines}")
    skip = "a GPU is present" if gpu else None

    p = run(agrun, md, "--raw", "--ids", IDS, "-n", "4", "--device", "gpu")
    ok(p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, f"--device gpu is a usage error: exit {p.returncode}")

    def pair(*args):
        a = run(agrun, md, *args, "--device", "auto")
        c = run(agrun, md, *args, "--device", "cpu")
        return a, c

    def fallback_stderr(a):
        lines = a.stderr.strip().splitlines()
        if kind == "nocuda":
            return lines == []
        return len(lines) == 1 and lines[0].startswith("agrun: no usable CUDA device (") and \
            lines[0].endswith("); ran on the CPU")

    a, c = pair("--prompt", "the then", "-n", "8")
    ok(a.returncode == 0 and c.returncode == 0 and a.stdout == c.stdout and c.stderr == "",
       f"--prompt: auto output == cpu output ({a.stdout.strip()!r})", skip)
    ok(fallback_stderr(a), f"--device auto stderr in a {kind} build: {a.stderr.strip()!r}", skip)

    a, c = pair("--raw", "--ids", IDS, "-n", "8", "--json", "--top-k", "3")
    same = False
    if a.returncode == 0 and c.returncode == 0:
        ja, jc = json.loads(a.stdout), json.loads(c.stdout)
        same = ja["output_ids"] == jc["output_ids"] and ja["top_k"] == jc["top_k"] and \
            ja["backend"] == jc["backend"] and ja["backend"].startswith("cpu/") and ja["load_gbs"] == 0
    ok(same, "--json: auto == cpu (ids, top-k logprobs, backend cpu/*, load_gbs 0)", skip)

    la, lc = os.path.join(tmp, "a.bin"), os.path.join(tmp, "c.bin")
    pa = run(agrun, md, "--raw", "--ids", IDS, "--dump-logits", la, "--device", "auto")
    pc = run(agrun, md, "--raw", "--ids", IDS, "--dump-logits", lc, "--device", "cpu")
    same = pa.returncode == 0 and pc.returncode == 0 and open(la, "rb").read() == open(lc, "rb").read()
    ok(same, "--dump-logits: auto == cpu, byte for byte", skip)

    # an error after the load stays one line even when auto fell back
    p = run(agrun, md, "--raw", "--ids", "299,300", "--device", "auto")
    lines = p.stderr.strip().splitlines()
    ok(p.returncode == 2 and len(lines) == 1 and "out of range" in lines[0],
       f"id out of range under auto: exit {p.returncode}, one line: {lines}", skip)

    # default is auto
    d = run(agrun, md, "--prompt", "the then", "-n", "8")
    c = run(agrun, md, "--prompt", "the then", "-n", "8", "--device", "auto")
    ok(d.returncode == 0 and d.stdout == c.stdout and d.stderr == c.stderr, "no --device behaves as --device auto", skip)

    # models the CUDA path does not run: cuda refuses them by name, auto runs them on the CPU
    for v, why in [("glm4_moe", "mixture of experts"), ("deepseek_v3", "multi-head latent attention")]:
        mm = os.path.join(tmp, v)
        gen_tiny.generate(v, "bf16", mm)
        p = run(agrun, mm, "--raw", "--ids", IDS, "-n", "4", "--device", "cuda")
        lines = p.stderr.strip().splitlines()
        want = "no CUDA support" if kind == "nocuda" else f"the CUDA backend does not run this model ({why})"
        ok(p.returncode == 8 and len(lines) == 1 and want in lines[0] and p.stdout == "",
           f"{v}: --device cuda refuses it: exit {p.returncode} (want 8, device), stderr {lines}")
        a = run(agrun, mm, "--raw", "--ids", IDS, "-n", "4", "--device", "auto")
        c = run(agrun, mm, "--raw", "--ids", IDS, "-n", "4", "--device", "cpu")
        lines = a.stderr.strip().splitlines()
        if kind == "nocuda":
            note = lines == []
        elif gpu:
            note = lines == [f"agrun: the CUDA backend does not run this model ({why}); ran on the CPU"]
        else:
            note = len(lines) == 1 and lines[0].startswith("agrun: no usable CUDA device (")
        ok(a.returncode == 0 and c.returncode == 0 and a.stdout == c.stdout and note,
           f"{v}: --device auto runs it on the CPU and says why: {lines}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
