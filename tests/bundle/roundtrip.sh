#!/bin/bash
# Round trips of random trees through agpack build -> agimport verify/extract.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
keygen k

# 1. A tree of odd names, unicode, empty files, modes, symlinks, thousands of small files.
$PY "$TESTS_DIR/bundle/mktree.py" tree 1 --small 3000
spec s1.json odd 1 files:tree:tree
check "build a tree of odd names and 3000 small files" "$AGPACK" build s1.json --key k.key --out b1 --chunk-size 64K --volume-size 300K
check "several volumes were written" test -e b1/vol-00003.agv
check "sha256sum -c accepts SHA256SUMS" sh -c 'cd b1 && sha256sum --strict -c SHA256SUMS'
check "verify" "$AGIMPORT" verify b1 --pubkey k.pub
check "extract" "$AGIMPORT" extract b1 --pubkey k.pub --to out1
check "extracted tree is identical (content, modes, links)" same_tree tree out1/tree
check "no temporary directories are left" sh -c '! ls -d out1.agtmp-* b1.agtmp-* 2>/dev/null | grep -q .'

# 2. A single file artifact and several artifacts in one bundle, with a pin.
head -c 5000000 /dev/urandom > blob.bin
sum=$(sha256sum blob.bin | cut -d' ' -f1)
$PY - "$sum" <<'PY'
import json, sys
json.dump({"name": "multi", "channel": "beta", "version": 7, "artifacts": [
  {"type": "files", "name": "weights", "path": "blob.bin", "sha256": sys.argv[1]},
  {"type": "files", "name": "tree", "path": "tree"}]}, open("s2.json", "w"))
json.dump({"name": "multi", "channel": "beta", "version": 7, "artifacts": [
  {"type": "files", "name": "weights", "path": "blob.bin", "sha256": "0" * 64}]}, open("s2bad.json", "w"))
PY
check "build two artifacts with a sha256 pin" "$AGPACK" build s2.json --key k.key --out b2
check "extract two artifacts" "$AGIMPORT" extract b2 --pubkey k.pub --to out2
check "single file lands as NAME/basename" cmp blob.bin out2/weights/blob.bin
check "second artifact identical" same_tree tree out2/tree
expect_exit 3 "a wrong sha256 pin fails the build" "$AGPACK" build s2bad.json --key k.key --out b2bad
check "and leaves no output" sh -c '! ls -d b2bad b2bad.* 2>/dev/null | grep -q .'

# 3. Determinism: same inputs and key give the same manifest and volumes (timestamp pinned).
check "rebuild with SOURCE_DATE_EPOCH" env SOURCE_DATE_EPOCH=1700000000 "$AGPACK" build s1.json --key k.key --out d1 --chunk-size 64K --volume-size 300K
check "rebuild again" env SOURCE_DATE_EPOCH=1700000000 "$AGPACK" build s1.json --key k.key --out d2 --chunk-size 64K --volume-size 300K
check "manifests are byte-identical" cmp d1/manifest.json d2/manifest.json
check "volumes are byte-identical" sh -c 'for v in d1/vol-*; do cmp "$v" "d2/${v#d1/}" || exit 1; done'

# 4. A sparse multi-GiB file stays sparse and identical.
mkdir sp && $PY - <<'PY'
import os
size = 3 << 30
with open("sp/disk.img", "wb") as f:
    f.truncate(size)
    for off in (0, size // 2, size - 4096):
        f.seek(off); f.write(os.urandom(4096))
PY
spec s3.json sparse 1 files:disk:sp
check "build a 3 GiB sparse file" "$AGPACK" build s3.json --key k.key --out b3
check "sparse bundle is small" sh -c 'test $(du -sk b3 | cut -f1) -lt 20000'
check "extract the sparse file" "$AGIMPORT" extract b3 --pubkey k.pub --to out3
check "content identical" cmp sp/disk.img out3/disk/disk.img
check "extracted file is still sparse" sh -c 'test $(du -k out3/disk/disk.img | cut -f1) -lt 100000'
rm -rf b3 out3 sp

# 5. Existing target is refused, nothing changes.
mkdir existing && echo keep > existing/file
expect_exit 4 "extract refuses an existing target" "$AGIMPORT" extract b1 --pubkey k.pub --to existing
check "existing target untouched" sh -c 'test "$(cat existing/file)" = keep'

# 6. Usage errors.
expect_exit 2 "no arguments is a usage error" "$AGIMPORT"
expect_exit 2 "verify without --pubkey is a usage error" "$AGIMPORT" verify b1
expect_exit 2 "bad --volume-size is a usage error" "$AGPACK" build s1.json --key k.key --out x --volume-size 12Q
expect_exit 2 "unknown artifact type is a usage error" sh -c 'echo "{\"name\":\"x\",\"version\":1,\"artifacts\":[{\"type\":\"nope\",\"name\":\"a\"}]}" > bad.json && "$AGPACK" build bad.json --key k.key --out x'
last_output | grep -q "unknown type 'nope' (files, oci-archive, image, url, hf-model, python, debs)" && ok "the refusal names the type and the known ones" || not_ok "the refusal names the type and the known ones"
done_testing
