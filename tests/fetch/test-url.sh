#!/bin/sh
# url source against nginx: pinned file, cache re-run, wrong digest, unpinned,
# redirects (followed, bounded), 404, interrupted transfer resumed with Range.
. "$(dirname "$0")/lib.sh"
need nginx

mkdir -p "$WORK/www/files"
head -c 3000000 /dev/urandom >"$WORK/www/files/data.bin"
sum=$(sha256sum <"$WORK/www/files/data.bin" | cut -d' ' -f1)
P=$(free_port); B=http://127.0.0.1:$P
start_nginx "$P" "$WORK/www" "location = /redir { return 302 /files/data.bin; }
    location = /loop { return 302 /loop; }"

fetch "$WORK/p1" url "$B/files/data.bin" "$sum" "$WORK/f1" --cache "$WORK/c" || { cat "$WORK/p1.err"; fail "pinned url"; }
cmp "$WORK/f1" "$WORK/www/files/data.bin" || fail "content differs"
[ "$(jget "$WORK/p1" sha256)" = "$sum" ] && [ "$(jget "$WORK/p1" pinned)" = True ] || fail "provenance"
[ "$(counter "$WORK/p1" downloaded_bytes)" = 3000000 ] || fail "downloaded_bytes"
pass "pinned url fetched"

n=$(wc -l <"$WORK/access.log")
fetch "$WORK/p2" url "$B/files/data.bin" "$sum" "$WORK/f2" --cache "$WORK/c" || fail "re-run"
[ "$(counter "$WORK/p2" downloaded_bytes)" = 0 ] || fail "re-run downloaded"
[ "$(wc -l <"$WORK/access.log")" = "$n" ] || fail "re-run contacted the server"
pass "re-run served from cache without a request"

bad=$(echo "$sum" | tr '0-9a-f' '1-9a-f0')
set +e
fetch "$WORK/p3" url "$B/files/data.bin" "$bad" "$WORK/f3" --cache "$WORK/c3"; rc=$?
set -e
[ $rc -eq 3 ] && grep -q "sha256 mismatch" "$WORK/p3.err" || fail "wrong digest: rc $rc: $(cat "$WORK/p3.err")"
[ ! -e "$WORK/f3" ] || fail "file left at the out path"
ls "$WORK"/f3.agtmp-* >/dev/null 2>&1 && fail "staging left behind"
[ -z "$(ls "$WORK/c3/tmp")" ] || fail "bad partial kept in the cache"
pass "wrong digest fails loudly (exit 3) and leaves nothing"

fetch "$WORK/p4" url "$B/redir" unpinned "$WORK/f4" --cache "$WORK/c4" || { cat "$WORK/p4.err"; fail "unpinned via redirect"; }
[ "$(jget "$WORK/p4" sha256)" = "$sum" ] && [ "$(jget "$WORK/p4" pinned)" = False ] || fail "unpinned provenance"
grep -q "warning: .* is unpinned; it had sha256 $sum" "$WORK/p4.err" || fail "no unpinned warning"
pass "unpinned accepted explicitly, digest recorded, warning logged; redirect followed"

set +e
fetch "$WORK/p5" url "$B/loop" "$sum" "$WORK/f5" --cache "$WORK/c5"; rc5=$?
fetch "$WORK/p6" url "$B/files/nope" "$sum" "$WORK/f6" --cache "$WORK/c5"; rc6=$?
fetch "$WORK/p7" url "$B/files/data.bin" "" "$WORK/f7" --cache "$WORK/c5"; rc7=$?
fetch "$WORK/p8" url "file:///etc/passwd" unpinned "$WORK/f8" --cache "$WORK/c5"; rc8=$?
set -e
grep -q "redirects" "$WORK/p5.err" && [ $rc5 -ne 0 ] || fail "redirect loop: $(cat "$WORK/p5.err")"
[ $rc6 -eq 4 ] || fail "404: rc $rc6"
[ $rc7 -eq 2 ] || fail "empty sha256: rc $rc7"
[ $rc8 -eq 2 ] || fail "file:// accepted: rc $rc8"
for f in f5 f6 f7 f8; do [ ! -e "$WORK/$f" ] || fail "$f left behind"; done
pass "redirect loop, 404, missing digest, file:// refused"

fetch "$WORK/p9" url "$B/files/data.bin" "$sum" "$WORK/f9" --cache "$WORK/c9" --dry-run || fail "dry run"
[ "$(counter "$WORK/p9" total_bytes)" = 3000000 ] && [ ! -e "$WORK/f9" ] || fail "dry run"
pass "dry run reports the size from HEAD"

X=$(free_port)
bg proxy python3 "$TESTDIR/cutproxy.py" "$X" "$P" cut:1000000 "$WORK/sent"
wait_port "$X"
: >"$WORK/access.log"
fetch "$WORK/p10" url "http://127.0.0.1:$X/files/data.bin" "$sum" "$WORK/f10" --cache "$WORK/c10" ||
	{ cat "$WORK/p10.err"; fail "resume"; }
cmp "$WORK/f10" "$WORK/www/files/data.bin" || fail "resumed content differs"
grep -q '/files/data.bin 206 .* "bytes=' "$WORK/access.log" || { cat "$WORK/access.log"; fail "no Range request seen by nginx"; }
sent=$(cat "$WORK/sent")
[ "$sent" -lt $((3000000 + 4096)) ] || fail "proxy sent $sent bytes: completed bytes fetched again"
pass "cut at 1000000 bytes, resumed with Range: $sent bytes on the wire for 3000000"

# An interrupted run (killed mid-transfer) leaves a partial file in the cache;
# the next run resumes from it and the server sends only the rest.
S=$(free_port)
bg stall python3 "$TESTDIR/cutproxy.py" "$S" "$P" stall:1200000 "$WORK/sent3"
wait_port "$S"
"$FETCH_TOOL" url "http://127.0.0.1:$S/files/data.bin" "$sum" "$WORK/f11" --cache "$WORK/c11" >/dev/null 2>&1 &
tool=$!
part=$WORK/c11/tmp/sha256-$sum.part
i=0
until [ -f "$part" ] && [ "$(stat -c %s "$part")" -ge 1000000 ]; do
	i=$((i + 1)); [ $i -lt 100 ] || { kill -9 $tool; fail "partial file never grew"; }
	sleep 0.1
done
kill -9 $tool; wait $tool 2>/dev/null || true
have=$(stat -c %s "$part")
[ ! -e "$WORK/f11" ] || fail "killed run left an output"
: >"$WORK/access.log"
fetch "$WORK/p12" url "$B/files/data.bin" "$sum" "$WORK/f11" --cache "$WORK/c11" || { cat "$WORK/p12.err"; fail "second run"; }
cmp "$WORK/f11" "$WORK/www/files/data.bin" || fail "content after cross-run resume"
grep -q "/files/data.bin 206 $((3000000 - have)) \"bytes=$have-\"" "$WORK/access.log" ||
	{ cat "$WORK/access.log"; fail "nginx did not serve exactly the missing $((3000000 - have)) bytes"; }
[ "$(counter "$WORK/p12" downloaded_bytes)" = $((3000000 - have)) ] || fail "downloaded_bytes after resume"
pass "killed run resumed by the next one: $have bytes kept, nginx sent $((3000000 - have))"
