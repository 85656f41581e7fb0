#!/bin/bash
# The main job end to end on an embedded demo:
#   dirty zone: generate a tiny model and a container image, record the model's
#               health suite, pack and sign a bundle in media-sized volumes;
#   transfer:   check the media with sha256sum and minisign;
#   clean zone: verify, stage into the idle slot, let `agctl cycle` check and
#               promote it; then show a validly signed bundle with corrupted
#               weights refused by the health check, and a tampered one refused
#               by the signature check, the active slot untouched throughout;
#   serving:    agserve serves the promoted model; a question asked with curl
#               (and the official openai SDK when tests/serve/node_modules is
#               installed), every query in a hash-chained audit log.
# Usage: scripts/demo.sh [WORK_DIR]   (default: ./demo-run, recreated)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
B=$top/build/tools
AGPACK=$B/agpack/agpack AGIMPORT=$B/agimport/agimport AGCTL=$B/agctl/agctl AGRUN=$B/agrun/agrun
AGSERVE=$B/agserve/agserve
work=${1:-$top/demo-run}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
R=$work/clean-zone/agkit

say "dirty zone: a tiny Llama-style model (bf16 safetensors, config, tokenizer) and a container image"
# (tests/serve/mkmodel.py: gen_tiny.py's weights with every id decodable and a ChatML chat template)
/usr/bin/python3 "$top/tests/serve/mkmodel.py" models/tiny
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
"$AGPACK" build demo-v1.json --key release.key --out bundle-v1 --volume-size 1M
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

say "serving: agserve --root follows the active slot; a question through the OpenAI API"
( umask 077; printf 'demo-app %s\n' "sk-demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')" > serve-keys )
KEY=$(cut -d' ' -f2 serve-keys)
: > agserve.log
"$AGSERVE" --root "$R" --listen 127.0.0.1:0 --api-keys serve-keys --threads 2 2>> agserve.log &
srv=$!
trap 'kill $srv 2>/dev/null' EXIT
url=
for _ in $(seq 300); do
	url=$(sed -n 's/^agserve: listening on \(http:\/\/[0-9.:]*\).*/\1/p' agserve.log | head -1) || true
	[ -n "$url" ] && break
	kill -0 $srv 2>/dev/null || break
	sleep 0.1
done
[ -n "$url" ] || { echo "demo: agserve did not start:" >&2; cat agserve.log >&2; exit 1; }
echo "agserve: $url"
curl -s "$url/health"; echo
question='{"model": "demo", "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 16, "temperature": 0}'
echo "curl $url/v1/chat/completions -d '$question'"
curl -s "$url/v1/chat/completions" -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "$question" |
	/usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print("answer:", repr(r["choices"][0]["message"]["content"]), "| usage:", r["usage"])'
if [ -d "$top/tests/serve/node_modules/openai" ] && command -v node >/dev/null; then
	echo "the official openai SDK (node), base URL $url/v1:"
	(cd "$top/tests/serve" && OPENAI_BASE_URL=$url/v1 OPENAI_API_KEY=$KEY node --input-type=module -e '
import OpenAI from "openai";
const client = new OpenAI();
const r = await client.chat.completions.create({ model: "demo", messages: [{ role: "user", content: "What is the capital of France?" }], max_tokens: 16, temperature: 0 });
console.log("answer:", JSON.stringify(r.choices[0].message.content));')
fi
kill -TERM $srv; wait $srv || true
trap - EXIT
"$AGCTL" audit verify --file "$R/query-audit.log"
tail -n 1 "$R/query-audit.log"
say "demo finished: v1 is active, healthy and served; v2 was refused, v3 never got in; files in $work"
