# Helpers for agserve tests (sourced after tests/lib.sh).
: "${AGSERVE:?AGSERVE must point at the agserve binary}"
: "${AGRUN:?AGRUN must point at the agrun binary}"
AGSERVE=$(realpath "$AGSERVE"); AGRUN=$(realpath "$AGRUN")
need curl
# A tiny model whose vocabulary is exactly the tokenizer's (every sampled id decodes).
tiny_model() { $PY "$TESTS_DIR/runtime/gen_tiny.py" llama f32 "$1" --dims 64,128,2,4,2,267 >/dev/null; }
# start_server LOG ARGS...: starts agserve on a free port; sets SRV_PID and BASE.
start_server() {
	local log=$1; shift
	rm -f "$WORK/port"
	"$AGSERVE" --listen 127.0.0.1:0 --port-file "$WORK/port" --threads 1 "$@" 2>"$log" &
	SRV_PID=$!
	on_exit "kill $SRV_PID 2>/dev/null; wait $SRV_PID 2>/dev/null"
	local i
	for i in $(seq 100); do
		grep -q "^agserve: listening on http://127.0.0.1:" "$log" 2>/dev/null && break
		kill -0 $SRV_PID 2>/dev/null || break
		sleep 0.1
	done
	BASE="http://127.0.0.1:$(cat "$WORK/port" 2>/dev/null)"
	grep -q "^agserve: listening on $BASE\$" "$log"
}
stop_server() { kill -TERM "$SRV_PID" 2>/dev/null; wait "$SRV_PID"; }
# http METHOD PATH [BODY] [curl args...]: body to $WORK/resp, prints the status code.
http() {
	local m=$1 p=$2; shift 2
	local body=()
	if [ $# -gt 0 ]; then body=(--data-binary "$1"); shift; fi
	curl -s -o "$WORK/resp" -w '%{http_code}' -X "$m" "${body[@]}" -H 'Content-Type: application/json' "$@" "$BASE$p"
}
# j EXPR: evaluates a python expression on the last response body (r).
j() { $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$WORK/resp"; }

# engine_json DIR [ARG...]: DIR/engine.json starting a second agserve as the
# external engine on DIR's model {name} (with --threads 1 and the ARGs).
engine_json() {
	local dir=$1 extra=""
	shift
	for a in "$@"; do extra="$extra, \"$a\""; done
	printf '{"command": ["%s", "--model", "{model}/{name}", "--listen", "127.0.0.1:{port}", "--threads", "1"%s], "ready_path": "/health", "ready_timeout_s": 60}\n' \
		"$AGSERVE" "$extra" > "$dir/engine.json"
}

# engine_started WHAT: after start_server of an agserve whose model is an
# external engine: waits for the front's port file and its own "listening"
# line (the engine shares its stderr and prints one first), sets BASE and
# epid (the engine's pid), and checks WHAT and that the engine runs in its
# own process group; gives up the test when the front never listens.
engine_started() {
	for i in $(seq 300); do
		[ -s port ] && grep -q "^agserve: listening on http://127.0.0.1:$(cat port)\$" srv.log && break
		kill -0 $SRV_PID 2>/dev/null || break
		sleep 0.1
	done
	BASE="http://127.0.0.1:$(cat port 2>/dev/null)"
	grep -q "^agserve: listening on $BASE\$" srv.log && ok "$1" || { not_ok "$1"; sed 's/^/#   /' srv.log; done_testing; exit 1; }
	epid=$(ps -o pid= --ppid "$SRV_PID" | tr -d ' ' | head -1)
	check "the engine runs in its own process group" test -n "$epid" -a "$(ps -o pgid= -p "$epid" | tr -d ' ')" = "$epid"
}
