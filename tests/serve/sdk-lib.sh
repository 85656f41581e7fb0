# SPDX-License-Identifier: Apache-2.0
# Helpers for the serving tests that drive agserve from outside (sdk.sh,
# switch.sh, proxy.sh): start a server on 127.0.0.1:0, wait for its
# "listening on" line, stop it. Sourced after tests/lib.sh.
: "${AGSERVE:?AGSERVE must point at the agserve binary}"
AGSERVE=$(realpath "$AGSERVE")
SERVE_DIR=$TESTS_DIR/serve
NODE_MODULES=$SERVE_DIR/node_modules
# serve_start NAME ARGS...: starts agserve with ARGS on 127.0.0.1:0 in the
# background (stderr in $WORK/NAME.err); sets SRV_PID_NAME and URL_NAME
# (http://127.0.0.1:PORT). Returns 1 when it does not listen within 60 s.
serve_start() {
	local name=$1; shift
	"$AGSERVE" --listen 127.0.0.1:0 "$@" 2>"$WORK/$name.err" >"$WORK/$name.out" &
	local pid=$! i url=
	eval "SRV_PID_$name=$pid"
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	for i in $(seq 600); do
		url=$(sed -n 's/^agserve: listening on \(https\?:\/\/[0-9.]*:[0-9]*\).*/\1/p' "$WORK/$name.err" | head -1)
		[ -n "$url" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$url" ]; then
		diag "agserve $name did not start:"; sed 's/^/#   /' "$WORK/$name.err" | tail -20
		return 1
	fi
	eval "URL_$name=$url"
}
# serve_wait_health URL [SECONDS]: waits until GET URL/health answers 200.
serve_wait_health() {
	local i n=$(( ${2:-60} * 10 ))
	for i in $(seq "$n"); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1/health")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}
# serve_stop NAME: SIGTERM, then waits (at most 30 s) and returns agserve's exit status.
serve_stop() {
	local pid i
	eval "pid=\${SRV_PID_$1}"
	kill -TERM "$pid" 2>/dev/null
	for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid"
}
# keys_file FILE NAME SECRET...: an API keys file, mode 0600.
keys_file() {
	local f=$1; shift
	( umask 077; : > "$f" )
	echo "# agserve API keys: NAME SECRET or NAME sha256:HEX" >> "$f"
	while [ $# -ge 2 ]; do echo "$1 $2" >> "$f"; shift 2; done
}
# agrun_expect MODEL PROMPT N [agrun args...]: agrun's greedy run as JSON on stdout.
agrun_expect() {
	local m=$1 p=$2 n=$3; shift 3
	"$AGRUN" "$m" --prompt "$p" -n "$n" --json --device cpu --threads 2 "$@" 2>/dev/null
}
# tap_from PREFIX: reads "ok - X" / "not ok - X" / other lines (diagnostics) and
# counts them into this script's TAP stream.
tap_from() {
	local line
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "$1${line#ok - }" ;;
		"not ok - "*"# TODO "*) _n=$((_n + 1)); echo "not ok $_n - $1${line#not ok - }" ;;
		"not ok - "*) not_ok "$1${line#not ok - }" ;;
		*) diag "$line" ;;
		esac
	done
}
# sdk_expect MODEL_DIR: agrun's greedy answers for sdk.mjs's prompts and
# conversations, written to ./expect.json (and its parts) in the current
# directory. Sets N (tokens a request) and NL (tokens of the concurrent ones).
sdk_expect() {
	N=12
	PROMPTS=("Hello there" "The capital of France is" "Once upon a time" "In the beginning"
		"A quick brown fox" "Serving models offline" "one two three four" "Air-gapped networks")
	NL=96  # the concurrent requests: long enough to overlap
	for i in "${!PROMPTS[@]}"; do
		agrun_expect "$1" "${PROMPTS[$i]}" $N > "c$i.json" || not_ok "agrun on prompt $i"
		agrun_expect "$1" "${PROMPTS[$i]}" $NL > "l$i.json" || not_ok "agrun on prompt $i, $NL tokens"
	done
	# Chat conversations; the Anthropic tests send c1 as system + messages.
	cat > chats.json <<-'JSON'
	[{"messages": [{"role": "user", "content": "What is the capital of France?"}]},
	 {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello."}]},
	 {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! x200"},
	               {"role": "user", "content": "Count: one two"}]}]
	JSON
	chat_ref=none
	if $PY -c 'import jinja2' 2>/dev/null; then
		chat_ref=jinja2
		$PY - "$1" chats.json <<-'PY' || not_ok "python3-jinja2 renders the template"
	import json, sys
	from jinja2.sandbox import ImmutableSandboxedEnvironment
	cfg = json.load(open(sys.argv[1] + "/tokenizer_config.json"))
	env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
	t = env.from_string(cfg["chat_template"])
	for i, c in enumerate(json.load(open(sys.argv[2]))):
	    open(f"chat{i}.txt", "w").write(t.render(messages=c["messages"], add_generation_prompt=True,
	                                              bos_token=cfg["bos_token"], eos_token=cfg["eos_token"]))
	PY
	fi
	for i in 0 1 2; do
		$PY -c 'import json,sys; c=json.load(open("chats.json"))[int(sys.argv[1])]; c["add_generation_prompt"]=True; json.dump(c,open(sys.argv[2],"w"))' $i "chatreq$i.json"
		# The chat reference is agrun on the rendered prompt, tokenized as
		# transformers' apply_chat_template does (no special tokens added; the
		# template itself opens with bos_token).
		if "$AGRUN" "$1" --render-chat "chatreq$i.json" > "render$i.txt" 2>/dev/null; then
			if [ $chat_ref = jinja2 ]; then
				check "agrun --render-chat equals python3-jinja2 (conversation $i)" cmp "render$i.txt" "chat$i.txt"
			fi
			"$AGRUN" "$1" --prompt-file "render$i.txt" --no-special -n $N --json --device cpu --threads 2 > "chat$i.json" 2>/dev/null ||
				not_ok "agrun on rendered conversation $i"
		fi
	done
	[ -f chat0.json ] || diag "agrun --render-chat not available: chat greedy equality skipped"
	$PY - $N $NL "${PROMPTS[@]}" > expect.json <<-'PY'
	import json, os, sys
	n, nl, prompts = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
	comp = []
	for i, p in enumerate(prompts):
	    r = json.load(open(f"c{i}.json"))
	    comp.append({"prompt": p, "text": r["text"], "prompt_tokens": len(r["prompt_ids"]), "eos": r["hit_eos"],
	                 "text_long": json.load(open(f"l{i}.json"))["text"]})
	chats = json.load(open("chats.json"))
	for i, c in enumerate(chats):
	    if os.path.exists(f"chat{i}.json"):
	        r = json.load(open(f"chat{i}.json"))
	        c.update({"text": r["text"], "prompt_tokens": len(r["prompt_ids"]), "eos": r["hit_eos"]})
	json.dump({"n": n, "n_long": nl, "completions": comp, "chats": chats}, sys.stdout, indent=1)
	PY
}
