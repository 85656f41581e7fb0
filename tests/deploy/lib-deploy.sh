# Helpers for deployment-root tests (sourced after tests/lib.sh).
: "${AGCTL:?AGCTL must point at the agctl binary}"
AGCTL=$(realpath "$AGCTL")
R=$WORK/R
# mkbundle NAME VERSION KEY OUT [CONTENT]: a one-artifact bundle whose model file holds CONTENT.
mkbundle() {
	local name=$1 ver=$2 key=$3 out=$4 content=${5:-"weights of $1 v$2"}
	local src=$WORK/src-$name-$ver-$RANDOM
	mkdir -p "$src"
	printf '%s\n' "$content" > "$src/weights.bin"
	printf '{"name":"%s","channel":"stable","version":%s,"artifacts":[{"type":"files","name":"model","path":"%s"}]}' \
		"$name" "$ver" "$src" > "$src.json"
	"$AGPACK" build "$src.json" --key "$key" --out "$out" >/dev/null 2>&1
}
# jq-like field access on agctl status --json: st EXPR (python expression on s).
st() { "$AGCTL" --root "$R" status --json | $PY -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
active_content() { cat "$R/active/model/weights.bin" 2>/dev/null; }
