#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Test inputs for tests/sbom/sbom.sh, and what an SBOM of them must list.

mkinputs.py image OUTDIR EXPECTED.json [--huge-db] [--rpm]
    An OCI image layout (gzip layers) holding a real dpkg status (stanzas of a
    few packages installed on this machine, copied from /var/lib/dpkg/status),
    an apk installed database, Python dist-info/egg-info metadata, an
    os-release and, in later layers, whiteouts that delete a package database
    entry, a dist-info directory and (opaque) a whole site-packages.  The
    expected package list is computed here by applying the layers to a
    dictionary file system (independently of agpack's C code).
    --huge-db: a layer whose dpkg status claims 1 GiB (the tar is cut short:
    a reader that honours the limit never gets there).
mkinputs.py model OUTDIR [--py] [--auto-map] [--trust] [--hub] [--no-tokenizer]
    A small model directory (config.json, safetensors, tokenizer files).
"""
import gzip, hashlib, io, json, os, struct, sys, tarfile

def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if data is None:
                ti.type = tarfile.DIRTYPE; ti.mode = 0o755
                t.addfile(ti)
            elif isinstance(data, tuple):  # ("symlink", target)
                ti.type = tarfile.SYMTYPE; ti.linkname = data[1]
                t.addfile(ti)
            else:
                ti.size = len(data); ti.mode = 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()

def host_stanzas(names):
    """The dpkg status stanzas of these packages, as this machine has them."""
    text = open("/var/lib/dpkg/status", encoding="utf-8", errors="replace").read()
    out = {}
    for st in text.split("\n\n"):
        f = {}
        for line in st.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1); f[k] = v.strip()
        if f.get("Package") in names and f.get("Status", "").endswith(" installed") and f["Package"] not in out:
            out[f["Package"]] = st.strip() + "\n"
    return out

def dpkg_fields(text):
    pk = []
    for st in text.split("\n\n"):
        f = {}
        for line in st.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1); f[k] = v.strip()
        if "Package" in f and "Version" in f and (f.get("Status", "x installed").endswith(" installed")):
            pk.append(("deb", f["Package"], f["Version"], f.get("Architecture")))
    return pk

def meta(name, version, lic=None):
    s = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    if lic:
        s += "License: %s\n" % lic
    s += "Summary: test\n\nName: not-a-header\nVersion: 0\n"
    return s.encode()

def image(out, expected, huge=False, rpm=False):
    want = ["libc6", "zlib1g", "libzstd1", "libssl3", "bash", "tar"]
    st = host_stanzas(set(want))
    names = [n for n in want if n in st][:4]
    assert len(names) >= 3, "need a few installed Debian packages"
    status1 = "\n".join(st[n] for n in names)
    status2 = "\n".join(st[n] for n in names[:-1])  # layer 3 removes the last package
    # a half-removed package: not installed, must not be listed
    status2 += "\nPackage: removed-pkg\nStatus: deinstall ok config-files\nVersion: 1.0\nArchitecture: amd64\n"
    sp = "usr/lib/python3/dist-packages/"
    sp2 = "usr/local/lib/python3.11/site-packages/"
    apk = (b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\n"
           b"C:Q1def=\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\nT:long\n  description\n\n")
    layers = [
        [("etc", None), ("usr", None), ("usr/lib", None),
         ("usr/lib/os-release", b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'),
         ("etc/os-release", ("symlink", "../usr/lib/os-release")),
         ("var/lib/dpkg/status", status1.encode()),
         ("var/lib/dpkg/status.d/distroless-base", b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n"),
         ("var/lib/dpkg/status.d/distroless-base.md5sums", b"0000 etc/x\n"),
         ("lib/apk/db/installed", apk),
         (sp + "requests-2.31.0.dist-info/METADATA", meta("requests", "2.31.0", "Apache 2.0")),
         (sp + "Jinja2-3.1.2.dist-info/METADATA", meta("Jinja2", "3.1.2")),
         (sp + "six-1.16.0.egg-info/PKG-INFO", meta("six", "1.16.0")),
         (sp2 + "numpy-1.26.0.dist-info/METADATA", meta("numpy", "1.26.0")),
         (sp2 + "vllm-0.6.0.dist-info/METADATA", meta("vllm", "0.6.0")),
         ("usr/bin/app", b"#!/bin/sh\n")],
        # layer 2: deletes Jinja2's dist-info (whiteout) and adds one
        [(sp + ".wh.Jinja2-3.1.2.dist-info", b""),
         (sp + "urllib3-2.0.7.dist-info/METADATA", meta("urllib3", "2.0.7", "MIT"))],
        # layer 3: a new dpkg status without the last package; an opaque
        # whiteout empties site-packages (numpy, vllm gone); distroless
        # entry removed
        [("var/lib/dpkg/status", status2.encode()),
         (sp2 + ".wh..wh..opq", b""),
         (sp2 + "torch-2.1.0.dist-info/METADATA", meta("torch", "2.1.0", "BSD-3-Clause")),
         ("var/lib/dpkg/status.d/.wh.distroless-base", b"")],
    ]
    if rpm:
        layers[2].append(("var/lib/rpm/rpmdb.sqlite", b"SQLite format 3\0"))
    # Apply the layers to a dict file system.
    fs = {}
    for L in layers:
        for name, data in L:
            d, b = os.path.split(name)
            if b == ".wh..wh..opq":
                for k in [k for k in fs if k.startswith(d + "/")]:
                    del fs[k]
            elif b.startswith(".wh."):
                t = os.path.join(d, b[4:])
                for k in [k for k in fs if k == t or k.startswith(t + "/")]:
                    del fs[k]
        for name, data in L:
            b = os.path.basename(name)
            if not b.startswith(".wh.") and data is not None:
                fs[name] = data
    pk = []
    for path, data in sorted(fs.items()):
        if isinstance(data, tuple):
            continue
        if path == "var/lib/dpkg/status" or (path.startswith("var/lib/dpkg/status.d/") and not path.endswith(".md5sums")):
            pk += [p + (path,) for p in dpkg_fields(data.decode())]
        elif path == "lib/apk/db/installed":
            for st in data.decode().split("\n\n"):
                f = dict(l.split(":", 1) for l in st.splitlines() if len(l) > 1 and l[1] == ":")
                if "P" in f:
                    pk.append(("apk", f["P"], f["V"], f.get("A"), path))
        elif path.endswith(".dist-info/METADATA") or path.endswith(".egg-info/PKG-INFO"):
            import email.parser
            m = email.parser.Parser().parsestr(data.decode(), headersonly=True)
            pk.append(("pypi", m["Name"], m["Version"], None, path))
    env = ["PATH=/usr/bin", "VLLM_LOGGING_LEVEL=INFO"]
    blobs = {}
    def put(b):
        d = hashlib.sha256(b).hexdigest(); blobs[d] = b; return "sha256:" + d, len(b)
    descs = []
    diff_ids = []
    for L in layers:
        raw = tar_bytes(L)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        d, n = put(gzip.compress(raw, mtime=0))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
    if huge:
        ti = tarfile.TarInfo("var/lib/dpkg/status"); ti.size = 1 << 30; ti.mode = 0o644
        raw = ti.tobuf(format=tarfile.USTAR_FORMAT) + b"Package: x\n" * 100
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        d, n = put(raw)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": env, "Cmd": ["/usr/bin/app"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd, cn = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                      "layers": descs}).encode()
    md, mn = put(man)
    os.makedirs(out + "/blobs/sha256")
    for d, b in blobs.items():
        open(out + "/blobs/sha256/" + d, "wb").write(b)
    open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
               "digest": md, "size": mn,
               "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, open(out + "/index.json", "w"))
    json.dump({"digest": md, "os_id": "debian", "os_version": "12", "packages": sorted(pk),
               "host_packages": names, "removed": [names[-1], "Jinja2", "numpy", "vllm", "base-files", "removed-pkg"]},
              open(expected, "w"), indent=1)

def model(out, py=False, auto_map=False, trust=False, hub=False, no_tok=False):
    os.makedirs(out)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 2048,
           "torch_dtype": "bfloat16", "hidden_size": 8, "_name_or_path": "meta-llama/Llama-3.2-1B"}
    if auto_map:
        cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    json.dump(cfg, open(out + "/config.json", "w"))
    gen = {"max_new_tokens": 16}
    if trust:
        gen["trust_remote_code"] = True
    json.dump(gen, open(out + "/generation_config.json", "w"))
    # safetensors: a header with two tensors (8x4 bf16, 4 f32) and their bytes
    hdr = {"a.weight": {"dtype": "BF16", "shape": [8, 4], "data_offsets": [0, 64]},
           "b.bias": {"dtype": "F32", "shape": [4], "data_offsets": [64, 80]},
           "__metadata__": {"format": "pt"}}
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    open(out + "/model.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + bytes(80))
    tc = {"tokenizer_class": "PreTrainedTokenizerFast",
          "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}
    json.dump(tc, open(out + "/tokenizer_config.json", "w"))
    if not no_tok:
        json.dump({"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}},
                  open(out + "/tokenizer.json", "w"))
    if py:
        open(out + "/modeling_x.py", "w").write("import os\n")
    if hub:
        json.dump({"base_model_name_or_path": "meta-llama/Llama-3.2-1B", "peft_type": "LORA",
                   "base_model": "https://huggingface.co/meta-llama/Llama-3.2-1B"},
                  open(out + "/adapter_config.json", "w"))

if __name__ == "__main__":
    a = sys.argv
    if a[1] == "image":
        image(a[2], a[3], "--huge-db" in a, "--rpm" in a)
    else:
        model(a[2], "--py" in a, "--auto-map" in a, "--trust" in a, "--hub" in a, "--no-tokenizer" in a)
