#!/bin/bash
# Issue 19 item 4: a suite recorded from the bf16 model checks a quantized
# variant with --tolerance-profile quantized.  The variants are fake-quantized
# by tests/health/fake_quant.py (int4 groups of 128, stored as F32: what the
# dequantizing kernels compute), on the tiny Llama of gen_tiny.py.
. "$(dirname "$0")/../lib.sh"
cd "$WORK"
export AGKIT_DEVICE=cpu
$PY "$TESTS_DIR/runtime/gen_tiny.py" llama bf16 m >/dev/null 2>&1 || skip_all "cannot generate the model (numpy)"
$PY "$TESTS_DIR/runtime/gen_tiny.py" llama3 bf16 other >/dev/null 2>&1 || { echo "Bail out! gen_tiny llama3"; exit 1; }
check "fake_quant.py makes an int4 variant (its rounding checks pass)" $PY "$TESTS_DIR/health/fake_quant.py" m m-int4 int4
check "... and an fp8 one" $PY "$TESTS_DIR/health/fake_quant.py" m m-fp8 fp8
check "record a suite from the bf16 model" "$AGRUN" record m --out suite.json
expect_exit 1 "the int4 variant fails the default tolerances" "$AGRUN" check m-int4 --suite suite.json
last_output | grep -q "divergence" && ok "... on the divergence" || { not_ok "... on the divergence"; last_output | sed 's/^/#   /'; }
check "it passes with --tolerance-profile quantized" "$AGRUN" check m-int4 --suite suite.json --tolerance-profile quantized
check "the fp8 variant passes with the profile too" "$AGRUN" check m-fp8 --suite suite.json --tolerance-profile quantized
expect_exit 1 "another model (llama3's weights) still fails with the profile" "$AGRUN" check other --suite suite.json --tolerance-profile quantized
check "record --tolerance-profile quantized writes the profile's tolerances (3.0, 0.5) into the suite" sh -c \
	"'$AGRUN' record m --out suite-q.json --tolerance-profile quantized && $PY -c \"import json; t=json.load(open('suite-q.json'))['tolerances']; assert (t['logit_margin'], t['kl_max']) == (3.0, 0.5), t\""
check "... so the int4 variant passes that suite without a flag (as agctl runs it)" "$AGRUN" check m-int4 --suite suite-q.json
$PY -c "import json; s=json.load(open('suite.json')); s['tolerances'].update(logit_margin=50.0, kl_max=50.0); json.dump(s, open('suite-loose.json', 'w'))"
check "a profile never tightens a suite's tolerances" "$AGRUN" check other --suite suite-loose.json --tolerance-profile default
expect_exit 2 "an unknown profile is refused" "$AGRUN" check m --suite suite.json --tolerance-profile loose
last_output | grep -q "default or quantized" && ok "... naming the profiles" || { not_ok "... naming the profiles"; last_output | sed 's/^/#   /'; }
done_testing
