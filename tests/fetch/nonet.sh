#!/bin/sh
# Clean-zone binaries carry no network code: they do not link libcurl
# (directly or through another library) and define or import no curl_ symbol
# and none of the fetch module's ag_fetch_ functions.  agpack, which has the
# network sources, must show both, so the checks are known to work.
#   AGPACK=path  CLEAN_BINS="path ..."  (agimport, and agctl/agrun once they exist)
set -eu
fail() { echo "FAIL: $*"; exit 1; }
for b in readelf nm; do command -v $b >/dev/null 2>&1 || { echo "SKIP: $b not installed"; exit 77; }; done
: "${AGPACK:?}" "${CLEAN_BINS:?}"

needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
curl_syms() { { nm -D "$1" 2>/dev/null; nm "$1" 2>/dev/null; } | grep -E ' (curl_|ag_fetch_)' | sort -u; }

needed "$AGPACK" | grep -q '^libcurl' || fail "agpack does not link libcurl: the check below would prove nothing"
[ -n "$(curl_syms "$AGPACK")" ] || fail "no curl_/ag_fetch_ symbols found in agpack: the symbol check is broken"
echo "ok: agpack links $(needed "$AGPACK" | grep '^libcurl') and has $(curl_syms "$AGPACK" | wc -l) curl_/ag_fetch_ symbols"

n=0
for exe in $CLEAN_BINS; do
	[ -x "$exe" ] || fail "$exe: not built"
	name=$(basename "$exe")
	if needed "$exe" | grep -q '^libcurl'; then fail "$name links libcurl"; fi
	if command -v ldd >/dev/null 2>&1 && ldd "$exe" | grep -q 'libcurl'; then
		fail "$name pulls in libcurl through another library: $(ldd "$exe" | grep libcurl)"
	fi
	s=$(curl_syms "$exe")
	[ -z "$s" ] || fail "$name has network symbols: $(echo "$s" | head -n 3 | tr '\n' ' ')"
	echo "ok: $name: NEEDED $(needed "$exe" | tr '\n' ' ')- no libcurl, no curl_ or ag_fetch_ symbols"
	n=$((n + 1))
done
[ $n -gt 0 ] || fail "no clean-zone binaries given"
