#!/bin/bash
# The main job end to end on an embedded demo: generate a tiny model and a
# container image, sign a bundle in the "dirty zone", verify and extract it in
# the "clean zone", and show a tampered copy being refused.
# Usage: scripts/demo.sh [WORK_DIR]   (default: ./demo-run, recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
AGPACK=$top/build/tools/agpack/agpack
AGIMPORT=$top/build/tools/agimport/agimport
work=${1:-$top/demo-run}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "dirty zone: generate sample artifacts (a tiny model and a container image)"
mkdir -p models/tiny
/usr/bin/python3 "$top/scripts/mkdemo-model.py" models/tiny
/usr/bin/python3 "$top/tests/bundle/mkdockersave.py" runtime.tar demo/runtime:v1
ls -l models/tiny runtime.tar

say "dirty zone: agpack keygen"
"$AGPACK" keygen --out release --no-passphrase
cat > demo.json <<'JSON'
{"name": "demo", "channel": "stable", "version": 1,
 "artifacts": [
   {"type": "files", "name": "model", "path": "models/tiny"},
   {"type": "oci-archive", "name": "runtime", "path": "runtime.tar"}]}
JSON

say "dirty zone: agpack build (signed, chunked, zstd, 1 MiB volumes)"
"$AGPACK" build demo.json --key release.key --out bundle --volume-size 1M --chunk-size 256K
ls -l bundle bundle/signatures

say "transfer: check the media with standard tools"
(cd bundle && sha256sum -c SHA256SUMS)
minisign -V -m bundle/manifest.json -x bundle/signatures/*.minisig -p release.pub

say "clean zone: agimport verify"
"$AGIMPORT" verify bundle --pubkey release.pub

say "clean zone: agimport extract"
"$AGIMPORT" extract bundle --pubkey release.pub --to staged
find staged -maxdepth 2 | sort
skopeo --policy "$top/tests/bundle/skopeo-policy.json" inspect oci:staged/runtime:v1 | head -12

say "clean zone: a tampered copy is refused (exit 3) and nothing is written"
cp -a bundle tampered
printf 'X' | dd of=tampered/vol-00001.agv bs=1 seek=1000 conv=notrunc status=none
if "$AGIMPORT" extract tampered --pubkey release.pub --to staged2; then
	echo "demo: tampered bundle was accepted!" >&2; exit 1
else
	echo "exit status $? as documented; staged2 exists: $([ -e staged2 ] && echo yes || echo no)"
fi
say "demo finished: see $work"
