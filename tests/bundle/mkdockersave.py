#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a minimal `docker save` tarball (legacy layout) without a Docker engine.

mkdockersave.py OUT.tar REPO:TAG [--evil]
--evil adds a member whose path climbs out of the archive (../escape).
"""
import hashlib, io, json, sys, tarfile, time

def tar_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, mode in files:
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()

out, ref = sys.argv[1], sys.argv[2]
evil = "--evil" in sys.argv
layers = [tar_bytes([("etc/hello.txt", b"hello from layer one\n", 0o644)]),
          tar_bytes([("usr/bin/app", b"#!/bin/sh\necho app\n" * 100, 0o755)])]
diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/usr/bin/app"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids},
                     "created": "2024-01-01T00:00:00Z"}, separators=(",", ":")).encode()
cfg_name = hashlib.sha256(config).hexdigest() + ".json"
members = [(cfg_name, config, 0o644)]
names = []
for i, l in enumerate(layers):
    d = hashlib.sha256(l).hexdigest()
    members.append((d + "/layer.tar", l, 0o644))
    members.append((d + "/VERSION", b"1.0", 0o644))
    names.append(d + "/layer.tar")
members.append(("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": [ref], "Layers": names}]).encode(), 0o644))
if evil:
    members.append(("../escape", b"pwned", 0o644))
with open(out, "wb") as f:
    f.write(tar_bytes(members))
