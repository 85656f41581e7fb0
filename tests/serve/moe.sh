#!/bin/bash
# agserve on mixture-of-experts models (issue 18): Mixtral, DeepSeek-V3 (latent
# attention), GLM-4.5 and MiniMax-M2 tiny models served with 4 parallel
# sessions; four concurrent greedy completions (batched decode through
# rt_forward_batch) each equal agrun's greedy output for the same prompt.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
for v in mixtral deepseek_v3 glm4_moe minimax_m2; do
	# vocab 267: every id decodes to text (gen_tiny's tokenizer size), as tiny_model does
	$PY "$TESTS_DIR/runtime/gen_tiny.py" "$v" bf16 "$v" --dims 64,96,3,4,2,267 >/dev/null || { echo "Bail out! cannot generate $v"; exit 1; }
	start_server "$v.log" --model "$v" --ctx 128 --parallel 4 &&
		ok "$v: agserve starts" || { not_ok "$v: agserve starts"; sed 's/^/#   /' "$v.log"; continue; }
	n=0
	for P in "The quick brown fox" "hello there" "the then the" "in a far away land"; do
		n=$((n + 1))
		"$AGRUN" "$v" --prompt "$P" -n 12 --threads 1 --skip-special --device cpu > "want$n" 2>/dev/null
		curl -s "$BASE/v1/completions" -H 'Content-Type: application/json' \
			-d "{\"prompt\":\"$P\",\"max_tokens\":12,\"temperature\":0}" > "got$n" &
	done
	wait $(jobs -p | grep -v "^$SRV_PID\$") 2>/dev/null
	same=1 text=0
	for n in 1 2 3 4; do
		got=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['choices'][0]['text'])" "got$n" 2>/dev/null)
		[ -s "want$n" ] && text=1
		[ "$got" = "$(cat "want$n")" ] || { same=0; echo "#   $n: '$got' vs agrun '$(cat "want$n")'"; }
	done
	[ $same = 1 ] && [ $text = 1 ] && ok "$v: four concurrent greedy completions equal agrun's" || not_ok "$v: concurrent completions equal agrun's"
	stop_server
done
done_testing
