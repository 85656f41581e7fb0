#!/bin/bash
# agimport stage MEDIUM: a media set imported one medium at a time, in any
# order, with progress kept between runs; a medium of another bundle is
# refused while an import is in progress.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?AGCTL must point at the agctl binary}"
cd "$WORK"
mkdir -p tree/sub
head -c 300000 /dev/urandom > tree/random.bin
seq 1 20000 > tree/sub/numbers.txt
: > tree/empty
head -c 70000 /dev/zero > tree/zeros.bin
ln -s sub/numbers.txt tree/link
chmod 0750 tree/sub
keygen k
spec spec.json stagetest 3 files:payload:tree
"$AGPACK" build spec.json --key k.key --out set --volume-size 64K --chunk-size 16K --parity 1 --media 200K >build.out 2>&1 ||
	{ echo "Bail out! cannot build: $(cat build.out)"; exit 1; }
media=$(cd set && ls -d medium-* | sort -r)
nmed=$(echo "$media" | wc -l)
diag "$nmed media"
"$AGCTL" --root R init --pubkey k.pub >/dev/null

# The other bundle: same key and name, one more file.
echo extra > tree/extra.txt
"$AGPACK" build spec.json --key k.key --out other --volume-size 64K --chunk-size 16K --parity 1 --media 200K >/dev/null 2>&1
rm tree/extra.txt

i=0
for m in $media; do
	i=$((i + 1))
	if [ $i = 2 ]; then
		expect_exit 3 "a medium of another bundle is refused while an import is in progress" "$AGIMPORT" stage other/medium-01 --root R
		last_output | grep -q "import of another bundle or version is in progress" && ok "message says why" || { not_ok "message says why"; last_output | sed 's/^/#   /'; }
	fi
	if [ $i -lt $nmed ]; then
		check "stage $m (medium $i of $nmed taken)" "$AGIMPORT" stage "set/$m" --root R
		if [ $i = 1 ]; then
			last_output | grep -q "still needed: medium " && ok "agimport says which media are still needed" || { not_ok "agimport says which media are still needed"; last_output | sed 's/^/#   /'; }
			check "a medium staged twice is harmless" "$AGIMPORT" stage "set/$m" --root R
			test -e R/slots/blue/payload && not_ok "nothing is staged before the last medium" || ok "nothing is staged before the last medium"
			sz=$(du -sk R/staging/media | cut -f1)
			diag "work dir after one medium: ${sz} KiB"
			ls R/staging/media | grep -q agv && not_ok "no volume copied into the clean zone" || ok "no volume copied into the clean zone"
		fi
	else
		check "the last medium completes the import" "$AGIMPORT" stage "set/$m" --root R
		last_output | grep -q "staged bundle stagetest channel stable version 3 into slot blue" && ok "staged into slot blue" || { not_ok "staged into slot blue"; last_output | sed 's/^/#   /'; }
	fi
done
check "the staged tree is the input" same_tree tree R/slots/blue/payload
test ! -e R/staging/media && ok "the work directory is gone" || not_ok "the work directory is gone"
"$AGCTL" --root R status >st.out 2>&1
grep -q "blue  staged    stagetest stable v3" st.out && ok "agctl status shows the staged bundle" || { not_ok "agctl status shows the staged bundle"; sed 's/^/#   /' st.out; }
check "the audit log is intact" "$AGCTL" --root R audit verify
n_med=$(grep -c '"import-medium"' R/audit.log || true)
[ "$n_med" -ge "$nmed" ] && ok "every medium taken is audited ($n_med records)" || not_ok "every medium taken is audited ($n_med records)"

# Killed after its first volume: the next run picks up where it stopped.
rm -rf R3 && "$AGCTL" --root R3 init --pubkey k.pub >/dev/null
big=$(cd set && for m in medium-*; do echo "$(ls $m | grep -c '^vol-') $m"; done | sort -n | tail -1 | cut -d' ' -f2)
rm -rf R4 && "$AGCTL" --root R4 init --pubkey k.pub >/dev/null
full=$("$AGIMPORT" stage "set/$big" --root R4 2>&1 | grep -o '[0-9]* new chunk' | cut -d' ' -f1)
AGKIT_CRASH_AT=media:volume "$AGIMPORT" stage "set/$big" --root R3 >/dev/null 2>&1
rc=$?
[ $rc = 137 ] && ok "killed at the first volume checkpoint" || not_ok "killed at the first volume checkpoint (exit $rc)"
"$AGIMPORT" stage "set/$big" --root R3 >resume.out 2>&1
again=$(grep -o '[0-9]* new chunk' resume.out | cut -d' ' -f1)
[ -n "$again" ] && [ -n "$full" ] && [ "$again" -gt 0 ] && [ "$again" -lt "$full" ] &&
	ok "the rerun decodes only what the killed run had not recorded ($again of the medium's $full chunks)" ||
	{ not_ok "the rerun resumes ($again of $full)"; sed 's/^/#   /' resume.out; }
for m in $media; do "$AGIMPORT" stage "set/$m" --root R3 >last.out 2>&1 || break; done
check "after the crash the set still completes correctly" same_tree tree R3/slots/blue/payload

# A corrupted medium is refused and leaves the recorded progress alone.
rm -rf R2 && "$AGCTL" --root R2 init --pubkey k.pub >/dev/null
first=$(echo "$media" | head -1); second=$(echo "$media" | sed -n 2p)
check "stage one medium into a new root" "$AGIMPORT" stage "set/$first" --root R2
cp -a "set/$second" bad
v=$(cd bad && ls vol-*.agv | head -1)
$PY -c 'import sys; h=open(sys.argv[1],"r+b"); h.seek(100); b=h.read(1); h.seek(100); h.write(bytes([b[0]^1]))' "bad/$v"
expect_exit 3 "a medium with a corrupted volume is refused" "$AGIMPORT" stage bad --root R2
last_output | grep -q "$v" && ok "message names the volume" || not_ok "message names the volume"
for m in $(echo "$media" | tail -n +2); do "$AGIMPORT" stage "set/$m" --root R2 >last.out 2>&1 || break; done
grep -q "staged bundle stagetest" last.out && ok "the good media complete the import after the refusal" || { not_ok "the good media complete the import"; sed 's/^/#   /' last.out; }
check "... with the right content" same_tree tree R2/slots/blue/payload
done_testing
