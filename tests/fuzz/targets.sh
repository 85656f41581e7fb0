#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Every fuzz target is in each list that names them: the ALL list of
# scripts/fuzz.sh, fuzz_targets in tests/fuzz/meson.build, a row of the
# table in tests/fuzz/README.md, a harness fuzz-NAME.c and a seed corpus.
# Usage: targets.sh SOURCE_ROOT
set -u
root=${1:?usage: targets.sh SOURCE_ROOT}
n=0 failed=0
check() { # DESCRIPTION WANT GOT
	n=$((n + 1))
	local missing extra
	missing=$(comm -23 <(echo "$2") <(echo "$3") | tr '\n' ' ')
	extra=$(comm -13 <(echo "$2") <(echo "$3") | tr '\n' ' ')
	if [ -z "$missing$extra" ]; then
		echo "ok $n - $1"
	else
		failed=$((failed + 1))
		echo "not ok $n - $1"
		[ -n "$missing" ] && echo "#   missing: $missing"
		[ -n "$extra" ] && echo "#   not in scripts/fuzz.sh ALL: $extra"
	fi
}
all=$(sed -n 's/^ALL="\(.*\)"$/\1/p' "$root/scripts/fuzz.sh" | tr ' ' '\n' | sed '/^$/d' | sort)
[ "$(echo "$all" | wc -l)" -ge 10 ] && echo "ok $((n += 1)) - scripts/fuzz.sh names its targets in ALL" ||
	{ echo "not ok $((n += 1)) - scripts/fuzz.sh names its targets in ALL"; failed=$((failed + 1)); }
meson=$(sed -n '/^fuzz_targets = {/,/^}/s/^  '"'"'\([a-z0-9_-]*\)'"'"' :.*/\1/p' "$root/tests/fuzz/meson.build" | sort)
check "tests/fuzz/meson.build builds each target of ALL" "$all" "$meson"
readme=$(sed -n 's/^| `fuzz-\([a-z0-9_-]*\)` |.*/\1/p' "$root/tests/fuzz/README.md" | sort)
check "tests/fuzz/README.md has a row for each" "$all" "$readme"
harness=$(cd "$root/tests/fuzz" && ls fuzz-*.c | sed 's/^fuzz-\(.*\)\.c$/\1/' | sort)
check "each has its harness tests/fuzz/fuzz-NAME.c" "$all" "$harness"
corpus=$(cd "$root/tests/fuzz/corpus" && ls -d */ | tr -d / | sort)
check "each has a seed corpus tests/fuzz/corpus/NAME/" "$all" "$corpus"
echo "1..$n"
[ "$failed" = 0 ]
