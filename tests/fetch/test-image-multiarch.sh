#!/bin/sh
# A multi-arch OCI index: the requested platform's manifest is selected, the
# index digest recorded in provenance, an absent platform refused.
. "$(dirname "$0")/lib.sh"
need docker-registry skopeo

python3 "$TESTDIR/mkimage.py" "$WORK/src" v1 --arch amd64,arm64 --layers 1 >"$WORK/digests"
P=$(free_port); H=127.0.0.1:$P
start_plain_registry reg "$P"
seed_image "$WORK/src" v1 "$H" demo/multi --all
idx=$(raw_digest "docker://$H/demo/multi:v1")
arm=$(awk '$1=="arm64"{print $2}' "$WORK/digests")
amd=$(awk '$1=="amd64"{print $2}' "$WORK/digests")

fetch "$WORK/p1" image "$H/demo/multi:v1" "$WORK/arm" --platform linux/arm64 --cache "$WORK/c" --insecure "$H" ||
	{ cat "$WORK/p1.err"; fail "fetch arm64"; }
[ "$(jget "$WORK/p1" digest)" = "$arm" ] || fail "arm64 manifest not selected: $(jget "$WORK/p1" digest) != $arm"
[ "$(jget "$WORK/p1" index_digest)" = "sha256:$idx" ] || fail "index digest not recorded"
[ "$(jget "$WORK/p1" platform)" = "linux/arm64" ] || fail "platform not recorded"
skopeo inspect "oci:$WORK/arm:v1" | grep -q '"Architecture": "arm64"' || fail "skopeo sees no arm64 image"
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/arm:v1" "docker://$H/demo/armcopy:v1" || fail "skopeo copy"
[ "sha256:$(raw_digest "docker://$H/demo/armcopy:v1")" = "$arm" ] || fail "arm64 digest changed through skopeo"
pass "linux/arm64 selected from index sha256:$idx"

fetch "$WORK/p2" image "$H/demo/multi:v1" "$WORK/amd" --platform linux/amd64 --cache "$WORK/c" --insecure "$H" || fail "fetch amd64"
[ "$(jget "$WORK/p2" digest)" = "$amd" ] || fail "amd64 manifest not selected"
pass "linux/amd64 selected"

if fetch "$WORK/p3" image "$H/demo/multi:v1" "$WORK/s390" --platform linux/s390x --cache "$WORK/c" --insecure "$H"; then
	fail "absent platform accepted"
fi
grep -q "no manifest for linux/s390x" "$WORK/p3.err" || fail "unclear message: $(cat "$WORK/p3.err")"
[ ! -e "$WORK/s390" ] || fail "output left behind"
pass "absent platform refused: $(tail -n1 "$WORK/p3.err")"

# The same images as a Docker manifest list of schema 2 manifests.
seed_image "$WORK/src" v1 "$H" demo/dlist --all --format v2s2
list=$(raw_digest "docker://$H/demo/dlist:v1")
armd=$(skopeo inspect --raw --tls-verify=false "docker://$H/demo/dlist:v1" |
	python3 -c "import json,sys; print([m['digest'] for m in json.load(sys.stdin)['manifests'] if m['platform']['architecture']=='arm64'][0])")
fetch "$WORK/p4" image "$H/demo/dlist:v1" "$WORK/dl" --platform linux/arm64 --cache "$WORK/c" --insecure "$H" ||
	{ cat "$WORK/p4.err"; fail "fetch from a Docker manifest list"; }
[ "$(jget "$WORK/p4" index_media_type)" = application/vnd.docker.distribution.manifest.list.v2+json ] || fail "list type"
[ "$(jget "$WORK/p4" index_digest)" = "sha256:$list" ] || fail "list digest"
[ "$(jget "$WORK/p4" digest)" = "$armd" ] || fail "arm64 entry of the list not selected"
[ "$(jget "$WORK/p4" media_type)" = application/vnd.docker.distribution.manifest.v2+json ] || fail "entry type"
pass "Docker manifest list: linux/arm64 schema 2 manifest selected"
