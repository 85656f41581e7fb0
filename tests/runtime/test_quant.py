#!/usr/bin/python3
"""Quantized checkpoints (issue 19): per format a tiny model made by
gen_quant.py (test-side packing written from the format descriptions, numpy
round-trip checked) runs through agrun and is compared with agrun on the
dequantized f32 copy: teacher-forced logits within REL_TOL of the scale and
identical greedy tokens, with the SIMD kernels this CPU picks, AVX2, generic C,
one thread, and a 300-token prompt (the token-block path).  Then hostile
quantized files are refused with exit 3 and a one-line error naming the
problem.  TAP output.

Each quantized model also goes through test_api (the library API test:
incremental decode against batched prefill, i.e. the one-token kernels
against the token-block ones, within 1e-5, exactly for GPTQ and AWQ on the
dense model, and the error paths).

usage: test_quant.py AGRUN TEST_API"""
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
try:
    import numpy as np
    import gen_quant
    from test_hostile import read_st, write_st
except ImportError as e:
    print(f"1..0 # SKIP {e}")
    sys.exit(77)

# the quantized run and the reference multiply the same f32 weights; only the
# order of the sums differs
REL_TOL = 2e-5
IDS = [256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 10, 200, 150, 3]
N_GEN = 12
D_ODD = [200, 328, 2, 4, 2, 300]   # not multiples of 128 (fp8 blocks) nor of the int4 groups; k/v rows 100
D_8 = [224, 352, 2, 4, 2, 300]     # AWQ/GPTQ: multiples of 8 and of group 32, not of 64 or 128
D_8O = [200, 360, 2, 5, 1, 300]    # AWQ/GPTQ: rows 200, 360, k/v 40: multiples of 8, not of 16; group 40
D_128 = [256, 384, 2, 4, 1, 300]   # AWQ/GPTQ group 128: repacked into rows at load (k/v rows 64)

CASES = [
    # (name, format, options, extra env, prompt length)
    ("fp8 block 128x128", "fp8", {"dims": D_ODD}, {}, len(IDS)),
    ("fp8 block 128x128 generic", "fp8", {"dims": D_ODD}, {"AGRT_SIMD": "generic"}, len(IDS)),
    ("fp8 block 128x128 T=300", "fp8", {"dims": D_ODD}, {}, 300),
    ("fp8 block 16x20 (partial, not x8)", "fp8", {"dims": D_ODD, "block": [16, 20]}, {"AGRT_SIMD": "avx2"}, 40),
    ("fp8 block 128x128 avx2", "fp8", {"dims": D_ODD}, {"AGRT_SIMD": "avx2"}, 40),
    # AVX-512 fp8 as on CPUs without VBMI or GFNI (the f16 route)
    ("fp8 block 128x128 AGRT_FP8_F16", "fp8", {"dims": D_ODD}, {"AGRT_FP8_F16": "1"}, 40),
    # group 128 and per channel: the AVX-512 kernels where the CPU has them (one partial group: 200 columns)
    ("ct int4 group 128 sym", "ct-int4", {"dims": D_ODD, "group": 128, "sym": True}, {}, len(IDS)),
    ("ct int4 group 128 asym T=300 (pairs)", "ct-int4", {"dims": D_ODD, "group": 128, "sym": False}, {}, 300),
    ("ct int4 group 128 asym avx2", "ct-int4", {"dims": D_ODD, "group": 128, "sym": False}, {"AGRT_SIMD": "avx2"},
     40),
    ("ct int4 group 32 sym", "ct-int4", {"dims": D_ODD, "group": 32, "sym": True}, {}, len(IDS)),
    ("ct int4 group 32 asym", "ct-int4", {"dims": D_ODD, "group": 32, "sym": False}, {}, len(IDS)),
    ("ct int4 group 32 asym T=300", "ct-int4", {"dims": D_ODD, "group": 32, "sym": False}, {"AGRT_THREADS": "1"},
     300),
    ("ct int4 group 32 asym f16 scales", "ct-int4", {"dims": D_ODD, "group": 32, "sym": False, "sdt": "f16"}, {},
     len(IDS)),
    ("ct int4 group 64 sym f32 scales", "ct-int4", {"dims": D_ODD, "group": 64, "sym": True, "sdt": "f32"}, {},
     len(IDS)),
    ("ct int4 group 20 asym generic", "ct-int4", {"dims": D_ODD, "group": 20, "sym": False},
     {"AGRT_SIMD": "generic"}, 40),
    ("ct int4 group 20 asym avx2", "ct-int4", {"dims": D_ODD, "group": 20, "sym": False}, {"AGRT_SIMD": "avx2"}, 40),
    ("ct int4 group 32 asym actorder (weight_g_idx)", "ct-int4",
     {"dims": D_ODD, "group": 32, "sym": False, "actorder": True}, {}, len(IDS)),
    ("ct int4 group 32 actorder generic", "ct-int4", {"dims": D_ODD, "group": 32, "sym": True, "actorder": True},
     {"AGRT_SIMD": "generic"}, 40),
    ("ct int4 channel asym (pairs)", "ct-int4", {"dims": D_ODD, "group": 0, "sym": False}, {}, len(IDS)),
    ("ct int4 mixed (a layer in ignore)", "ct-int4",
     {"dims": D_ODD, "group": 32, "sym": True, "ignore": ["re:.*layers\\.1\\.mlp\\.down_proj"]}, {}, len(IDS)),
    ("ct fp8 channel", "ct-fp8", {"dims": D_ODD, "strategy": "channel"}, {}, len(IDS)),
    ("ct fp8 tensor", "ct-fp8", {"dims": D_ODD, "strategy": "tensor"}, {"AGRT_SIMD": "generic"}, len(IDS)),
    ("awq group 32 (rows512)", "awq", {"dims": D_8, "group": 32}, {}, len(IDS)),
    ("awq group 32 (rows512) T=300", "awq", {"dims": D_8, "group": 32}, {}, 300),
    ("awq group 32 (rows512) generic", "awq", {"dims": D_8, "group": 32}, {"AGRT_SIMD": "generic"}, len(IDS)),
    ("gptq group 32 asym (rows512)", "gptq", {"dims": D_8, "group": 32}, {}, len(IDS)),
    ("gptq group 32 desc_act (rows512)", "gptq", {"dims": D_8, "group": 32, "desc_act": True}, {}, len(IDS)),
    ("gptq group 32 desc_act (rows512) T=300", "gptq", {"dims": D_8, "group": 32, "desc_act": True},
     {"AGRT_THREADS": "1"}, 300),
    ("gptq desc_act generic (rows512)", "gptq", {"dims": D_8, "group": 32, "desc_act": True},
     {"AGRT_SIMD": "generic"}, 40),
    ("gptq channel sym (rows)", "gptq", {"dims": D_8, "group": -1, "sym": True}, {}, len(IDS)),
    # groups the row kernels take: repacked at load into compressed-tensors' rows ("(rows)": agrun's
    # repacked_bytes must say so), and the same models kept in columns (AGRT_INT4_COLUMNS); "(pairs)":
    # asymmetric rows with f16/bf16 scales, whose (scale, zero * scale) pairs are made at load where the
    # kernels are AVX-512's (pair_bytes > 0 exactly there)
    ("gptq group 128 asym (rows) (pairs)", "gptq", {"dims": D_128, "group": 128}, {}, len(IDS)),
    ("gptq group 128 asym (rows) T=300 (pairs)", "gptq", {"dims": D_128, "group": 128}, {}, 300),
    ("gptq group 128 asym columns", "gptq", {"dims": D_128, "group": 128}, {"AGRT_INT4_COLUMNS": "1"}, len(IDS)),
    # act-order in rows: the columns sorted by group at load, x gathered into that order
    ("gptq group 128 desc_act (rows) (pairs)", "gptq", {"dims": D_128, "group": 128, "desc_act": True}, {},
     len(IDS)),
    ("gptq group 128 desc_act (rows) T=300 (pairs)", "gptq", {"dims": D_128, "group": 128, "desc_act": True}, {},
     300),
    ("gptq group 128 desc_act (rows) avx2", "gptq", {"dims": D_128, "group": 128, "desc_act": True},
     {"AGRT_SIMD": "avx2"}, 40),
    ("ct int4 group 128 asym actorder (rows) (pairs)", "ct-int4",
     {"dims": D_128, "group": 128, "sym": False, "actorder": True}, {}, len(IDS)),
    ("ct int4 group 128 sym actorder (rows) T=300", "ct-int4",
     {"dims": D_128, "group": 128, "sym": True, "actorder": True}, {}, 300),
    ("gptq group 128 desc_act columns", "gptq", {"dims": D_128, "group": 128, "desc_act": True},
     {"AGRT_INT4_COLUMNS": "1"}, len(IDS)),
    ("gptq group 128 asym (rows) avx2", "gptq", {"dims": D_128, "group": 128}, {"AGRT_SIMD": "avx2"}, 40),
    ("awq group 128 (rows) (pairs)", "awq", {"dims": D_128, "group": 128}, {}, len(IDS)),
    ("awq group 128 (rows) avx2", "awq", {"dims": D_128, "group": 128}, {"AGRT_SIMD": "avx2"}, 40),
    ("awq group 128 (rows) generic", "awq", {"dims": D_128, "group": 128}, {"AGRT_SIMD": "generic"}, 40),
    ("awq group 128 columns", "awq", {"dims": D_128, "group": 128}, {"AGRT_INT4_COLUMNS": "1"}, len(IDS)),
    # streamed (the weights, 0.8 MB, over 3/4 of the limit): the layers stay in their mapped columns
    ("gptq group 128 asym streamed", "gptq", {"dims": D_128, "group": 128}, {"_ARGS": "--max-memory 1M"}, len(IDS)),
    # the AVX-512 column kernels' half zmm (8 rows) and uneven passes, and the AVX2 code on the same
    ("awq group 40 (rows not x16)", "awq", {"dims": D_8O, "group": 40}, {}, len(IDS)),
    ("awq group 40 avx2", "awq", {"dims": D_8O, "group": 40}, {"AGRT_SIMD": "avx2"}, 40),
    ("gptq group 40 (rows not x16) T=300", "gptq", {"dims": D_8O, "group": 40}, {}, 300),
    ("gptq group 40 avx2", "gptq", {"dims": D_8O, "group": 40}, {"AGRT_SIMD": "avx2"}, 40),
    # MoE: experts (and attention) quantized, the routers kept
    ("qwen3_moe ct int4 experts", "ct-int4",
     {"variant": "qwen3_moe", "group": 16, "sym": False, "ignore": ["re:.*mlp\\.gate$"]}, {}, 60),
    ("mixtral fp8 experts", "fp8", {"variant": "mixtral", "block": [32, 32]}, {}, 60),
    ("qwen3_moe gptq experts", "gptq", {"variant": "qwen3_moe", "group": 8}, {}, 60),
    ("qwen3_moe gptq experts channel (rows)", "gptq", {"variant": "qwen3_moe", "group": -1, "sym": True}, {}, 60),
    # DeepSeek-V3 as its FP8 checkpoints: latent attention (kv_b_proj too) and experts in fp8 blocks
    ("deepseek_v3 fp8 (MLA, experts)", "fp8", {"variant": "deepseek_v3", "block": [16, 16]}, {}, 60),
    ("deepseek_v3 fp8 generic", "fp8", {"variant": "deepseek_v3", "block": [16, 16]}, {"AGRT_SIMD": "generic"}, 40),
]


def agrun_run(agrun, md, args, env):
    thr = ["--threads", env["AGRT_THREADS"]] if "AGRT_THREADS" in env else []
    return subprocess.run([agrun, md, "--raw"] + args + thr, capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=300)


def main():
    agrun, test_api = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="agrt-quant-")
    hostile = hostile_cases()
    print(f"1..{3 * len(CASES) + len(hostile) + 2}")
    n = failed = 0
    try:
        for name, fmt, opt, env, plen in CASES:
            opt = dict(opt)
            # _ARGS: more agrun arguments for the quantized model (not its f32 reference)
            xa = env.get("_ARGS", "").split()
            env = {k: v for k, v in env.items() if k != "_ARGS"}
            variant, dims = opt.pop("variant", "llama"), opt.pop("dims", None)
            md, ref = gen_quant.generate(fmt, os.path.join(tmp, f"m{n}"), variant, dims, **opt)
            ids = (IDS * (plen // len(IDS) + 1))[:plen]
            got = []
            for d in (md, ref):
                lf = os.path.join(d, "logits.bin")
                p = agrun_run(agrun, d, ["--ids", ",".join(map(str, ids)), "--dump-logits", lf] +
                              (xa if d == md else []), env)
                got.append(np.fromfile(lf, dtype="<f4").reshape(len(ids), -1) if p.returncode == 0 else p)
            n += 1
            if not isinstance(got[0], np.ndarray) or not isinstance(got[1], np.ndarray):
                bad = got[0] if not isinstance(got[0], np.ndarray) else got[1]
                print(f"not ok {n} - logits {name}: agrun exit {bad.returncode}: {bad.stderr.strip()}")
                failed += 1
            else:
                err = float(np.max(np.abs(got[0] - got[1])) / np.max(np.abs(got[1])))
                ok = got[0].shape == got[1].shape and err <= REL_TOL
                failed += not ok
                print(f"{'ok' if ok else 'not ok'} {n} - logits {name} T={plen} {env or ''}: rel err {err:.1e}"
                      f" (tol {REL_TOL:.0e})")
            toks, rep, pairs, be = [], [], [], ""
            for d in (md, ref):
                p = agrun_run(agrun, d, ["--ids", ",".join(map(str, IDS[:6])), "-n", str(N_GEN), "--json"] +
                              (xa if d == md else []), env)
                j = json.loads(p.stdout) if p.returncode == 0 else {}
                toks.append(j["output_ids"] if j else p.stderr.strip())
                rep.append(j.get("repacked_bytes", -1))
                pairs.append(j.get("pair_bytes", -1))
                be = be or j.get("backend", "")
            n += 1
            # "(rows512)": groups of 32 or 64, in rows where the kernels are AVX-512's
            want_rep = ("(rows)" in name or ("(rows512)" in name and be in ("cpu/avx512", "cpu/amx"))) and \
                "AGRT_INT4_COLUMNS" not in env
            want_pairs = "(pairs)" in name and be in ("cpu/avx512", "cpu/amx")
            ok = toks[0] == toks[1] and isinstance(toks[0], list) and len(toks[0]) > 0 and \
                (rep[0] > 0) == want_rep and rep[1] == 0 and (pairs[0] > 0) == want_pairs and pairs[1] == 0
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {n} - greedy {name} {env or ''}: {toks[0]}, repacked {rep[0]} bytes, "
                  f"pairs {pairs[0]} bytes ({be})" +
                  ("" if ok else f" want {toks[1]}, repacked {'> 0' if want_rep else 0}, "
                                 f"pairs {'> 0' if want_pairs else 0}"))
            p = subprocess.run([test_api, md], capture_output=True, text=True, env=dict(os.environ, **env),
                               timeout=300)
            n += 1
            inc = [ln for ln in p.stdout.splitlines() if "incremental vs batched" in ln]
            # GPTQ, AWQ (dense model): each token's sums in one order for every T, so exactly equal
            exact = fmt in ("awq", "gptq") and variant == "llama"
            ok = p.returncode == 0 and (not exact or (inc and inc[0].endswith(" max rel err 0")))
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {n} - test_api {name} {env or ''}: "
                  f"{inc[0].lstrip('# ') if inc else ''}" +
                  ("" if ok else " " + " | ".join(ln for ln in p.stdout.splitlines() if ln.startswith("not ok"))))
            shutil.rmtree(md, ignore_errors=True)
            shutil.rmtree(ref, ignore_errors=True)
        # the repack only where the copies take at most half of what the process may use: an AWQ model
        # whose copies take 15.8 MB, under RLIMIT_DATA 40 MB (repacked) and 25 MB (kept in columns,
        # still run): the same tokens
        # (AddressSanitizer's shadow memory alone exceeds such limits: skipped there)
        asan = "libasan" in subprocess.run(["ldd", agrun], capture_output=True, text=True).stdout
        md, _ = gen_quant.generate("awq", os.path.join(tmp, "room"), "llama", [1024, 4096, 2, 8, 2, 300],
                                   write_ref=False, group=128)
        outs = []
        for lim, want in ((40 << 20, True), (25 << 20, False)):
            if asan:
                n += 1
                print(f"ok {n} - awq under RLIMIT_DATA {lim >> 20} MiB # SKIP under AddressSanitizer")
                continue
            p = subprocess.run([agrun, md, "--raw", "--ids", "5,6,7", "-n", "4", "--json", "--threads", "1"],
                               capture_output=True, text=True, timeout=300,
                               preexec_fn=lambda lim=lim: resource.setrlimit(resource.RLIMIT_DATA, (lim, lim)))
            j = json.loads(p.stdout) if p.returncode == 0 else {}
            outs.append(j.get("output_ids"))
            n += 1
            ok = p.returncode == 0 and (j["repacked_bytes"] > 0) == want and outs[-1] == outs[0]
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {n} - awq under RLIMIT_DATA {lim >> 20} MiB: "
                  f"{'repacked' if want else 'kept in columns'}: exit {p.returncode}, "
                  f"repacked {j.get('repacked_bytes')} bytes, tokens {outs[-1]} {p.stderr.strip()[:200]}")
        shutil.rmtree(md, ignore_errors=True)
        for name, fmt, opt, mutate, want in hostile:
            md, ref = gen_quant.generate(fmt, os.path.join(tmp, f"h{n}"), "llama", opt.pop("dims"), **opt)
            mutate(md)
            p = agrun_run(agrun, md, ["--ids", "256,72", "-n", "2"], {})
            n += 1
            lines = p.stderr.strip().splitlines()
            ok = p.returncode == 3 and len(lines) == 1 and want in lines[0]
            failed += not ok
            print(f"{'ok' if ok else 'not ok'} {n} - hostile {name}: exit {p.returncode}: {p.stderr.strip()[:300]}"
                  + ("" if ok else f" (want exit 3 and '{want}')"))
            shutil.rmtree(md, ignore_errors=True)
            shutil.rmtree(ref, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def edit_tensor(md, name, fn):
    """fn(header entry, data bytes view of the tensor) -> (new header entry, new bytes) or None (in place)"""
    path = os.path.join(md, "model.safetensors")
    hdr, data = read_st(path)
    data = bytearray(data)
    ent = hdr[name]
    b, e = ent["data_offsets"]
    res = fn(ent, memoryview(data)[b:e])
    if res is None:
        write_st(path, hdr, data)
        return
    ent2, nb = res
    delta = len(nb) - (e - b)
    for k, v in hdr.items():
        if k != "__metadata__" and v["data_offsets"][0] >= e:
            v["data_offsets"] = [v["data_offsets"][0] + delta, v["data_offsets"][1] + delta]
    ent2["data_offsets"] = [b, b + len(nb)]
    hdr[name] = ent2
    write_st(path, hdr, data[:b] + nb + data[e:])


def edit_config(md, fn):
    p = os.path.join(md, "config.json")
    c = json.load(open(p))
    fn(c)
    json.dump(c, open(p, "w"))


def hostile_cases():
    L0 = "model.layers.0."
    c = []

    def scale_shape(md):
        # [2,2] -> [2,1]: the scale tensor of the wrong shape
        edit_tensor(md, L0 + "mlp.up_proj.weight_scale_inv",
                    lambda ent, d: (dict(ent, shape=[ent["shape"][0], ent["shape"][1] - 1]),
                                    bytes(d[:len(d) // ent["shape"][1] * (ent["shape"][1] - 1)])))
    c.append(("fp8 scale_inv of the wrong shape", "fp8", {"dims": D_ODD}, scale_shape, "weight_scale_inv' has shape"))

    def nan_scale(md):
        def f(ent, d):
            d[0:4] = struct.pack("<f", float("nan"))
        edit_tensor(md, L0 + "self_attn.k_proj.weight_scale_inv", f)
    c.append(("fp8 NaN scale", "fp8", {"dims": D_ODD}, nan_scale, "is NaN"))

    def fp8_no_qc(md):
        edit_config(md, lambda cfg: cfg.pop("quantization_config"))
    c.append(("fp8 weights without quantization_config", "fp8", {"dims": D_ODD}, fp8_no_qc,
              "no quantization_config"))

    def packed_short(md):
        edit_tensor(md, L0 + "self_attn.o_proj.weight_packed",
                    lambda ent, d: (dict(ent, shape=[ent["shape"][0], ent["shape"][1] - 1]),
                                    bytes(d[:len(d) - 4 * ent["shape"][0]])))
    c.append(("ct packed tensor too short", "ct-int4", {"dims": D_ODD, "group": 32, "sym": False}, packed_short,
              "weight_packed' has shape"))

    def ct_nan(md):
        def f(ent, d):
            d[6:8] = b"\xc0\x7f"  # bf16 NaN
        edit_tensor(md, L0 + "mlp.gate_proj.weight_scale", f)
    c.append(("ct NaN scale", "ct-int4", {"dims": D_ODD, "group": 32, "sym": True}, ct_nan, "is NaN"))

    def ct_group(md):
        edit_config(md, lambda cfg: cfg["quantization_config"]["config_groups"]["group_0"]["weights"].update(
            group_size=64))
    c.append(("ct group size the scales do not match", "ct-int4", {"dims": D_ODD, "group": 32, "sym": True},
              ct_group, "weight_scale' has shape"))

    def ct_zp(md):
        edit_tensor(md, L0 + "self_attn.k_proj.weight_zero_point",
                    lambda ent, d: (dict(ent, shape=[ent["shape"][0] - 1, ent["shape"][1]]),
                                    bytes(d[:len(d) - 4 * ent["shape"][1]])))
    c.append(("ct zero point of the wrong shape", "ct-int4", {"dims": D_ODD, "group": 32, "sym": False}, ct_zp,
              "weight_zero_point' has shape"))

    def ct_unquant(md):
        edit_config(md, lambda cfg: cfg["quantization_config"].update(ignore=[]))
    c.append(("ct targeted module stored unquantized (lm_head not ignored)", "ct-int4",
              {"dims": D_ODD, "group": 32, "sym": True}, ct_unquant, "stored unquantized"))

    def ct_shape(md):
        def f(ent, d):
            d[0:8] = struct.pack("<q", 7)
        edit_tensor(md, L0 + "self_attn.q_proj.weight_shape", f)
    c.append(("ct weight_shape disagrees", "ct-int4", {"dims": D_ODD, "group": 32, "sym": True}, ct_shape, "says [7,"))

    def awq_group(md):
        edit_config(md, lambda cfg: cfg["quantization_config"].update(group_size=48))
    c.append(("awq group size that does not divide", "awq", {"dims": D_8, "group": 32}, awq_group, "does not divide"))

    def awq_short(md):
        edit_tensor(md, L0 + "mlp.down_proj.qweight",
                    lambda ent, d: (dict(ent, shape=[ent["shape"][0] - 1, ent["shape"][1]]),
                                    bytes(d[:len(d) - 4 * ent["shape"][1]])))
    c.append(("awq qweight too short", "awq", {"dims": D_8, "group": 32}, awq_short, "qweight' has shape"))

    def gptq_gidx(md):
        def f(ent, d):
            d[4:8] = struct.pack("<i", 1000)
        edit_tensor(md, L0 + "mlp.up_proj.g_idx", f)
    c.append(("gptq g_idx naming no group", "gptq", {"dims": D_8, "group": 32, "desc_act": True}, gptq_gidx,
              "has group 1000"))

    def gptq_scales(md):
        edit_tensor(md, L0 + "self_attn.v_proj.scales",
                    lambda ent, d: (dict(ent, shape=[ent["shape"][0] - 1, ent["shape"][1]]),
                                    bytes(d[:len(d) - 2 * ent["shape"][1]])))
    c.append(("gptq scales of the wrong shape", "gptq", {"dims": D_8, "group": 32}, gptq_scales, "scales' has shape"))

    def gptq_inf(md):
        def f(ent, d):
            d[2:4] = b"\x00\x7c"  # f16 +inf
        edit_tensor(md, L0 + "self_attn.q_proj.scales", f)
    c.append(("gptq infinite scale", "gptq", {"dims": D_8, "group": 32}, gptq_inf, "is infinite"))

    def bad_method(md):
        edit_config(md, lambda cfg: cfg["quantization_config"].update(quant_method="bitsandbytes"))
    c.append(("unknown quant_method", "awq", {"dims": D_8, "group": 32}, bad_method, "bitsandbytes"))
    return c


if __name__ == "__main__":
    sys.exit(main())
