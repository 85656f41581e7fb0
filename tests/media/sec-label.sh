#!/bin/bash
# Security review (issue 13), finding 6: a stray LABEL.txt in a bundle
# directory must not make agimport exit 0 having staged nothing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../deploy/lib-deploy.sh"
cd "$WORK"
keygen k
mkbundle app 1 k.key b1
"$AGCTL" --root "$R" init --pubkey k.pub >/dev/null
printf 'agkit media set\nmedium 1 of 1\n' > b1/LABEL.txt
expect_exit 3 "a plain bundle with a stray LABEL.txt is refused (exit 3)" "$AGIMPORT" b1 --root "$R"
last_output | grep -q "b1/LABEL.txt: a medium label in a bundle that is not a media set" && ok "the message names the label" ||
	{ not_ok "the message names the label"; last_output | sed 's/^/#   /'; }
[ "$(last_output | wc -l)" = 1 ] && ok "the message is one line" || not_ok "the message is one line"
check "nothing staged" test "$(st 's["slots"]["blue"]["state"]')" = empty
expect_exit 3 "the same with agimport stage" "$AGIMPORT" stage b1 --root "$R"
rm b1/LABEL.txt
check "without the label it imports" "$AGIMPORT" b1 --root "$R"
check "... and is staged" test "$(st 's["slots"]["blue"]["state"]')" = staged
done_testing
