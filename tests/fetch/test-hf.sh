#!/bin/sh
# hf-model source against nginx serving a hub-shaped tree: revision resolved to a
# commit, include/exclude globs, LFS sha256 and git blob id checks, token,
# cache re-run, corrupted LFS file, unsafe file names.
. "$(dirname "$0")/lib.sh"
need nginx

W=$WORK/www
commit=$(python3 "$TESTDIR/mkhub.py" "$W" org/tiny-model)
python3 "$TESTDIR/mkhub.py" "$W" org/bad-model --corrupt-lfs >/dev/null
python3 "$TESTDIR/mkhub.py" "$W" org/private-model >/dev/null
python3 "$TESTDIR/mkhub.py" "$W" org/evil-model --evil >/dev/null
P=$(free_port); E=http://127.0.0.1:$P
start_nginx "$P" "$W" 'location /api/ { default_type application/json; }
    location ~ ^/(api/models/)?org/private-model/ {
      if ($http_authorization != "Bearer hf_test_token") { return 401; }
    }'
unset HF_TOKEN HF_TOKEN_PATH
src=$W/org/tiny-model/resolve/$commit

fetch "$WORK/p1" hf org/tiny-model "$WORK/m1" --endpoint "$E" --cache "$WORK/c" || { cat "$WORK/p1.err"; fail "hf fetch"; }
[ "$(jget "$WORK/p1" commit)" = "$commit" ] || fail "commit not recorded"
[ "$(jget "$WORK/p1" revision)" = main ] || fail "revision not recorded"
diff -r "$src" "$WORK/m1" || fail "model directory differs from the repository"
pass "org/tiny-model@main -> $commit, all files"

fetch "$WORK/p2" hf org/tiny-model "$WORK/m2" --endpoint "$E" --cache "$WORK/c" --revision "$commit" \
	--include '*.json' --include '*.safetensors' --exclude 'tokenizer*' || fail "filtered fetch"
[ "$(cd "$WORK/m2" && find . -type f | sort | tr '\n' ' ')" = "./config.json ./model.safetensors " ] ||
	fail "include/exclude gave: $(cd "$WORK/m2" && find . -type f | sort | tr '\n' ' ')"
[ "$(counter "$WORK/p2" downloaded_bytes)" = 0 ] || fail "cached files downloaded again"
pass "include/exclude globs; files already cached not downloaded"

fetch "$WORK/p3" hf org/tiny-model "$WORK/m3" --endpoint "$E" --cache "$WORK/c" --dry-run || fail "dry run"
[ ! -e "$WORK/m3" ] || fail "dry run wrote output"
exp=$(find "$src" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
[ "$(counter "$WORK/p3" total_bytes)" = "$exp" ] || fail "dry run size $(counter "$WORK/p3" total_bytes) != $exp"
pass "dry run: $exp bytes"

set +e
fetch "$WORK/p4" hf org/bad-model "$WORK/m4" --endpoint "$E" --cache "$WORK/c4"; rc4=$?
fetch "$WORK/p5" hf org/private-model "$WORK/m5" --endpoint "$E" --cache "$WORK/c5"; rc5=$?
fetch "$WORK/p6" hf org/evil-model "$WORK/m6" --endpoint "$E" --cache "$WORK/c6"; rc6=$?
fetch "$WORK/p7" hf ../etc "$WORK/m7" --endpoint "$E" --cache "$WORK/c6"; rc7=$?
set -e
[ $rc4 -eq 3 ] && grep -q "sha256 mismatch" "$WORK/p4.err" || fail "corrupt LFS: rc $rc4 $(cat "$WORK/p4.err")"
[ $rc5 -eq 4 ] && grep -q "HTTP 401" "$WORK/p5.err" || fail "private without token: rc $rc5 $(cat "$WORK/p5.err")"
[ $rc6 -eq 3 ] && grep -q "unsafe" "$WORK/p6.err" || fail "evil path: rc $rc6 $(cat "$WORK/p6.err")"
[ $rc7 -eq 2 ] || fail "bad repo id: rc $rc7"
for m in m4 m5 m6 m7; do [ ! -e "$WORK/$m" ] || fail "$m left behind"; done
[ ! -e "$WORK/escape.txt" ] || fail "escaped the output directory"
pass "corrupt LFS file (3), missing token (4), unsafe file name (3), bad repo id (2) refused"

fetch "$WORK/p8" hf org/private-model "$WORK/m8" --endpoint "$E" --cache "$WORK/c8" --hf-token hf_test_token ||
	{ cat "$WORK/p8.err"; fail "token option"; }
HF_TOKEN=hf_test_token fetch "$WORK/p9" hf org/private-model "$WORK/m9" --endpoint "$E" --cache "$WORK/c9" ||
	fail "HF_TOKEN"
echo hf_test_token >"$WORK/tok"
HF_TOKEN_PATH=$WORK/tok fetch "$WORK/p10" hf org/private-model "$WORK/m10" --endpoint "$E" --cache "$WORK/c10" ||
	fail "HF_TOKEN_PATH"
grep -q '"Bearer hf_test_token"' "$WORK/access.log" || fail "token not sent"
grep -q 'hf_test_token' "$WORK/p8" && fail "token leaked into provenance"
pass "token from option, HF_TOKEN and HF_TOKEN_PATH"

# A corrupted non-LFS file is caught by its git blob id.
printf '{"model_type": "evil", "hidden_size": 9}\n' >"$src/config.json" # same length
set +e
fetch "$WORK/p11" hf org/tiny-model "$WORK/m11" --endpoint "$E" --cache "$WORK/c11"; rc=$?
set -e
[ $rc -eq 3 ] && grep -q "git blob id mismatch" "$WORK/p11.err" || fail "changed non-LFS file: rc $rc $(cat "$WORK/p11.err")"
[ ! -e "$WORK/m11" ] || fail "m11 left behind"
pass "changed non-LFS file refused: $(tail -n1 "$WORK/p11.err")"
