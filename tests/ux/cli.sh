#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Command-line handling (issue 16): per-command help, missing options named,
# unknown commands with a suggestion (also outside a root), options after the
# command, one strict number parser, a default chunk size that fits
# --volume-size, options checked before the passphrase, and one exit-code
# table (bundle/error.h) that every man page and the README agree with.
. "$(dirname "$0")/../lib.sh"
: "${AGCTL:?}" "${AGRUN:?}" "${AGSERVE:?}" "${AGKIT_SOURCE_ROOT:?}"
cd "$WORK" || exit 1
# out_has DESCRIPTION GREP-ARGS...: the last expect_exit's output matches
# (a copy: check itself writes $WORK/.out).
out_has() { local d=$1; shift; cp "$WORK/.out" "$WORK/.said"; check "$d" grep -q "$@" "$WORK/.said"; }
keygen k
mkdir m && head -c 3000000 /dev/urandom > m/w.bin
spec s.json d 1 files:m:m

# --- 1 MiB volumes with the default chunk size
expect_exit 0 "build --volume-size 1M without --chunk-size works" "$AGPACK" build s.json --key k.key --out b1 --volume-size 1M
check "every volume is at most 1 MiB" sh -c 'for v in b1/*.agv; do [ $(stat -c %s "$v") -le 1048576 ] || exit 1; done'
check "there are several volumes" sh -c '[ $(ls b1/*.agv | wc -l) -ge 3 ]'
expect_exit 0 "the 1 MiB volumes verify" "$AGIMPORT" verify b1 --pubkey k.pub
expect_exit 2 "--volume-size 1M --chunk-size 4M is refused" "$AGPACK" build s.json --key k.key --out b2 --volume-size 1M --chunk-size 4M
out_has "... saying the chunk does not fit" 'smaller than one compressed chunk'
expect_exit 2 "... and --dry-run fails the same way" "$AGPACK" build s.json --key k.key --out b2 --volume-size 1M --chunk-size 4M --dry-run
out_has "... with the same message" 'smaller than one compressed chunk'

# --- options are checked before the passphrase is asked for
printf 'a passphrase\n' > pw
AGKIT_PASSPHRASE_FILE=pw "$AGPACK" keygen --out enc >/dev/null || exit 1
export AGKIT_PASSPHRASE_FILE=$WORK/no-such-passphrase-file
expect_exit 2 "a bad --volume-size is reported before the passphrase" "$AGPACK" build s.json --key enc.key --out b3 --volume-size 2K
cp "$WORK/.out" "$WORK/.said"; check "... (no passphrase message)" sh -c "! grep -qi passphrase '$WORK/.said'"
expect_exit 4 "an existing --out is reported before the passphrase" "$AGPACK" build s.json --key enc.key --out b1
out_has "... naming --out" -- '--out b1: already exists'
expect_exit 4 "a missing --ca-file is reported before the passphrase" "$AGPACK" build s.json --key enc.key --out b3 --ca-file no-ca.pem
out_has "... naming it" -- '--ca-file no-ca.pem: No such file'
spec miss.json d 1 files:m:no-such-dir
expect_exit 4 "a missing spec path is reported before the passphrase" "$AGPACK" build miss.json --key enc.key --out b3
out_has "... naming the path" 'no-such-dir'
expect_exit 2 "a directory as --key is a usage error, not a verification error" "$AGPACK" build s.json --key m --out b3
expect_exit 2 "a directory as the spec is a usage error too" "$AGPACK" build m --key k.key --out b3
expect_exit 2 "... also for lint" "$AGPACK" lint m
unset AGKIT_PASSPHRASE_FILE

# --- numbers
for bad in x 5x -1 "" 99 0; do
	expect_exit 2 "--level '$bad' is refused" "$AGPACK" build s.json --key k.key --out b4 --level "$bad" --dry-run
done
out_has "... the message says what a level is" -- "--level (zstd level): '0' is out of range\|--level (zstd level): 0 is out of range"
for bad in 5000000T 1e6 0x100 1.5 " 1M" 1M2 -4G 18446744073709551616 4GiBB; do
	expect_exit 2 "--volume-size '$bad' is refused" "$AGPACK" build s.json --key k.key --out b4 --volume-size "$bad" --dry-run
done
out_has "... naming the units" 'KiB MiB GiB TiB are binary, KB MB GB TB decimal'
expect_exit 2 "--threads 0 is refused" "$AGPACK" build s.json --key k.key --out b4 --threads 0 --dry-run
expect_exit 2 "--parity x is refused" "$AGPACK" build s.json --key k.key --out b4 --parity x --dry-run
expect_exit 2 "agimport --threshold 1x is refused" "$AGIMPORT" verify b1 --pubkey k.pub --threshold 1x
expect_exit 2 "agctl init --threshold -1 is refused" "$AGCTL" --root R0 init --pubkey k.pub --threshold -1
check "... and made no root" test ! -e R0/trust.json

# --- missing options, named
expect_exit 2 "agimport verify DIR without --pubkey" "$AGIMPORT" verify b1
out_has "... names --pubkey" 'agimport: verify b1: --pubkey KEY.pub is required'
expect_exit 2 "agimport extract without --to" "$AGIMPORT" extract b1 --pubkey k.pub
out_has "... names --to" -- '--to TARGET is required'
expect_exit 2 "agpack build SPEC without --key" "$AGPACK" build s.json --out b5
out_has "... names --key" 'build: --key KEY .* is required'
expect_exit 2 "agpack build SPEC without --out" "$AGPACK" build s.json --key k.key
out_has "... names --out" 'build: --out DIR .* is required'
expect_exit 2 "agpack keygen without --out" "$AGPACK" keygen
out_has "... names --out" 'keygen: --out PREFIX is required'
expect_exit 2 "agpack sign DIR without --key" "$AGPACK" sign b1
out_has "... names --key" 'sign: --key KEY is required'
expect_exit 2 "agctl init without --pubkey" "$AGCTL" --root R1 init
out_has "... names --pubkey" 'init: --pubkey KEY.pub .* is required'

# --- per-command help (stdout, exit 0, that command's usage only)
for c in "$AGPACK build" "$AGPACK lint" "$AGPACK keygen" "$AGIMPORT verify" "$AGIMPORT extract" "$AGIMPORT stage" \
	"$AGCTL status" "$AGCTL rollback" "$AGCTL init"; do
	set -- $c
	name=$(basename "$1")
	"$1" "$2" --help >help.out 2>help.err
	rc=$?
	if [ $rc = 0 ] && head -1 help.out | grep -q "^usage: $name .*$2" && [ ! -s help.err ] &&
		[ "$(grep -c "^usage:" help.out)" = 1 ]; then ok "$name $2 --help"; else
		not_ok "$name $2 --help (exit $rc)"; sed 's/^/#   /' help.out help.err; fi
	"$1" help "$2" >help2.out 2>&1
	check "$name help $2 is the same text" cmp -s help.out help2.out
done
check "agpack build --help lists --volume-size and the units" sh -c "'$AGPACK' build --help | grep -q -- '--volume-size' && '$AGPACK' build --help | grep -q 'decimal'"
expect_exit 0 "agpack --help" "$AGPACK" --help
expect_exit 0 "agserve --version" "$AGSERVE" --version
out_has "... prints agserve and a version" '^agserve [0-9]'
expect_exit 0 "agrun --version" "$AGRUN" --version
out_has "... prints agrun and a version" '^agrun [0-9]'

# --- unknown commands with a suggestion, outside a root too
expect_exit 2 "agctl stauts outside a root" "$AGCTL" --root "$WORK/not-a-root" stauts
out_has "... suggests status" "unknown command 'stauts' (did you mean 'status'?)"
cp "$WORK/.out" "$WORK/.said"; check "... and does not talk about the root" sh -c "! grep -q 'deployment root' '$WORK/.said'"
expect_exit 0 "agctl help outside a root" "$AGCTL" --root "$WORK/not-a-root" help
expect_exit 0 "agctl help status outside a root" "$AGCTL" --root "$WORK/not-a-root" help status
expect_exit 2 "agpack biuld" "$AGPACK" biuld s.json
out_has "... suggests build" "did you mean 'build'?"
expect_exit 2 "agimport verfy" "$AGIMPORT" verfy b1
out_has "... suggests verify" "did you mean 'verify'?"
expect_exit 2 "agctl frobnicate (nothing close)" "$AGCTL" frobnicate
out_has "... lists the commands" "^commands: init channel status"

# --- unknown options with a suggestion, options without their value
expect_exit 2 "agpack build --volum-size" "$AGPACK" build s.json --key k.key --out b6 --volum-size 1M
out_has "... suggests --volume-size" "unknown option '--volum-size' (did you mean '--volume-size'?)"
expect_exit 2 "agimport verify --pubkeys" "$AGIMPORT" verify b1 --pubkeys k.pub
out_has "... suggests --pubkey" "did you mean '--pubkey'?"
expect_exit 2 "agpack build --key without a value" "$AGPACK" build s.json --key
out_has "... says --key needs a value" "build: --key needs a value"

# --- options in any position
expect_exit 0 "agctl init --pubkey k.pub --root R (root after the command)" "$AGCTL" init --pubkey k.pub --root R
check "... made R" test -f R/trust.json
expect_exit 0 "agctl status --root R" "$AGCTL" status --root R
out_has "... shows R" "^root: R"
expect_exit 0 "agctl status --root=R --json" "$AGCTL" status --root=R --json
expect_exit 0 "agimport DIR --root R (import)" "$AGIMPORT" b1 --root R
expect_exit 0 "agctl promote --wait --root R" "$AGCTL" promote --wait --root R
expect_exit 0 "agctl channel set stable --reason --root --root R: a value is never an option" \
	"$AGCTL" channel set stable --reason --root --root R
check "... the audited reason is --root" grep -q '"reason":"[^"]*: --root"' R/audit.log
check "audit verify --root R after the command" "$AGCTL" audit verify --root R

# --- one exit-code table: the enum, the README, every man page
$PY - "$AGKIT_SOURCE_ROOT" <<'PY' >codes.tap
import re, sys, pathlib
root = pathlib.Path(sys.argv[1])
enum = {}
for m in re.finditer(r"BN_EXIT_(\w+)\s*=\s*(\d+),\s*/\*\s*(.*?)\s*\*/", (root / "libbundle/include/bundle/error.h").read_text()):
    enum[int(m.group(2))] = m.group(1)
n = 0
def ok(c, d):
    global n
    n += 1
    print(("ok" if c else "not ok") + f" {n} - {d}")
ok(sorted(enum) == list(range(len(enum))) and len(enum) >= 9, f"the enum numbers 0..{len(enum)-1} without gaps: {enum}")
readme = (root / "README.md").read_text()
tab = dict((int(a), b) for a, b in re.findall(r"^\| (\d+) \| (.*?) \|$", readme.split("### Exit codes", 1)[1], re.M))
ok(sorted(tab) == sorted(enum), f"README's table lists exactly the enum's codes ({sorted(tab)})")
words = {"OK": "success", "FAILURE": "internal", "USAGE": "usage", "VERIFY": "verification", "IO": "I/O",
         "POLICY": "policy", "BUSY": "lock", "HEALTH": "health", "DEVICE": "device"}
for c, name in enum.items():
    ok(words[name].lower() in tab.get(c, "").lower(), f"README code {c} means {name} ({tab.get(c)!r})")
for page in sorted((root / "docs/man").glob("*.[18]")):
    text = page.read_text()
    sec = text.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    sec = re.sub(r"\\f[BIRP]|\\-", lambda m: "-" if m.group(0) == "\\-" else "", sec)
    # ".TP\n.B N\nmeaning" items
    items = dict((int(a), b.strip()) for a, b in re.findall(r"^\.TP\n\.B (\d+)\n(.*?)(?=^\.TP|\Z)", sec, re.M | re.S))
    ok(items and set(items) <= set(enum), f"{page.name}: documents codes {sorted(items)} of the shared table")
    for c, meaning in items.items():
        ok(words[enum[c]].lower() in meaning.lower(), f"{page.name}: {c} means {enum[c]} ({meaning[:50]!r})")
    ok("shared" in sec.lower() and "readme" in sec.lower(), f"{page.name}: points at the shared table")
print(f"1..{n}")
PY
while IFS= read -r l; do
	case $l in
	"ok "*) ok "${l#ok * - }" ;;
	"not ok "*) not_ok "${l#not ok * - }" ;;
	esac
done <codes.tap
done_testing
