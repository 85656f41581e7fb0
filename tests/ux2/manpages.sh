#!/usr/bin/env bash
# Each tool's usage text and its man page name the same long options: every
# option in the usage appears in the man page and vice versa (lines of the man
# page that mention another agkit tool are cross-references, left out).
source "$(dirname "$0")/../lib.sh"
SRC=$(cd "$TESTS_DIR/.." && pwd)
BIN=$(dirname "$AGPACK")/..
for t in agpack agimport agctl agrun agserve; do
	sec=1; [ $t = agctl ] && sec=8
	b=$BIN/$t/$t
	if [ ! -x "$b" ]; then not_ok "$t: not built"; continue; fi
	{ "$b" --help; [ $t = agrun ] && { "$b" record --help; "$b" check --help; }; } 2>&1 |
		grep -oE -- '--[a-z][a-z0-9-]*' | sort -u > "$WORK/$t.usage"
	others=$(echo agpack agimport agctl agrun agserve | tr ' ' '\n' | grep -vx $t | paste -sd'|')
	grep -vE "($others)" "$SRC/docs/man/$t.$sec" | sed 's/\\-/-/g; s/\\f[BIRP]//g' |
		grep -oE -- '--[a-z][a-z0-9-]*' | sort -u > "$WORK/$t.man"
	if [ "$(wc -l < "$WORK/$t.usage")" -lt 3 ]; then not_ok "$t: usage text lists options"; continue; fi
	only_u=$(comm -23 "$WORK/$t.usage" "$WORK/$t.man" | tr '\n' ' ')
	only_m=$(comm -13 "$WORK/$t.usage" "$WORK/$t.man" | tr '\n' ' ')
	if [ -z "$only_u" ]; then ok "$t: every option of the usage is in $t.$sec"; else not_ok "$t: in the usage, not in $t.$sec: $only_u"; fi
	if [ -z "$only_m" ]; then ok "$t: every option of $t.$sec is in the usage"; else not_ok "$t: in $t.$sec, not in the usage: $only_m"; fi
done
# agrun --version (agpack, agimport and agctl had it already; agserve has none yet).
for t in agpack agimport agctl agrun; do
	if "$BIN/$t/$t" --version 2>/dev/null | grep -qE "^$t [0-9]"; then ok "$t --version"; else not_ok "$t --version"; fi
done
done_testing
