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
		"not ok - "*) not_ok "$1${line#not ok - }" ;;
		*) diag "$line" ;;
		esac
	done
}
