#!/usr/bin/python3
"""Builds a PEP 503 simple index (and one PEP 691 JSON page) for the python
artifact's tests.  Written from PEP 503, PEP 691 and PEP 427 (wheel layout,
RECORD), not from agkit's code.

usage: mkpyindex.py ROOT   -> ROOT/simple/<project>/{index.html|index.json}, ROOT/files/*.whl
Prints "name version sha256 filename" per wheel on stdout."""
import base64
import hashlib
import io
import os
import shutil
import sys
import zipfile


def wheel(path, dist, version, tag, files):
    """A minimal valid wheel: the files, METADATA, WHEEL and RECORD."""
    di = f"{dist}-{version}.dist-info"
    entries = dict(files)
    entries[f"{di}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist.replace('_', '-')}\nVersion: {version}\n"
    entries[f"{di}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: mkpyindex\nRoot-Is-Purelib: true\nTag: {tag}\n"
    record = []
    for name, data in entries.items():
        b = data.encode()
        h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={h},{len(b)}")
    record.append(f"{di}/RECORD,,")
    entries[f"{di}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)


def sha(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def main():
    root = sys.argv[1]
    files = os.path.join(root, "files")
    os.makedirs(files, exist_ok=True)
    made = []
    w = os.path.join(files, "agkit_demo-1.0-py3-none-any.whl")
    wheel(w, "agkit_demo", "1.0", "py3-none-any", {"agkit_demo/__init__.py": "VALUE = 42\n"})
    made.append(("agkit-demo", "1.0", w))
    w = os.path.join(files, "json_pkg-0.5-py3-none-any.whl")
    wheel(w, "json_pkg", "0.5", "py3-none-any", {"json_pkg/__init__.py": "NAME = 'json'\n"})
    made.append(("json-pkg", "0.5", w))
    w = os.path.join(files, "nohash-3.0-py3-none-any.whl")
    wheel(w, "nohash", "3.0", "py3-none-any", {"nohash/__init__.py": "X = 3\n"})
    made.append(("nohash", "3.0", w))
    # only for another platform
    w = os.path.join(files, "nativepkg-2.0-cp311-cp311-win_amd64.whl")
    wheel(w, "nativepkg", "2.0", "cp311-cp311-win_amd64", {"nativepkg/__init__.py": ""})
    made.append(("nativepkg", "2.0", w))
    # a real wheel Debian ships
    for real in sorted(os.listdir("/usr/share/python-wheels")) if os.path.isdir("/usr/share/python-wheels") else []:
        if real.startswith("setuptools-") and real.endswith(".whl"):
            shutil.copy(os.path.join("/usr/share/python-wheels", real), files)
            made.append(("setuptools", real.split("-")[1], os.path.join(files, real)))
    by = {}
    for name, ver, p in made:
        by.setdefault(name, []).append(p)
    for name, paths in by.items():
        d = os.path.join(root, "simple", name)
        os.makedirs(d, exist_ok=True)
        if name == "json-pkg":
            import json
            page = {"meta": {"api-version": "1.0"}, "name": name,
                    "files": [{"filename": os.path.basename(p), "url": f"../../files/{os.path.basename(p)}",
                               "hashes": {"sha256": sha(p)}} for p in paths]}
            open(os.path.join(d, "index.json"), "w").write(json.dumps(page))
            continue
        links = []
        for p in paths:
            frag = "" if name == "nohash" else f"#sha256={sha(p)}"
            # an entity in the attribute and a relative href, as real indexes have
            links.append(f'<a href="../../files/{os.path.basename(p)}{frag}" data-requires-python="&gt;=3.7">'
                         f"{os.path.basename(p)}</a><br/>")
        open(os.path.join(d, "index.html"), "w").write(
            "<!DOCTYPE html>\n<html><body><h1>Links for %s</h1>\n%s\n</body></html>\n" % (name, "\n".join(links)))
    for name, ver, p in made:
        print(name, ver, sha(p), os.path.basename(p))


if __name__ == "__main__":
    main()
