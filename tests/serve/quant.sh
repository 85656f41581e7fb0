#!/bin/bash
# Quantized checkpoints (issue 19) through the tools, unchanged: for a
# compressed-tensors int4 model and an FP8 block-scaled one
# (tests/runtime/gen_quant.py), `agrun record` then `agrun check` pass (the
# health check's checker), agserve --model serves it with greedy output equal
# to agrun's, and `agserve check` passes the recorded suite through the API;
# a suite recorded from the dequantized full-precision copy checks the
# quantized model under --tolerance-profile quantized. The vocabulary is the
# tokenizer's 267 ids (every sampled id has text, as agserve check needs).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
IDS="1,40,77,5,200,13,99"
for f in ct-int4 fp8; do
	opt='{"dims": [200, 328, 2, 4, 2, 267]}'
	[ $f = ct-int4 ] && opt='{"dims": [200, 328, 2, 4, 2, 267], "group": 32, "sym": false}'
	check "$f: a quantized model and its dequantized f32 copy" sh -c "$PY '$TESTS_DIR/runtime/gen_quant.py' $f q-$f '$opt' >/dev/null"
	expect_exit 0 "$f: agrun record" "$AGRUN" record q-$f --out s-$f.json -n 6
	expect_exit 0 "$f: agrun check passes its own suite" "$AGRUN" check q-$f --suite s-$f.json --json
	expect_exit 0 "$f: agrun record on the dequantized copy (the full-precision reference)" \
		"$AGRUN" record q-$f.ref --out ref-$f.json -n 6 --tolerance-profile quantized
	expect_exit 0 "$f: the quantized model checks against the reference's suite" \
		"$AGRUN" check q-$f --suite ref-$f.json --json --tolerance-profile quantized
	if ! start_server srv-$f.log --model q-$f; then
		not_ok "$f: agserve --model starts"; sed 's/^/#   /' srv-$f.log | tail -5; continue
	fi
	ok "$f: agserve --model serves it"
	want=$("$AGRUN" q-$f --ids "$IDS" -n 6 --no-eos --raw --threads 1 2>/dev/null)
	code=$(http POST /v1/completions "{\"prompt\":[$IDS],\"max_tokens\":6,\"temperature\":0,\"logprobs\":0,\"ignore_eos\":true,\"return_tokens_as_token_ids\":true}")
	got=$(j '" ".join(t.split(":")[1] for t in r["choices"][0]["logprobs"]["tokens"])' 2>/dev/null)
	[ "$code" = 200 ] && [ -n "$want" ] && [ "$got" = "$want" ] && ok "$f: agserve's greedy tokens equal agrun's ($got)" ||
		not_ok "$f: greedy: $code got '$got' want '$want'"
	stop_server
	expect_exit 0 "$f: agserve check passes the suite through the API" "$AGSERVE" check --model q-$f --suite s-$f.json --json --threads 1
done
done_testing
