#!/bin/sh
# image source against Debian's docker-registry over plain HTTP (insecure list):
# OCI and Docker schema 2 manifests, skopeo round trip, cache re-run, dry run,
# pinned digest, refusal without the insecure entry, corrupted blob.
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --layers 2 >/dev/null
P=$(free_port); H=127.0.0.1:$P
start_plain_registry reg "$P"
seed_image "$WORK/src" v1 "$H" demo/app
seed_image "$WORK/src" v1 "$H" demo/v2s2 --format v2s2

# 1. OCI manifest, tag ref
fetch "$WORK/p1" image "$H/demo/app:v1" "$WORK/out1" --cache "$WORK/cache" --insecure "$H" ||
	{ cat "$WORK/p1.err"; fail "fetch demo/app:v1"; }
want=$(raw_digest "docker://$H/demo/app:v1")
got=$(jget "$WORK/p1" digest)
[ "$got" = "sha256:$want" ] || fail "provenance digest $got != registry sha256:$want"
[ "$(sha256sum <"$WORK/out1/blobs/sha256/$want" | cut -d' ' -f1)" = "$want" ] || fail "manifest bytes differ"
grep -q '"org.opencontainers.image.ref.name":"v1"' "$WORK/out1/index.json" || fail "ref.name annotation missing"
skopeo inspect "oci:$WORK/out1:v1" >/dev/null || fail "skopeo inspect rejects the layout"
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/out1:v1" "docker://$H/demo/copy:v1" || fail "skopeo copy from layout"
[ "$(raw_digest "docker://$H/demo/copy:v1")" = "$want" ] || fail "digest changed through skopeo copy"
[ "$(counter "$WORK/p1" downloaded_bytes)" -gt 0 ] || fail "first run downloaded nothing"
pass "OCI manifest fetched, skopeo accepts it, digest unchanged"

# 2. re-run with the same cache fetches no content
fetch "$WORK/p2" image "$H/demo/app:v1" "$WORK/out2" --cache "$WORK/cache" --insecure "$H" || fail "re-run"
[ "$(counter "$WORK/p2" downloaded_bytes)" = 0 ] || fail "re-run downloaded $(counter "$WORK/p2" downloaded_bytes) bytes"
[ "$(counter "$WORK/p2" total_bytes)" = "$(counter "$WORK/p1" total_bytes)" ] || fail "total differs on re-run"
cmp "$WORK/out1/index.json" "$WORK/out2/index.json" || fail "re-run layout differs"
pass "re-run served from cache (0 bytes downloaded)"

# 3. Docker schema 2 manifest keeps its media type and digest
fetch "$WORK/p3" image "$H/demo/v2s2:v1" "$WORK/out3" --cache "$WORK/cache" --insecure "$H" || fail "fetch v2s2"
[ "$(jget "$WORK/p3" media_type)" = application/vnd.docker.distribution.manifest.v2+json ] || fail "v2s2 media type"
want3=$(raw_digest "docker://$H/demo/v2s2:v1")
[ "$(jget "$WORK/p3" digest)" = "sha256:$want3" ] || fail "v2s2 digest"
[ "$(sha256sum <"$WORK/out3/blobs/sha256/$want3" | cut -d' ' -f1)" = "$want3" ] || fail "v2s2 manifest bytes differ"
# index.json: the descriptor says the OCI manifest type (skopeo 1.9.3 skips Docker
# types there, see FETCH.md); the real type is in an annotation and in provenance.
python3 - "$WORK/out3/index.json" "sha256:$want3" <<'PY' || fail "v2s2 index.json descriptor"
import json, sys
d = json.load(open(sys.argv[1]))["manifests"]
assert len(d) == 1 and d[0]["digest"] == sys.argv[2], d
assert d[0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json", d
assert d[0]["annotations"]["org.agkit.manifest.media-type"] == "application/vnd.docker.distribution.manifest.v2+json", d
PY
grep -q '"mediaType": *"application/vnd.docker.distribution.manifest.v2+json"' "$WORK/out3/blobs/sha256/$want3" ||
	fail "v2s2 manifest blob does not say Docker"
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/out3:v1" "docker://$H/demo/v2s2copy:v1" ||
	fail "skopeo copy of the schema 2 layout"
[ "$(raw_digest "docker://$H/demo/v2s2copy:v1")" = "$want3" ] || fail "v2s2 digest changed through skopeo copy"
[ "$(manifest_type "$H" demo/v2s2copy v1)" = application/vnd.docker.distribution.manifest.v2+json ] ||
	fail "v2s2 pushed back as $(manifest_type "$H" demo/v2s2copy v1)"
pass "Docker schema 2 manifest kept as is; skopeo copy pushes it back with digest and media type unchanged"

# 4. pinned by digest
fetch "$WORK/p4" image "$H/demo/app@sha256:$want" "$WORK/out4" --cache "$WORK/cache" --insecure "$H" || fail "fetch by digest"
[ "$(jget "$WORK/p4" digest)" = "sha256:$want" ] || fail "digest ref"
pass "reference by digest"

# 5. dry run: sizes, no download, no output
fetch "$WORK/p5" image "$H/demo/app:v1" "$WORK/out5" --cache "$WORK/cache5" --insecure "$H" --dry-run || fail "dry run"
[ ! -e "$WORK/out5" ] || fail "dry run created the output"
[ "$(counter "$WORK/p5" total_bytes)" = "$(counter "$WORK/p1" total_bytes)" ] || fail "dry run size"
[ "$(counter "$WORK/p5" downloaded_bytes)" = 0 ] || fail "dry run downloaded blobs"
pass "dry run reports $(counter "$WORK/p5" total_bytes) bytes"

# 6. plain HTTP is refused unless the registry is listed as insecure
if fetch "$WORK/p6" image "$H/demo/app:v1" "$WORK/out6" --cache "$WORK/cache"; then fail "plain http accepted"; fi
[ ! -e "$WORK/out6" ] || fail "output left after failure"
pass "refused without --insecure: $(tail -n1 "$WORK/p6.err")"

# 7. an existing output path is never replaced
if fetch "$WORK/p7" image "$H/demo/app:v1" "$WORK/out1" --cache "$WORK/cache" --insecure "$H"; then fail "overwrote out"; fi
pass "existing output refused"

# 8. a corrupted blob in the registry fails loudly, leaves nothing
layer=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['layers'][1]['digest'][7:])" "$WORK/out1/blobs/sha256/$want")
data=$WORK/reg/docker/registry/v2/blobs/sha256/$(echo "$layer" | cut -c1-2)/$layer/data
[ -f "$data" ] || fail "registry storage layout unexpected ($data)"
size=$(stat -c %s "$data")
head -c "$size" /dev/urandom >"$data"
set +e
fetch "$WORK/p8" image "$H/demo/app:v1" "$WORK/out8" --cache "$WORK/cache8" --insecure "$H"
rc=$?
set -e
[ $rc -eq 3 ] || { cat "$WORK/p8.err"; fail "corrupt blob: exit $rc, want 3"; }
grep -q "sha256 mismatch" "$WORK/p8.err" || fail "no digest error message"
[ ! -e "$WORK/out8" ] || fail "output left after digest failure"
ls -d "$WORK"/out8.agtmp-* 2>/dev/null && fail "staging directory left behind"
[ ! -e "$WORK/cache8/blobs/sha256/$layer" ] || fail "corrupt blob entered the cache"
pass "corrupt blob rejected: $(tail -n1 "$WORK/p8.err")"

# 9. malformed references are usage errors
for bad in "$H/Demo/App:v1" "$H/demo/app:bad tag" "$H/demo/app@sha256:abc" "$H//app:v1" "$H/demo/app:-x"; do
	set +e
	fetch "$WORK/p9" image "$bad" "$WORK/out9" --cache "$WORK/cache" --insecure "$H"; rc=$?
	set -e
	[ $rc -eq 2 ] || fail "reference '$bad': exit $rc, want 2"
done
set +e
fetch "$WORK/p9" image "$H/demo/app:v1" "$WORK/out9" --platform linux --cache "$WORK/cache" --insecure "$H"; rc=$?
set -e
[ $rc -eq 2 ] || fail "platform 'linux': exit $rc, want 2"
pass "malformed references and platform refused (exit 2)"

# 10. a single-platform image: platform recorded from the config; a different one requested is refused
[ "$(jget "$WORK/p1" platform)" = linux/amd64 ] || fail "platform of a single manifest not recorded"
set +e
fetch "$WORK/p10" image "$H/demo/app:v1" "$WORK/out10" --platform linux/arm64 --cache "$WORK/cache" --insecure "$H"; rc=$?
set -e
[ $rc -eq 4 ] && grep -q "image is linux/amd64, not the requested linux/arm64" "$WORK/p10.err" ||
	fail "platform mismatch: rc $rc $(cat "$WORK/p10.err")"
[ ! -e "$WORK/out10" ] || fail "out10 left behind"
pass "single-platform image: wrong platform refused"
