#!/usr/bin/env bash
# Bash completion (scripts/completion/agkit.bash): commands and options
# complete, every option of each tool's usage is offered, and meson install
# puts it under DATADIR/bash-completion/completions/TOOL.
source "$(dirname "$0")/../lib.sh"
SRC=$(cd "$TESTS_DIR/.." && pwd)
C=$SRC/scripts/completion/agkit.bash
BIN=$(dirname "$AGPACK")/..
cd "$WORK" || exit 1
# comp FUNC WORDS...: the candidates for the last word.
comp() {
	local f=$1; shift
	bash -c 'source "$1"; shift; f=$1; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); $f; printf "%s\n" "${COMPREPLY[@]}"' _ "$C" "$f" "$@"
}
[ "$(comp _agimport agimport ins)" = inspect ] && ok "agimport ins<TAB>: inspect" || not_ok "agimport ins: $(comp _agimport agimport ins)"
[ "$(comp _agctl agctl --root R st)" = status ] && ok "agctl --root R st<TAB>: status" || not_ok "agctl st"
[ "$(comp _agimport agimport inspect D --sb)" = --sbom ] && ok "agimport inspect D --sb<TAB>: --sbom" || not_ok "inspect --sb"
[ "$(comp _agimport agimport D --root R --dry)" = --dry-run ] && ok "agimport D --root R --dry<TAB>: --dry-run" || not_ok "--dry"
[ "$(comp _agctl agctl health --slot g)" = green ] && ok "agctl health --slot g<TAB>: green" || not_ok "--slot g"
[ "$(comp _agpack agpack build s.json --med)" = --media ] && ok "agpack build s.json --med<TAB>: --media" || not_ok "--med"
mkdir -p bundle-dir; touch key.pub
[ "$(cd "$WORK" && comp _agimport agimport verify bundle-dir --pubkey ke)" = key.pub ] && ok "--pubkey completes file names" || not_ok "--pubkey files"

# Every long option of each usage appears in that tool's completion function.
for t in agpack agimport agctl agrun agserve; do
	{ "$BIN/$t/$t" --help; [ $t = agrun ] && { "$BIN/$t/$t" record --help; "$BIN/$t/$t" check --help; }; } 2>&1 |
		grep -oE -- '--[a-z][a-z0-9-]*' | sort -u > "$t.usage"
	sed -n "/^_$t()/,/^}/p" "$C" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u > "$t.comp"
	missing=$(comm -23 "$t.usage" "$t.comp" | tr '\n' ' ')
	if [ -s "$t.usage" ] && [ -z "$missing" ]; then ok "$t: completion offers every option of the usage"; else not_ok "$t: not completed: $missing"; fi
done

if [ -n "${MESON_BUILD_ROOT:-}" ] && command -v meson >/dev/null; then
	if timeout -k 5 300 meson install -C "$MESON_BUILD_ROOT" --no-rebuild --destdir "$WORK/inst" > inst.out 2>&1; then
		n=0
		for t in agpack agimport agctl agrun agserve; do
			f=$(find "$WORK/inst" -path "*/share/bash-completion/completions/$t" -type f)
			[ -n "$f" ] && cmp -s "$f" "$C" && n=$((n + 1))
		done
		[ $n = 5 ] && ok "meson install: DATADIR/bash-completion/completions/{agpack,agimport,agctl,agrun,agserve}" || not_ok "installed completions: $n of 5"
	else not_ok "meson install --destdir"; tail -5 inst.out | sed 's/^/#   /'; fi
else
	diag "MESON_BUILD_ROOT not set: install check skipped"
fi
done_testing
