#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Regenerates the seed corpora in tests/fuzz/corpus/ from real agkit output:
# builds tiny bundles with agpack and copies their manifest, signatures and
# keys, plus hand-made broken and hostile variants.  Regression inputs for
# bugs found by fuzzing are named regress-* and are kept (never regenerated).
#
#   tests/fuzz/gen-corpus.sh [BUILD_DIR]     (default: build)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$(realpath "${1:-$ROOT/build}")
AGPACK=$BUILD/tools/agpack/agpack
AGIMPORT=$BUILD/tools/agimport/agimport
C=$HERE/corpus
test -x "$AGPACK" || { echo "no $AGPACK: build first (meson setup build && ninja -C build)" >&2; exit 2; }
W=$(mktemp -d "${TMPDIR:-/tmp}/agkit-corpus.XXXXXX")
trap 'rm -rf "$W"' EXIT
export SOURCE_DATE_EPOCH=1700000000
SEP=$'\n#--agkit-fuzz-part--\n'   # FUZZ_SEP in fuzz_common.h

# Drop generated seeds, keep regression inputs.
for d in manifest minisig pubkey seckey trust audit spec oci bundle; do
	mkdir -p "$C/$d"
	find "$C/$d" -type f ! -name 'regress-*' -delete
done

cd "$W"
"$AGPACK" keygen --out k --no-passphrase >/dev/null
"$AGPACK" keygen --out k2 --no-passphrase >/dev/null

# A tiny tree: nested dirs, an empty file, a symlink, an executable, a file
# spanning several 4 KiB chunks and two 8 KiB volumes.
mkdir -p tree/sub/deep
printf 'hello\n' > tree/a.txt
: > tree/empty
head -c 9000 /dev/zero | tr '\0' 'x' > tree/sub/big.bin
printf '#!/bin/sh\n' > tree/sub/run.sh; chmod 755 tree/sub/run.sh
printf 'deep\n' > tree/sub/deep/d.txt
ln -s ../a.txt tree/sub/link
cat > s1.json <<'EOF'
{"name": "tiny", "channel": "stable", "version": 3,
 "artifacts": [{"type": "files", "name": "model", "path": "tree"}]}
EOF
"$AGPACK" build s1.json --key k.key --out b1 --chunk-size 4K --volume-size 8K --level 1 >/dev/null
"$AGPACK" sign b1 --key k2.key >/dev/null

python3 "$ROOT/tests/bundle/mkdockersave.py" img.tar demo/app:1.0
cat > s2.json <<'EOF'
{"name": "img", "channel": "beta", "version": 1,
 "artifacts": [{"type": "oci-archive", "name": "runtime", "path": "img.tar"},
               {"type": "files", "name": "one", "path": "tree/a.txt", "sha256": "unpinned"}]}
EOF
"$AGPACK" build s2.json --key k.key --out b2 >/dev/null
"$AGIMPORT" extract b2 --pubkey k.pub --to x2 >/dev/null
K1=$(ls b1/signatures | head -1)

# manifest
cp b1/manifest.json "$C/manifest/tiny.json"
cp b2/manifest.json "$C/manifest/oci.json"
head -c 300 b1/manifest.json > "$C/manifest/truncated.json"
sed 's/"format_version": "1.0"/"format_version": "2.0"/' b1/manifest.json > "$C/manifest/major2.json"
sed 's/"path": "a.txt"/"path": "..\/a.txt"/' b1/manifest.json > "$C/manifest/dotdot.json"
# a delta (format 2.0): tree/a.txt changed, the rest reused from b1
cp -a tree tree2
echo changed >> tree2/a.txt
sed 's/"version": 3/"version": 4/; s/"path": "tree"/"path": "tree2"/' s1.json > s1d.json
"$AGPACK" build s1d.json --key k.key --out d1 --chunk-size 4K --volume-size 8K --level 1 --base b1 >/dev/null
cp d1/manifest.json "$C/manifest/delta.json"

# pubkey, seckey
cp k.pub "$C/pubkey/key.pub"
sed -n 2p k.pub > "$C/pubkey/bare.pub"
printf 'untrusted comment: x\nRWQ!!!notbase64\n' > "$C/pubkey/broken.pub"
cp k.key "$C/seckey/plain.key"
sed '2s/^\(.\{20\}\)./\1A/' k.key > "$C/seckey/flipped.key"
# An encrypted key (the harness must skip it: scrypt is never run on fuzzed parameters).
printf 'pass\n' > pass
AGKIT_PASSPHRASE_FILE=$W/pass "$AGPACK" keygen --out enc >/dev/null
cp enc.key "$C/seckey/encrypted.key"

# minisig: SIG [SEP PUBKEY [SEP DATA]]
for s in b1/signatures/*.minisig; do
	id=$(basename "$s" .minisig)
	for pk in k.pub k2.pub; do
		{ cat "$s"; printf '%s' "$SEP"; cat "$pk"; printf '%s' "$SEP"; cat b1/manifest.json; } > "$C/minisig/$id-$(basename $pk .pub).bin"
	done
done
cp "b1/signatures/$K1" "$C/minisig/sig-only.minisig"
head -n 3 "b1/signatures/$K1" > "$C/minisig/three-lines.minisig"

# trust
python3 - "$C/trust" k.pub k2.pub <<'EOF'
import json, sys
out, keys = sys.argv[1], [open(p).read().split("\n")[1] for p in sys.argv[2:]]
ks = [{"id": "ignored", "public_key": k} for k in keys]
json.dump({"agkit_trust": 1, "serial": 1, "threshold": 1, "keys": ks[:1]}, open(out + "/one.json", "w"))
json.dump({"agkit_trust": 1, "serial": 7, "threshold": 2, "keys": ks,
           "channels": {"stable": {"min_version": 3}, "beta": {"min_version": 0}},
           "max_bundle_age_days": 90}, open(out + "/two.json", "w"))
json.dump({"agkit_trust": 1, "serial": 2, "threshold": 3, "keys": ks}, open(out + "/threshold.json", "w"))
json.dump({"agkit_trust": 1, "serial": 2, "threshold": 1, "keys": [ks[0], ks[0]]}, open(out + "/dup.json", "w"))
json.dump({"agkit_trust": 1, "serial": 7, "threshold": 2, "keys": ks,
           "channels": {"stable": {"min_version": 3}, "beta": {"min_version": 0}},
           "max_bundle_age_days": 90, "bundles": ["app", "demo"], "max_version_jump": 1000},
          open(out + "/bundles-jump.json", "w"))
# The same public key under another key id (issue 13, finding 7): refused.
import base64
raw = bytearray(base64.b64decode(keys[0])); raw[2:10] = bytes(b ^ 0x5a for b in raw[2:10])
json.dump({"agkit_trust": 1, "serial": 2, "threshold": 2,
           "keys": [ks[0], {"id": "other", "public_key": base64.b64encode(bytes(raw)).decode()}]},
          open(out + "/same-key-two-ids.json", "w"))
EOF

# audit: hash-chained lines as bn_audit_append() writes them
python3 - "$C/audit" <<'EOF'
import hashlib, json, sys
out = sys.argv[1]
def log(n, break_at=None):
    prev, lines = "0" * 64, []
    for i in range(1, n + 1):
        rec = {"seq": i, "time": "2026-01-01T00:00:0%dZ" % i, "uid": 0, "action": "import", "slot": "blue",
               "bundle": "tiny", "channel": "stable", "version": i, "result": "ok", "reason": None, "prev": prev}
        if i == break_at:
            rec["prev"] = "1" * 64
        line = json.dumps(rec, separators=(",", ":"))
        lines.append(line)
        prev = hashlib.sha256(line.encode()).hexdigest()
    return "".join(l + "\n" for l in lines)
open(out + "/three.log", "w").write(log(3))
open(out + "/broken-chain.log", "w").write(log(3, break_at=2))
open(out + "/no-newline.log", "w").write(log(2)[:-1])
open(out + "/empty.log", "w").write("")
EOF

# spec
cp s1.json "$C/spec/files.json"
cp s2.json "$C/spec/oci.json"
cp "$ROOT"/manifests/*.json "$C/spec/" 2>/dev/null || true
printf '{"name": "x", "version": 1, "artifacts": [{"type": "files", "name": "a", "path": "p"}, {"type": "files", "name": "a", "path": "q"}]}' > "$C/spec/dup.json"
printf '{"name": "x", "version": 1, "artifacts": [{"type": "url", "name": "u", "sha256": "zz"}]}' > "$C/spec/badsha.json"

# oci: docker save, OCI layout tar, compressed, and hostile archives
cp img.tar "$C/oci/docker-save.tar"
gzip -9n < img.tar > "$C/oci/docker-save.tar.gz"
tar -C x2/runtime --sort=name --mtime=@1700000000 --owner=0 --group=0 -cf "$C/oci/oci-layout.tar" .
python3 "$ROOT/tests/bundle/mkdockersave.py" "$C/oci/evil-dotdot.tar" demo/app:1.0 --evil
python3 - "$C/oci" <<'EOF'
import io, json, sys, tarfile
out = sys.argv[1]
def tar(path, members):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        for m in members:
            ti = tarfile.TarInfo(m["name"]); ti.mtime = 1700000000; ti.mode = m.get("mode", 0o644)
            data = m.get("data", b"")
            if m.get("type") == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, m["link"]
            elif m.get("type") == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, m["link"]
            elif m.get("type") == "dir":
                ti.type = tarfile.DIRTYPE; ti.mode = m.get("mode", 0o755)
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            t.addfile(ti, io.BytesIO(data))
man = json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]}]).encode()
# A symlink out of the archive, then a write through it.
tar(out + "/evil-symlink-write.tar", [{"name": "esc", "type": "sym", "link": "../canary"},
                                      {"name": "esc/f", "data": b"pwned"}])
# Hard links to files outside the archive (relative and absolute).
tar(out + "/evil-hardlink.tar", [{"name": "h1", "type": "hard", "link": "../canary/f"},
                                 {"name": "h2", "type": "hard", "link": "/etc/passwd"}])
# docker save manifest naming files outside the archive through a symlink.
tar(out + "/evil-docker-config.tar", [{"name": "up", "type": "sym", "link": ".."},
                                      {"name": "manifest.json", "data": man.replace(b"c.json", b"up/canary/f")},
                                      {"name": "l/layer.tar", "data": b"x" * 10}])
# Absolute member names and a read-only directory.
tar(out + "/absolute.tar", [{"name": "/abs/file", "data": b"x"},
                            {"name": "ro", "type": "dir", "mode": 0o500},
                            {"name": "ro/f", "data": b"y"}])
EOF

# bundle: MANIFEST SEP VOL1 [SEP VOL2 ...]
mkbundle() { # OUT DIR
	local out=$1 dir=$2 v
	{ cat "$dir/manifest.json"; for v in "$dir"/vol-*.agv; do printf '%s' "$SEP"; cat "$v"; done; } > "$out"
}
mkbundle "$C/bundle/tiny.bin" b1
mkbundle "$C/bundle/oci.bin" b2
cp b1/manifest.json "$C/bundle/manifest-only.json"
# Hostile but well-formed manifests (the harness fills in their hashes).
python3 - b1 "$C/bundle" "$SEP" <<'EOF'
import copy, json, os, sys
src, out, sep = sys.argv[1], sys.argv[2], sys.argv[3].encode()
m = json.load(open(src + "/manifest.json"))
vols = [open(os.path.join(src, v["name"]), "rb").read() for v in m["volumes"]]
def write(name, mm):
    data = json.dumps(mm, indent=1).encode()
    for v in vols:
        data += sep + v
    open(os.path.join(out, name), "wb").write(data)
ents = m["artifacts"][0]["entries"]
# A symlink chain: each link stays inside on its own, together they lead out.
e = copy.deepcopy(m)
es = e["artifacts"][0]["entries"]
es += [{"path": "sub/deep/up", "type": "symlink", "target": ".."},
       {"path": "sub/esc", "type": "symlink", "target": "deep/up/../.."}]
es.sort(key=lambda x: x["path"].encode())
write("regress-symlink-chain.bin", e)
# Files whose sizes disagree with the chunk stream.
e = copy.deepcopy(m)
for x in e["artifacts"][0]["entries"]:
    if x["type"] == "file" and x["size"] > 0:
        x["size"] += 1
        break
write("size-mismatch.bin", e)
# Read-only directories and an unreadable file.
e = copy.deepcopy(m)
for x in e["artifacts"][0]["entries"]:
    if x["type"] == "dir":
        x["mode"] = 0o500
    elif x["type"] == "file":
        x["mode"] = 0
write("modes.bin", e)
EOF
# Stream receiver (fuzz-stream): a real stream with parity, and hostile
# record headers (issue 13, finding 5: a record at offset == size).
mkdir -p "$C/stream" "$C/media"
find "$C/stream" "$C/media" -type f ! -name 'regress-*' -delete
mkdir -p stree && head -c 20000 /dev/urandom > stree/r.bin && printf 'x\n' > stree/x.txt
cat > s3.json <<'EOF'
{"name": "st", "channel": "stable", "version": 1,
 "artifacts": [{"type": "files", "name": "model", "path": "stree"}]}
EOF
"$AGPACK" build s3.json --key k.key --out b3 --chunk-size 4K --volume-size 8K --parity 1 --level 1 >/dev/null
"$AGPACK" stream b3 > "$C/stream/parity.bin"
R=$ROOT/tests/media/mkrecord.py
B=65536
python3 "$R" "$C/stream/regress-offset-at-size.bin" manifest.json:2:0:2 vol-00001.agv:$((8 * B)):0:$B \
	vol-00001.agv:$((8 * B)):$((8 * B)):0
python3 "$R" "$C/stream/bad-headers.bin" manifest.json:2:0:2 vol-00001.agv:100:0:0 vol-00001.agv:100:$B:0 \
	vol-00002.agv:0:$B:0 ../escape:10:0:10 signatures/0123456789ABCDEF.minisig:5:0:5
head -c 3000 "$C/stream/parity.bin" > "$C/stream/cut.bin"

# Media-set layout (fuzz-media): MANIFEST SEP LABEL SEP VOLUMES of one
# medium of a set, of a one-medium set (completes and installs), and labels
# that do not match.
"$AGPACK" build s3.json --key k.key --out set3 --chunk-size 4K --volume-size 8K --media 16K --level 1 >/dev/null
"$AGPACK" build s3.json --key k.key --out one3 --chunk-size 4K --volume-size 8K --media 1M --level 1 >/dev/null
media_seed() { # media_seed MEDIUM_DIR OUT [LABEL_TEXT]
	local d=$1 out=$2
	{ cat "$d/manifest.json"; printf '%s' "$SEP"
	  if [ $# -ge 3 ]; then printf '%s' "$3"; else cat "$d/LABEL.txt"; fi
	  for v in $(cd "$d" && ls vol-*.agv 2>/dev/null); do printf '%s' "$SEP"; cat "$d/$v"; done; } > "$out"
}
media_seed set3/medium-01 "$C/media/set-medium-01.bin"
media_seed set3/medium-02 "$C/media/set-medium-02.bin"
media_seed one3/medium-01 "$C/media/one-medium.bin"
media_seed one3/medium-01 "$C/media/label-count.bin" $'agkit media set\nmedium 1 of 7\n'
media_seed one3/medium-01 "$C/media/label-zero.bin" $'agkit media set\nmedium 0 of 1\n'
media_seed one3/medium-01 "$C/media/label-garbage.bin" $'medium 4294967297 of -1\n\n'
media_seed b1 "$C/media/plain-with-label.bin" $'agkit media set\nmedium 1 of 1\n'
echo "seeds: $(find "$C" -type f | wc -l) files, $(du -sk "$C" | cut -f1) KiB"
