#!/bin/bash
# The main job end to end on an embedded demo:
#   dirty zone: generate a tiny model and a container image, record the model's
#               health suite, pack and sign a bundle in media-sized volumes;
#   transfer:   check the media with sha256sum and minisign;
#   clean zone: verify, stage into the idle slot, let `agctl cycle` check and
#               promote it; then show a validly signed bundle with corrupted
#               weights refused by the health check, and a tampered one refused
#               by the signature check, the active slot untouched throughout.
# Usage: scripts/demo.sh [WORK_DIR]   (default: ./demo-run, recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
B=$top/build/tools
AGPACK=$B/agpack/agpack AGIMPORT=$B/agimport/agimport AGCTL=$B/agctl/agctl AGRUN=$B/agrun/agrun
work=${1:-$top/demo-run}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
R=$work/clean-zone/agkit

say "dirty zone: a tiny Llama-style model (bf16 safetensors, config, tokenizer) and a container image"
/usr/bin/python3 "$top/tests/runtime/gen_tiny.py" llama bf16 models/tiny >/dev/null
/usr/bin/python3 "$top/tests/bundle/mkdockersave.py" runtime.tar demo/runtime:v1
ls -l models/tiny runtime.tar
"$AGRUN" models/tiny --prompt "The capital of France is" -n 8 || true

say "dirty zone: release key and pack spec (the model's health suite is recorded at pack time)"
"$AGPACK" keygen --out release --no-passphrase
cat > demo-v1.json <<'JSON'
{"name": "demo", "channel": "stable", "version": 1,
 "artifacts": [
   {"type": "files", "name": "model", "path": "models/tiny", "health": {"record": true}},
   {"type": "oci-archive", "name": "runtime", "path": "runtime.tar"}]}
JSON
cat demo-v1.json

say "dirty zone: agpack build (signed, chunked, zstd, 1 MiB volumes)"
"$AGPACK" build demo-v1.json --key release.key --out bundle-v1 --volume-size 1M --chunk-size 256K
ls -l bundle-v1 bundle-v1/signatures

say "transfer: check the media with standard tools"
(cd bundle-v1 && sha256sum -c SHA256SUMS)
minisign -V -m bundle-v1/manifest.json -x bundle-v1/signatures/*.minisig -p release.pub

say "clean zone: agctl init (trust the release key), agimport (verify and stage)"
"$AGCTL" --root "$R" init --pubkey release.pub
"$AGIMPORT" bundle-v1 --root "$R"
"$AGCTL" --root "$R" status

say "clean zone: agctl cycle (what cron runs): health check, then promote"
"$AGCTL" --root "$R" cycle
"$AGCTL" --root "$R" status
ls -l "$R/active"
skopeo --policy "$top/tests/bundle/skopeo-policy.json" inspect oci:"$R"/active/runtime:v1 | head -6

say "dirty zone: v2 with corrupted weights, validly signed, packed with v1's health suite"
"$AGRUN" record models/tiny --out suite-v1.json 2>/dev/null
/usr/bin/python3 "$top/tests/health/corrupt_model.py" models/tiny models/tiny-damaged noise
cat > demo-v2.json <<'JSON'
{"name": "demo", "channel": "stable", "version": 2,
 "artifacts": [{"type": "files", "name": "model", "path": "models/tiny-damaged", "health": "suite-v1.json"}]}
JSON
"$AGPACK" build demo-v2.json --key release.key --out bundle-v2

say "clean zone: v2 imports (its signature is valid) but agctl cycle refuses it"
"$AGIMPORT" bundle-v2 --root "$R"
if "$AGCTL" --root "$R" cycle; then echo "demo: the damaged model was promoted!" >&2; exit 1; fi
"$AGCTL" --root "$R" status

say "clean zone: a tampered copy of v3 is refused (exit 3); nothing of it reaches a slot"
sed 's/"version": 2/"version": 3/' demo-v2.json > demo-v3.json
"$AGPACK" build demo-v3.json --key release.key --out bundle-v3 >/dev/null 2>&1
printf 'X' | dd of=bundle-v3/vol-00001.agv bs=1 seek=1000 conv=notrunc status=none
if "$AGIMPORT" bundle-v3 --root "$R"; then echo "demo: tampered bundle was accepted!" >&2; exit 1; else echo "exit status $?"; fi
"$AGCTL" --root "$R" audit verify
tail -n 4 "$R/audit.log"
say "demo finished: v1 is active and healthy, v2 was refused, v3 never got in; files in $work"
