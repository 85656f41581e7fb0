#!/bin/sh
# A blob transfer cut mid-way (proxy in front of the registry) resumes with a
# Range request and does not fetch completed bytes again; a 503 with
# Retry-After is honoured.
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers 1 --layer-mb 4 >/dev/null
P=$(free_port)
start_plain_registry reg "$P"
seed_image "$WORK/src" v1 "127.0.0.1:$P" demo/big

X=$(free_port); HX=127.0.0.1:$X
bg proxy python3 "$TESTDIR/cutproxy.py" "$X" "$P" cut:2000000 "$WORK/sent"
wait_port "$X"
fetch "$WORK/p1" image "$HX/demo/big:v1" "$WORK/o1" --cache "$WORK/c" --insecure "$HX" ||
	{ cat "$WORK/p1.err"; fail "fetch through the cutting proxy"; }
grep -q "resuming at byte" "$WORK/p1.err" || { cat "$WORK/p1.err"; fail "no resume happened"; }
total=$(counter "$WORK/p1" total_bytes)
sent=$(cat "$WORK/sent")
# Everything the proxy passed to us: content once plus some KiB of headers.
[ "$sent" -lt $((total + 65536)) ] || fail "proxy sent $sent bytes for $total bytes of content: bytes fetched twice"
[ "$(counter "$WORK/p1" downloaded_bytes)" -le "$total" ] || fail "downloaded_bytes > total"
want=$(raw_digest "docker://127.0.0.1:$P/demo/big:v1")
[ "$(jget "$WORK/p1" digest)" = "sha256:$want" ] || fail "digest"
skopeo inspect "oci:$WORK/o1:v1" >/dev/null || fail "skopeo rejects the resumed layout"
pass "cut at 2000000 bytes, resumed: $sent bytes on the wire for $total bytes of content"

Y=$(free_port); HY=127.0.0.1:$Y
bg busy python3 "$TESTDIR/cutproxy.py" "$Y" "$P" busy:2 "$WORK/sent2"
wait_port "$Y"
start=$(date +%s)
fetch "$WORK/p2" image "$HY/demo/big:v1" "$WORK/o2" --cache "$WORK/c2" --insecure "$HY" ||
	{ cat "$WORK/p2.err"; fail "fetch after 503"; }
grep -q "retrying in 2.0s" "$WORK/p2.err" || { cat "$WORK/p2.err"; fail "Retry-After not honoured"; }
[ $(($(date +%s) - start)) -ge 2 ] || fail "did not wait"
pass "503 with Retry-After: 2 waited and retried"
