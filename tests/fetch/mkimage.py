#!/usr/bin/env python3
"""Builds a tiny OCI image layout without a container engine.

mkimage.py OUT TAG [--arch A[,B...]] [--layer-mb N] [--layers K]
One platform: index.json -> image manifest.  Several: index.json -> image index -> manifests.
"""
import argparse, gzip, hashlib, io, json, os, tarfile

ap = argparse.ArgumentParser()
ap.add_argument("out"); ap.add_argument("tag")
ap.add_argument("--arch", default="amd64")
ap.add_argument("--layer-mb", type=float, default=0.05)
ap.add_argument("--layers", type=int, default=2)
a = ap.parse_args()
blobs = os.path.join(a.out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

def layer(name, payload):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo(name); ti.size = len(payload); ti.mtime = 0; ti.mode = 0o644
        t.addfile(ti, io.BytesIO(payload))
    tar = raw.getvalue()
    gz = gzip.compress(tar, compresslevel=1, mtime=0)
    return tar, gz

manifests = []
for arch in a.arch.split(","):
    diff_ids, layers = [], []
    for i in range(a.layers):
        payload = (b"hello from %s layer %d\n" % (arch.encode(), i)) + os.urandom(int(a.layer_mb * 1024 * 1024))
        tar, gz = layer("data%d.bin" % i, payload)
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        dg, sz = put(gz)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg, "size": sz})
    cfg = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cd, cs = put(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                      "layers": layers}).encode()
    md, ms = put(man)
    manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                      "platform": {"architecture": arch, "os": "linux"}})

ann = {"org.opencontainers.image.ref.name": a.tag}
if len(manifests) == 1:
    top = dict(manifests[0]); top.pop("platform"); top["annotations"] = ann
else:
    idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                      "manifests": manifests}).encode()
    d, s = put(idx)
    top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": s, "annotations": ann}
with open(os.path.join(a.out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(a.out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]}, f)
for m in manifests:
    print(m["platform"]["architecture"], m["digest"])
