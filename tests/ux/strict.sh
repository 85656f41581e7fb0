#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Strict specs and configs (issue 16): a typo'd key in a pack spec, a root's
# config.json or a trust policy is refused with exit 2, the file, the key and
# the closest known key; wrong types and out-of-range values too; agpack lint
# checks a spec without building and without a key.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?}"
cd "$WORK" || exit 1
# out_has DESCRIPTION GREP-ARGS...: the last expect_exit's output matches
# (a copy: check itself writes $WORK/.out).
out_has() { local d=$1; shift; cp "$WORK/.out" "$WORK/.said"; check "$d" grep -q "$@" "$WORK/.said"; }
keygen k
mkdir m && head -c 300000 /dev/urandom > m/w.bin
sum=$(sha256sum m/w.bin | cut -d' ' -f1)
good() { printf '{"name":"d","version":1,"artifacts":[{"type":"files","name":"m","path":"m/w.bin","sha256":"%s"}]}' "$sum"; }
good > good.json

# --- pack specs
printf '{"name":"d","version":1,"artifacts":[{"type":"files","name":"m","path":"m/w.bin","sha265":"%s"}]}' "$sum" > typo.json
expect_exit 2 "build refuses a spec with sha265 (exit 2)" "$AGPACK" build typo.json --key k.key --out b-typo
out_has "the message names the file, the artifact, the key and sha256" 'typo.json: artifact .m.: unknown key "sha265" (did you mean "sha256"?)'
check "nothing was built" test ! -e b-typo
expect_exit 2 "lint refuses it too" "$AGPACK" lint typo.json
out_has "lint names the suggestion" 'did you mean "sha256"'
printf '{"name":"d","versoin":1,"artifacts":[]}' > top.json
expect_exit 2 "a typo at the top level is refused" "$AGPACK" lint top.json
out_has "... with did you mean version" 'unknown key "versoin" (did you mean "version"?)'
printf '{"name":"d","version":"1","artifacts":[{"type":"files","name":"m","path":"m"}]}' > type.json
expect_exit 2 "a string version is refused" "$AGPACK" lint type.json
out_has "... saying it must be an integer" '"version" must be an integer'
printf '{"name":"d","version":1,"artifacts":[{"type":"image","name":"i","ref":"r","sha256":"%s"}]}' "$sum" > img.json
expect_exit 2 "sha256 on an image artifact is refused (it would pin nothing)" "$AGPACK" lint img.json
printf '{"name":"d","version":1,"artifacts":[{"type":"image","name":"i","refs":"x"}]}' > img2.json
expect_exit 2 "an image artifact with refs instead of ref" "$AGPACK" lint img2.json
out_has "... suggests ref" 'did you mean "ref"'
printf '{"name":"d","version":1,"artifacts":[{"type":"url","name":"u","url":"http://127.0.0.1:9/x"}]}' > url.json
expect_exit 2 "a url artifact without sha256 is refused by lint, offline" "$AGPACK" lint url.json
printf '{"name":"d","version":1,"artifacts":[{"type":"hf-model","name":"h","repo":"o/r","revison":"main"}]}' > hf.json
expect_exit 2 "an hf-model artifact with revison" "$AGPACK" lint hf.json
out_has "... suggests revision" 'did you mean "revision"'
printf '{"name":"d","version":1,"artifacts":[{"type":"files","name":"m","path":"m","health":{"recrod":true}}]}' > h.json
expect_exit 2 "a typo inside health is refused" "$AGPACK" lint h.json
out_has "... suggests record" 'did you mean "record"'
printf '{"name":"d","version":1,"artifacts":[{"type":"files","name":"m","path":"nope"}]}' > missing.json
expect_exit 4 "lint: a missing path is an I/O error naming it" "$AGPACK" lint missing.json
out_has "... naming the file" 'nope: No such file'
printf '{"name":"d","version":1,"artifacts":[{"type":"files","name":"m","path":"m/w.bin","sha256":"abc"}]}' > pin.json
expect_exit 2 "lint: a malformed pin" "$AGPACK" lint pin.json
expect_exit 0 "lint passes a good spec without a key" "$AGPACK" lint good.json
out_has "... and says OK" 'good.json: OK: bundle d channel stable version 1, 1 artifact'
mkdir lintdir && cp good.json lintdir/ && cp -r m lintdir/ && (cd lintdir && find . | sort) > before.txt
"$AGPACK" lint lintdir/good.json >/dev/null 2>&1
check "lint wrote nothing beside the spec" sh -c '(cd lintdir && find . | sort) | cmp -s - before.txt'
expect_exit 0 "the good spec builds" "$AGPACK" build good.json --key k.key --out b1

# --- a root's config.json
"$AGCTL" --root R init --pubkey k.pub >/dev/null || exit 1
cp R/config.json cfg.orig
setcfg() { $PY -c "import json,sys; c=json.load(open(sys.argv[1])); c[sys.argv[2]]=json.loads(sys.argv[3]); json.dump(c,open(sys.argv[1],'w'))" R/config.json "$1" "$2"; }
setcfg validation_windows 5
expect_exit 2 "config.json with validation_windows is refused" "$AGCTL" --root R status
out_has "... naming the file, the key and validation_window_s" 'R/config.json: unknown key "validation_windows" (did you mean "validation_window_s"?)'
expect_exit 2 "agimport refuses the same root" "$AGIMPORT" b1 --root R
cp cfg.orig R/config.json; setcfg validation_window_s '"1d"'
expect_exit 2 "validation_window_s \"1d\" is refused" "$AGCTL" --root R status
out_has "... must be an integer" '"validation_window_s" must be an integer, not "1d"'
cp cfg.orig R/config.json; setcfg validation_window_s -5
expect_exit 2 "validation_window_s -5 is refused" "$AGCTL" --root R status
out_has "... out of range" '"validation_window_s" must be from 0 to'
cp cfg.orig R/config.json; setcfg require_health_suite '"no"'
expect_exit 2 "require_health_suite \"no\" is refused" "$AGCTL" --root R status
cp cfg.orig R/config.json; setcfg switch_hook '"/nonexistent/agkit-hook"'
expect_exit 2 "a missing switch hook file is refused" "$AGCTL" --root R status
out_has "... naming it" '"switch_hook" /nonexistent/agkit-hook: no such file'
cp cfg.orig R/config.json; setcfg cpu_kernels '"avx-512"'
expect_exit 2 "cpu_kernels \"avx-512\" is refused" "$AGCTL" --root R status
out_has "... naming the four values" 'R/config.json: "cpu_kernels" must be amx, avx512, avx2 or generic, not "avx-512"'
expect_exit 2 "agserve --root refuses it too" timeout -k 5 20 "$AGSERVE" --root R --listen 127.0.0.1:0
out_has "... with the same message" 'R/config.json: "cpu_kernels" must be amx, avx512, avx2 or generic, not "avx-512"'
cp cfg.orig R/config.json; setcfg cpu_kernels 5
expect_exit 2 "cpu_kernels 5 is refused" "$AGCTL" --root R status
cp cfg.orig R/config.json; setcfg cpu_kernels '"avx2"'
expect_exit 0 "cpu_kernels \"avx2\" is accepted" "$AGCTL" --root R status
cp cfg.orig R/config.json; printf '{"validation_window_s": 1,\n "hook_timeout_s": }\n' > R/config.json
expect_exit 2 "a syntax error in config.json" "$AGCTL" --root R status
out_has "... says the line" 'R/config.json: line 2:'
cp cfg.orig R/config.json
expect_exit 0 "the original config.json is accepted" "$AGCTL" --root R status

# --- trust policies
cp R/trust.json trust.orig
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['treshold']=1; json.dump(c,open(sys.argv[1],'w'))" R/trust.json
expect_exit 2 "a trust policy with treshold is refused" "$AGCTL" --root R status
out_has "... suggesting threshold" 'trust.json: trust policy: unknown key "treshold" (did you mean "threshold"?)'
cp trust.orig R/trust.json
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['channels']={'stable':{'min_versoin':3}}; json.dump(c,open(sys.argv[1],'w'))" R/trust.json
expect_exit 2 "a channel's min_versoin is refused" "$AGCTL" --root R status
out_has "... suggesting min_version" "channel 'stable': unknown key \"min_versoin\" (did you mean \"min_version\"?)"
cp trust.orig R/trust.json
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['max_bundle_age_days']='30'; json.dump(c,open(sys.argv[1],'w'))" R/trust.json
expect_exit 2 "max_bundle_age_days as a string is refused" "$AGCTL" --root R status
cp trust.orig R/trust.json
# a new policy with a typo is refused by sign-trust (in the dirty zone) already
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['serial']=2; c['max_version_jmup']=5; json.dump(c,open('new.json','w'))" R/trust.json
expect_exit 2 "agpack sign-trust refuses a policy with max_version_jmup" "$AGPACK" sign-trust new.json --key k.key
out_has "... suggesting max_version_jump" 'did you mean "max_version_jump"'
expect_exit 0 "the untouched root imports" "$AGIMPORT" b1 --root R
# lint runs build's offline-readiness check on local model directories (docs/SBOM.md)
mkdir -p rc && printf '{"architectures":["X"],"auto_map":{"AutoModel":"m.X"}}' > rc/config.json
printf '{"name":"rc","version":1,"artifacts":[{"type":"files","name":"m","path":"rc"}]}' > rc.json
expect_exit 3 "lint refuses a model directory with auto_map" "$AGPACK" lint rc.json
out_has "... saying it would run code" "would run code at load time"
printf '{"name":"rc","version":1,"artifacts":[{"type":"files","name":"m","path":"rc","allow_remote_code":true}]}' > rc2.json
expect_exit 0 "lint accepts it with allow_remote_code" "$AGPACK" lint rc2.json
done_testing
