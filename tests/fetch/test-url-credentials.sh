#!/bin/sh
# Security review (issue 13): a url source's user:password@ and credential
# query parameters (token, access_token, sig, signature, X-Amz-*, ...) are
# used for the download but never recorded in the signed provenance or logs.
. "$(dirname "$0")/lib.sh"
need nginx

mkdir -p "$WORK/www/files"
head -c 200000 /dev/urandom >"$WORK/www/files/data.bin"
sum=$(sha256sum <"$WORK/www/files/data.bin" | cut -d' ' -f1)
P=$(free_port)
start_nginx "$P" "$WORK/www" ""
SECRETS="alice s3cr3tpw TOK1 SIG2 CRED3 TOK4 APIK5 SIGN6"
U="http://alice:s3cr3tpw@127.0.0.1:$P/files/data.bin?token=TOK1&X-Amz-Signature=SIG2&version=7&X-Amz-Credential=CRED3&access_token=TOK4&api_key=APIK5&Signature=SIGN6#part"
leaks() { # leaks FILE...: prints the secrets found in the files
	for s in $SECRETS; do grep -l "$s" "$@" >/dev/null 2>&1 && echo "$s"; done; true
}

fetch "$WORK/p1" url "$U" "$sum" "$WORK/f1" --cache "$WORK/c1" || { cat "$WORK/p1.err"; fail "url with credentials"; }
cmp "$WORK/f1" "$WORK/www/files/data.bin" || fail "content differs"
grep -q '/files/data.bin?token=TOK1&' "$WORK/access.log" || { cat "$WORK/access.log"; fail "the query string did not reach the server"; }
pass "the download itself used the credentials"
url=$(jget "$WORK/p1" url)
[ "$url" = "http://127.0.0.1:$P/files/data.bin?version=7#part" ] || fail "provenance url: $url"
[ -z "$(leaks "$WORK/p1")" ] || fail "provenance leaks: $(leaks "$WORK/p1")"
[ "$(jget "$WORK/p1" url_redacted)" = True ] || fail "provenance does not say the url was redacted"
pass "provenance records the url without userinfo or credential parameters"

fetch "$WORK/p2" url "$U" unpinned "$WORK/f2" --cache "$WORK/c2" || { cat "$WORK/p2.err"; fail "unpinned"; }
grep -q "is unpinned" "$WORK/p2.err" || fail "no unpinned warning"
[ -z "$(leaks "$WORK/p2" "$WORK/p2.err")" ] || fail "unpinned run leaks: $(leaks "$WORK/p2" "$WORK/p2.err")"
pass "the unpinned warning and its provenance leak nothing"

bad=$(echo "$sum" | tr '0-9a-f' '1-9a-f0')
set +e
fetch "$WORK/p3" url "$U" "$bad" "$WORK/f3" --cache "$WORK/c3"; rc=$?
fetch "$WORK/p4" url "http://alice:s3cr3tpw@127.0.0.1:$P/files/nope?token=TOK1" "$sum" "$WORK/f4" --cache "$WORK/c3"; rc4=$?
set -e
[ $rc -eq 3 ] && grep -q "sha256 mismatch" "$WORK/p3.err" || fail "wrong digest: rc $rc: $(cat "$WORK/p3.err")"
[ $rc4 -eq 4 ] || fail "404: rc $rc4: $(cat "$WORK/p4.err")"
[ -z "$(leaks "$WORK/p3.err" "$WORK/p4.err")" ] || fail "error messages leak: $(leaks "$WORK/p3.err" "$WORK/p4.err")"
pass "error messages (sha256 mismatch, 404) leak nothing"

fetch "$WORK/p5" url "http://127.0.0.1:$P/files/data.bin?version=7" "$sum" "$WORK/f5" --cache "$WORK/c5" || fail "plain url"
[ "$(jget "$WORK/p5" url)" = "http://127.0.0.1:$P/files/data.bin?version=7" ] || fail "a url without credentials changed"
[ -z "$(jget "$WORK/p5" url_redacted)" ] || fail "url_redacted on a clean url"
pass "a url without credentials is recorded as is"
