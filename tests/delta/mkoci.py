#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a minimal OCI image layout (image-spec 1.1) without any registry.

mkoci.py DIR TAG BIGLAYER SMALLTEXT
BIGLAYER: a file whose bytes become layer one (kept as a raw blob);
SMALLTEXT: the content of usr/app.txt in layer two (a tar).
"""
import hashlib, io, json, os, sys, tarfile

out, tag, big, small = sys.argv[1:5]
def put(data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
def tar_of(name, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = 0o644; ti.mtime = 1700000000
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()
l1 = tar_of("opt/big.bin", open(big, "rb").read())
l2 = tar_of("usr/app.txt", small.encode())
layers = [dict(put(l), mediaType="application/vnd.oci.image.layer.v1.tar") for l in (l1, l2)]
cfg = json.dumps({"architecture": "amd64", "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(l).hexdigest() for l in (l1, l2)]}},
                 separators=(",", ":")).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": dict(put(cfg), mediaType="application/vnd.oci.image.config.v1+json"),
                  "layers": layers}, separators=(",", ":")).encode()
m = put(man)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [dict(m, mediaType="application/vnd.oci.image.manifest.v1+json",
               annotations={"org.opencontainers.image.ref.name": tag})]}, f)
