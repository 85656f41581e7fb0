#!/bin/bash
# oci-archive artifacts: docker save tarballs, OCI layouts (directory and tar) survive
# pack -> extract as OCI image layouts that skopeo accepts, digests unchanged.
. "$(dirname "$0")/../lib.sh"
need skopeo
cd "$WORK"
keygen k
export XDG_RUNTIME_DIR=$WORK/run; mkdir -p run
POL=(--policy "$TESTS_DIR/bundle/skopeo-policy.json")
$PY "$TESTS_DIR/bundle/mkdockersave.py" save.tar demo/app:v1

spec s1.json img 1 oci-archive:runtime:save.tar
check "pack a docker save tarball" "$AGPACK" build s1.json --key k.key --out b1
check "extract it" "$AGIMPORT" extract b1 --pubkey k.pub --to out1
check "extraction is an OCI image layout" test -f out1/runtime/oci-layout -a -f out1/runtime/index.json
check "skopeo inspects oci:DIR:v1" skopeo "${POL[@]}" inspect oci:out1/runtime:v1
cfg=$(tar -xOf save.tar manifest.json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Config"])')
want=$(tar -xOf save.tar "$cfg" | sha256sum | cut -c1-64)
check "config digest (image id) is unchanged" sh -c "skopeo ${POL[*]} inspect --raw oci:out1/runtime:v1 | grep -q sha256:$want"

check "skopeo copies the docker archive to an OCI layout" skopeo "${POL[@]}" copy -q docker-archive:save.tar oci:layout:v1
spec s2.json img 2 oci-archive:runtime:layout
check "pack an OCI layout directory" "$AGPACK" build s2.json --key k.key --out b2
check "extract it" "$AGIMPORT" extract b2 --pubkey k.pub --to out2
skopeo "${POL[@]}" inspect --raw oci:layout:v1 > raw-in.json
skopeo "${POL[@]}" inspect --raw oci:out2/runtime:v1 > raw-out.json 2>&1
check "manifest bytes identical after the round trip" cmp raw-in.json raw-out.json
check "skopeo copies the extracted image onward" skopeo "${POL[@]}" copy -q oci:out2/runtime:v1 oci:again:v1

tar -C layout -cf layout.tar .
spec s3.json img 3 oci-archive:runtime:layout.tar
check "pack an OCI layout tar" "$AGPACK" build s3.json --key k.key --out b3
check "extract it" "$AGIMPORT" extract b3 --pubkey k.pub --to out3
skopeo "${POL[@]}" inspect --raw oci:out3/runtime:v1 > raw-out3.json 2>&1
check "manifest bytes identical (tar input)" cmp raw-in.json raw-out3.json

$PY "$TESTS_DIR/bundle/mkdockersave.py" evil.tar demo/app:v1 --evil
spec s4.json img 4 oci-archive:runtime:evil.tar
expect_exit 3 "a tarball member escaping with ../ is refused" "$AGPACK" build s4.json --key k.key --out b4
check "nothing written outside" test ! -e escape -a ! -e ../escape -a ! -e b4
echo "not a tar" > junk.tar
spec s5.json img 5 oci-archive:runtime:junk.tar
expect_exit 3 "a file that is not a tar is refused" "$AGPACK" build s5.json --key k.key --out b5
done_testing
