#!/usr/bin/python3
"""The CUDA backend as a plugin loaded at run time (issue 17).  TAP.

usage: test_plugin.py AGRUN AGSERVE PLUGIN

agrun and agserve carry no CUDA library in their NEEDED list, so they start
on a CPU-only host; the plugin (libagrt-cuda.so) does.  Whatever keeps the
plugin from working (absent, a relative AGRT_CUDA_PLUGIN, writable by others,
not an agkit plugin, libcudart missing on the host, no GPU), --device auto
runs on the CPU with output identical to --device cpu and says why in one
line, and --device cuda fails with exit 8 (device) and that reason.  The libcudart
case hides the toolkit's library directory in a private mount namespace."""
import os
import re
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

n = 0
fails = 0


def ok(cond, what, skip=None):
    global n, fails
    n += 1
    if skip:
        print(f"ok {n} - {what} # SKIP {skip}")
        return
    fails += not cond
    print(f"{'ok' if cond else 'not ok'} {n} - {what}")


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def main():
    agrun, agserve, plugin = sys.argv[1:4]
    plugin = os.path.abspath(plugin)
    if not shutil.which("readelf"):
        print("1..0 # SKIP readelf not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="agrt-plugin-")
    try:
        return run_checks(agrun, agserve, plugin, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_checks(agrun, agserve, plugin, tmp):
    cudalibs = ("libcudart", "libcublas", "libcuda.")
    for tool in (agrun, agserve):
        libs = needed(tool)
        ok(libs and not any(l.startswith(cudalibs) for l in libs),
           f"{os.path.basename(tool)} needs no CUDA library: {libs}")
    pl = needed(plugin)
    ok(any(l.startswith("libcudart") for l in pl) and any(l.startswith("libcublas") for l in pl),
       f"the plugin carries the CUDA libraries: {pl}")
    syms = subprocess.run(["nm", "-D", "--defined-only", plugin], capture_output=True, text=True).stdout
    ok(re.search(r" T agrt_dev_plugin$", syms, re.M) is not None, "the plugin exports agrt_dev_plugin")

    md = os.path.join(tmp, "m")
    gen_tiny.generate("llama", "bf16", md)
    args = [md, "--prompt", "the then", "-n", "8"]
    cpu = subprocess.run([agrun, *args, "--device", "cpu"], capture_output=True, text=True)
    ok(cpu.returncode == 0 and cpu.stdout and cpu.stderr == "", "--device cpu runs and says nothing")

    def case(what, plugin_env, want, prefix=()):
        env = dict(os.environ)
        env.pop("AGRT_CUDA_PLUGIN", None)
        if plugin_env is not None:
            env["AGRT_CUDA_PLUGIN"] = plugin_env
        a = subprocess.run([*prefix, agrun, *args, "--device", "auto"], capture_output=True, text=True, env=env)
        lines = a.stderr.strip().splitlines()
        ok(a.returncode == 0 and a.stdout == cpu.stdout and len(lines) == 1 and want in lines[0]
           and lines[0].endswith("ran on the CPU"),
           f"{what}: --device auto runs on the CPU, same output, one note: {lines}")
        c = subprocess.run([*prefix, agrun, *args, "--device", "cuda"], capture_output=True, text=True, env=env)
        lines = c.stderr.strip().splitlines()
        ok(c.returncode == 8 and c.stdout == "" and len(lines) == 1 and want in lines[0],
           f"{what}: --device cuda exits 8 with the reason: exit {c.returncode}, {lines}")

    case("plugin absent", os.path.join(tmp, "none", "libagrt-cuda.so"), "the CUDA plugin is not installed")
    case("relative AGRT_CUDA_PLUGIN", "libagrt-cuda.so", "is not an absolute path")
    loose = os.path.join(tmp, "loose.so")
    shutil.copy(plugin, loose)
    os.chmod(loose, 0o666)
    case("plugin writable by others", loose, "writable by no one else")
    notours = os.path.join(tmp, "libz-copy.so")
    libz = next((p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1")
                 if os.path.exists(p)), None)
    if libz:
        shutil.copy(libz, notours)
        os.chmod(notours, 0o644)
        case("a library that is not an agkit plugin", notours, "is not an agkit plugin")
    else:
        ok(True, "not-a-plugin case", "no libz.so.1 to stand in")
        ok(True, "not-a-plugin case", "no libz.so.1 to stand in")

    # libcudart missing on the host: hide the directory the plugin finds it in
    ldd = subprocess.run(["ldd", plugin], capture_output=True, text=True).stdout
    m = re.search(r"libcudart\.so[.\d]* => (\S+)", ldd)
    unshare = shutil.which("unshare")
    skip = None
    if not m:
        skip = "ldd does not resolve libcudart for the plugin"
    elif not unshare or subprocess.run([unshare, "-m", "true"], capture_output=True).returncode != 0:
        skip = "unshare -m not permitted here"
    if skip:
        ok(True, "libcudart absent", skip)
        ok(True, "libcudart absent", skip)
    else:
        libdir = os.path.dirname(os.path.realpath(m.group(1)))
        wrap = os.path.join(tmp, "nocudart.sh")
        with open(wrap, "w") as f:
            f.write('#!/bin/sh\nmount -t tmpfs none "$1" && shift && exec "$@"\n')
        os.chmod(wrap, 0o755)
        case("libcudart absent", plugin, "cannot be loaded", prefix=(unshare, "-m", wrap, libdir))

    # the real plugin on this host: without a GPU it reports that, with one it runs
    env = dict(os.environ, AGRT_CUDA_PLUGIN=plugin)
    c = subprocess.run([agrun, *args, "--device", "cuda"], capture_output=True, text=True, env=env)
    if c.returncode == 0:
        ok(True, "real plugin without a GPU", "a GPU is present (tests/gpu/check.sh covers it)")
        ok(True, "real plugin without a GPU", "a GPU is present")
    else:
        case("real plugin, no usable GPU", plugin, "no usable CUDA device")
    print(f"1..{n}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
