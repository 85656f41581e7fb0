#!/bin/bash
# agserve's prefix cache: a sequence keeps the keys and values of what it
# fed after its request ends, and the next prompt that starts the same way
# (a repeated prompt, a chat's next turn, a shared system prompt) is fed only
# from where it differs.  Greedy output must equal agrun's whether the prefix
# came from the cache or not; agserve_prompt_tokens_cached_total counts the
# tokens taken from a cache; interleaved prompts on one sequence (--parallel
# 1) still give each its own answer.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib-serve.sh"
cd "$WORK"
tiny_model m
start_server srv.log --model m --ctx 256 --parallel 2 &&
	ok "agserve starts" || { not_ok "agserve starts"; cat srv.log; done_testing; exit 1; }
cached() { curl -s "$BASE/metrics" | awk '$1 == "agserve_prompt_tokens_cached_total" {print $2}'; }
greedy() { # greedy PROMPT N: agserve's greedy completion text
	http POST /v1/completions "$($PY -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": int(sys.argv[2]), "temperature": 0}))' "$1" "$2")" >/dev/null
	j 'r["choices"][0]["text"]'
}
want() { "$AGRUN" m --prompt "$1" -n "$2" --threads 1 --no-eos 2>/dev/null; }

P1="The quick brown fox jumps over the lazy dog and then"
c0=$(cached)
[ "$c0" = 0 ] && ok "no cached prompt tokens at the start" || not_ok "cached at start: '$c0'"
a=$(greedy "$P1" 10)
[ -n "$a" ] && [ "$a" = "$(want "$P1" 10)" ] && ok "first request == agrun" || not_ok "first: '$a' vs '$(want "$P1" 10)'"
b=$(greedy "$P1" 10)
[ "$b" = "$a" ] && ok "the same prompt again (from the cache) gives the same answer" || not_ok "repeat: '$b' vs '$a'"
c1=$(cached)
[ "${c1:-0}" -gt 0 ] && ok "the repeat took $c1 prompt tokens from the cache" || not_ok "cached after repeat: '$c1'"
# a chat's next turn: the previous prompt and answer, then more
P2="$P1$a and the cat"
c=$(greedy "$P2" 10)
[ "$c" = "$(want "$P2" 10)" ] && ok "a prompt extending an earlier one (cached prefix) == agrun" || not_ok "extension: '$c' vs '$(want "$P2" 10)'"
c2=$(cached)
[ "${c2:-0}" -gt "$c1" ] && ok "the extension reused the earlier prefix ($((c2 - c1)) tokens)" || not_ok "cached after extension: '$c2'"
P3="Completely different words here"
d=$(greedy "$P3" 8)
[ "$d" = "$(want "$P3" 8)" ] && ok "an unrelated prompt == agrun" || not_ok "unrelated: '$d'"
stop_server

# one sequence, prompts interleaved: each cache replacement is right
start_server srv1.log --model m --ctx 256 --parallel 1 || { not_ok "agserve --parallel 1"; done_testing; exit 1; }
okc=0
for p in "$P1" "$P3" "$P1" "$P2" "$P1"; do
	[ "$(greedy "$p" 6)" = "$(want "$p" 6)" ] && okc=$((okc + 1))
done
[ $okc = 5 ] && ok "five interleaved prompts on one sequence each == agrun" || not_ok "interleaved: $okc of 5"
# concurrent requests sharing a prefix, queued for the one sequence
cpids=()
for i in 1 2 3 4; do
	curl -s "$BASE/v1/completions" -o "r$i" -d "$($PY -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 6, "temperature": 0}))' "$P1 number $i")" &
	cpids+=($!)
done
wait "${cpids[@]}" # not the server's pid
okc=0
for i in 1 2 3 4; do
	got=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"])' "r$i")
	[ "$got" = "$(want "$P1 number $i" 6)" ] && okc=$((okc + 1))
done
[ $okc = 4 ] && ok "four concurrent prompts with a shared prefix each == agrun" || not_ok "concurrent: $okc of 4"
stop_server
done_testing
