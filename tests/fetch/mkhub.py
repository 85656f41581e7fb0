#!/usr/bin/env python3
"""Writes a Hugging Face hub-shaped static tree for nginx.

mkhub.py ROOT REPO [--corrupt-lfs] [--evil]
  ROOT/api/models/REPO/revision/{main,COMMIT}   JSON as the hub's ?blobs=true answer
  ROOT/REPO/resolve/COMMIT/PATH                 file contents
Prints the commit hash.
"""
import argparse, hashlib, json, os

ap = argparse.ArgumentParser()
ap.add_argument("root"); ap.add_argument("repo")
ap.add_argument("--corrupt-lfs", action="store_true")
ap.add_argument("--evil", action="store_true")
a = ap.parse_args()
commit = hashlib.sha1(os.urandom(16)).hexdigest()
files = {
    "config.json": (b'{"model_type": "tiny", "hidden_size": 8}\n', False),
    "tokenizer.json": (b'{"version": "1.0"}\n', False),
    "README.md": (b"# tiny model\n", False),
    "model.safetensors": (os.urandom(1 << 20), True),
    "sub/extra.bin": (os.urandom(70000), True),
    "weights/pytorch_model.bin": (os.urandom(50000), True),
}
siblings = []
for path, (data, lfs) in files.items():
    dst = os.path.join(a.root, a.repo, "resolve", commit, path)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as f:
        f.write(data)
    git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    s = {"rfilename": path, "size": len(data), "blobId": git}
    if lfs:
        sha = hashlib.sha256(data).hexdigest()
        if a.corrupt_lfs and path == "model.safetensors":
            sha = hashlib.sha256(data + b"x").hexdigest()
        s["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 134}
        # LFS pointer's blob id, as the hub lists it
        s["blobId"] = hashlib.sha1(b"pointer " + path.encode()).hexdigest()
    siblings.append(s)
if a.evil:
    siblings.append({"rfilename": "../escape.txt", "size": 3, "blobId": "0" * 40})
api = {"id": a.repo, "modelId": a.repo, "sha": commit, "private": False, "siblings": siblings}
d = os.path.join(a.root, "api", "models", a.repo, "revision")
os.makedirs(d, exist_ok=True)
for rev in ("main", commit):
    with open(os.path.join(d, rev), "w") as f:
        json.dump(api, f)
print(commit)
