#!/bin/bash
# Packing and extracting 2 GiB stays within a fixed memory bound (peak RSS),
# whatever the input size: the pipeline streams chunks through a bounded ring
# of thread-count + 2 slots.  The 64 MiB bound is asserted for 2 threads (the
# default on a 2-CPU machine), so it means the same on any CI machine; with
# more CPUs the default run is also checked against the 256 MiB ceiling.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
keygen k
LIMIT_KIB=$((64 * 1024))
avail=$(df -Pk . | awk 'NR==2 {print $4}')
[ "$avail" -gt $((7 * 1024 * 1024)) ] || skip_all "needs 7 GiB free in $WORK"
mkdir big
# Half incompressible, half compressible text: both coder paths see real work.
head -c 1G /dev/urandom > big/random.bin
yes "the quick brown fox jumps over the lazy dog 0123456789" | head -c 1G > big/text.txt
spec spec.json mem 1 files:big:big
# peak_rss CMD...: runs CMD, prints its peak RSS in KiB, fails when CMD fails.
peak_rss() {
	$PY - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
sys.stderr.write(r.stderr.decode(errors="replace"))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
PY
}
if rss=$(peak_rss "$AGPACK" build spec.json --key k.key --out b --threads 2); then
	ok "pack 2 GiB"
	diag "agpack build peak RSS: $rss KiB"
	[ "$rss" -lt "$LIMIT_KIB" ] && ok "pack peak RSS $rss KiB < $LIMIT_KIB KiB" || not_ok "pack peak RSS $rss KiB >= $LIMIT_KIB KiB"
else
	not_ok "pack 2 GiB"; not_ok "pack peak RSS"
fi
if rss=$(peak_rss "$AGIMPORT" verify b --pubkey k.pub --threads 2); then
	ok "verify 2 GiB"
	diag "agimport verify peak RSS: $rss KiB"
	[ "$rss" -lt "$LIMIT_KIB" ] && ok "verify peak RSS $rss KiB < $LIMIT_KIB KiB" || not_ok "verify peak RSS $rss KiB >= $LIMIT_KIB KiB"
else
	not_ok "verify 2 GiB"; not_ok "verify peak RSS"
fi
if rss=$(peak_rss "$AGIMPORT" extract b --pubkey k.pub --to out --threads 2); then
	ok "extract 2 GiB"
	diag "agimport extract peak RSS: $rss KiB"
	[ "$rss" -lt "$LIMIT_KIB" ] && ok "extract peak RSS $rss KiB < $LIMIT_KIB KiB" || not_ok "extract peak RSS $rss KiB >= $LIMIT_KIB KiB"
else
	not_ok "extract 2 GiB"; not_ok "extract peak RSS"
fi
check "extracted content identical" sh -c 'cmp big/random.bin out/big/random.bin && cmp big/text.txt out/big/text.txt'
if [ "$(nproc)" -gt 2 ]; then
	rm -rf b out
	for step in "pack:$AGPACK build spec.json --key k.key --out b" "extract:$AGIMPORT extract b --pubkey k.pub --to out"; do
		if rss=$(peak_rss ${step#*:}); then
			[ "$rss" -lt $((256 * 1024)) ] && ok "${step%%:*} with $(nproc) default threads: peak RSS $rss KiB < 256 MiB" ||
				not_ok "${step%%:*} with $(nproc) default threads: peak RSS $rss KiB >= 256 MiB"
		else
			not_ok "${step%%:*} with default threads"
		fi
	done
fi
done_testing
