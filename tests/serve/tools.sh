#!/bin/bash
# Tool calls (issue 14): agserve turns a model's tool-call text into the
# APIs' structured calls and takes them back. The model is
# tests/serve/mkscripted.py's, whose greedy answer is fixed: a sentence,
# then one Hermes <tool_call> (its template is Qwen2.5's own). Checked with
# the official SDKs (tools.mjs: openai tool_calls, streamed deltas and the
# SDK's stream helper, tool_choice, Anthropic tool_use blocks and
# input_json_delta) and with curl: the conversation with calls and results
# renders as python3-jinja2 renders the same template (render_ref.py, with
# the arguments as objects, as transformers documents), also when it comes
# in Anthropic's shape (tool_use/tool_result blocks; the audit's
# prompt_sha256 is of the rendered prompt). The SDK checks run once more on
# a scripted model with MiniMax-M2's own template, whose answer is a
# <minimax:tool_call> <invoke> call (values typed by the tool's schema), and
# a conversation with calls renders through DeepSeek-V3.1's template, which
# takes the arguments as text; and on one with Kimi-K2's template, whose
# <|tool_calls_section_begin|> call has the id functions.get_weather:0.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/sdk-lib.sh"
need curl
cd "$WORK"
SAY="I will check the weather."
CALL=$'\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
check "scripted model (Qwen2.5 template)" $PY "$SERVE_DIR/mkscripted.py" m "$SAY" "<tool_call>" "$CALL" "</tool_call>"
if ! serve_start s --model m --audit audit.log --parallel 2 --threads 2 --ctx 2048; then
	not_ok "agserve starts"; done_testing; exit
fi
check "/health answers 200" serve_wait_health "$URL_s" 60

# the rendering of a conversation with a call and its result
cat > tools.json <<'J'
[{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
J
$PY - "$SAY" > ctx-api.json <<'P'
import json, sys
tools = json.load(open("tools.json"))
msgs = [{"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": sys.argv[1], "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 18}"}]
json.dump({"messages": msgs, "tools": tools, "add_generation_prompt": True}, sys.stdout)
P
# the reference: the same context with the arguments as an object
$PY -c 'import json,sys; c=json.load(open("ctx-api.json"))
for m in c["messages"]:
    for t in m.get("tool_calls", []): t["function"]["arguments"] = json.loads(t["function"]["arguments"])
json.dump(c, sys.stdout)' > ctx-ref.json
check "reference rendering (python3-jinja2)" sh -c "$PY '$TESTS_DIR/runtime/render_ref.py' m ctx-ref.json > ref.txt"
curl -s -o tmpl.json "$URL_s/apply-template" -H 'content-type: application/json' -d @ctx-api.json
$PY -c 'import json,sys; sys.stdout.write(json.load(open("tmpl.json"))["prompt"])' > got.txt 2>/dev/null
check "/apply-template with an assistant tool call and a tool result equals python3-jinja2" cmp -s got.txt ref.txt
check "the rendering holds the call and the result" sh -c 'grep -q "\"arguments\": {\"city\": \"Paris\"}" ref.txt && grep -q "temp_c" ref.txt'

# the same conversation in Anthropic's shape
$PY - "$SAY" > ant.json <<'P'
import json, sys
msgs = [{"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": sys.argv[1]},
         {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "{\"temp_c\": 18}"}]}]
tools = [{"name": "get_weather", "description": "Current weather in a city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
json.dump({"model": "m", "max_tokens": 1, "messages": msgs, "tools": tools}, sys.stdout)
P
code=$(curl -s -o ant.out -w '%{http_code}' "$URL_s/v1/messages" -H 'content-type: application/json' -d @ant.json)
check "/v1/messages with tool_use and tool_result blocks answers 200" test "$code" = 200
want=$(sha256sum ref.txt | cut -d' ' -f1)
got=$(grep '"/v1/messages"' audit.log | tail -1 | $PY -c 'import json,sys; print(json.loads(sys.stdin.readline())["prompt_sha256"])')
check "Anthropic tool blocks render as the OpenAI-shaped conversation (audit prompt_sha256)" test "$got" = "$want"

# refusals
code=$(curl -s -o bad.out -w '%{http_code}' "$URL_s/v1/chat/completions" -H 'content-type: application/json' \
	-d '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}')
check "a tool without a function name: 400" sh -c "test $code = 400 && grep -q '\"param\":\"tools\"' bad.out"
code=$(curl -s -o bad.out -w '%{http_code}' "$URL_s/v1/chat/completions" -H 'content-type: application/json' \
	-d '{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{oops"}}]},{"role":"user","content":"x"}]}')
check "tool call arguments that are not JSON: 400" sh -c "test $code = 400 && grep -q 'not a JSON object' bad.out"

# tools.mjs URL MODEL OPEN RAW PREFIX [ID]: the SDK checks, their lines prefixed
sdk_checks() {
	AGSERVE_URL=$1 AGSERVE_MODEL=$2 SCRIPT_SAY="$SAY" SCRIPT_OPEN=$3 SCRIPT_RAW=$4 SCRIPT_ID=${6-} \
		NODE_PATH=$NODE_MODULES timeout -k 5 120 node "$SERVE_DIR/tools.mjs" > node.out 2> node.err
	rc=$?
	tap_from "$5" < node.out
	[ $rc = 0 ] && ok "${5}tools.mjs finished (exit 0)" || { not_ok "${5}tools.mjs finished (exit $rc)"; sed 's/^/#   /' node.err | tail -20; }
}
have_sdks() { [ -d "$NODE_MODULES/openai" ] && [ -d "$NODE_MODULES/@anthropic-ai/sdk" ] && command -v node >/dev/null; }
if have_sdks; then
	sdk_checks "$URL_s" m "<tool_call>" "$SAY<tool_call>$CALL</tool_call>" ""
else
	_n=$((_n + 1)); echo "ok $_n - the SDK checks # SKIP SDKs not installed (tests/serve/npm-install.sh)"
fi
expect_exit 0 "SIGTERM: agserve drains and exits 0" serve_stop s

# DeepSeek-V3.1: its template joins a call's arguments as text (agserve
# gives them back as JSON text); the rendering equals python3-jinja2's with
# the arguments as the API sends them
check "a model with DeepSeek-V3.1's template" $PY "$SERVE_DIR/mkscripted.py" --template deepseek-v3.1.jinja ds "$SAY"
if serve_start d --model ds --threads 2 --ctx 2048 && serve_wait_health "$URL_d" 60; then
	check "reference rendering of DeepSeek tool calls (python3-jinja2)" \
		sh -c "$PY '$TESTS_DIR/runtime/render_ref.py' ds '$SERVE_DIR/toolcall/deepseek-v3.1.json' > ds-ref.txt"
	curl -s -o ds-tmpl.json "$URL_d/apply-template" -H 'content-type: application/json' \
		-d @"$SERVE_DIR/toolcall/deepseek-v3.1.json"
	$PY -c 'import json,sys; sys.stdout.write(json.load(open("ds-tmpl.json"))["prompt"])' > ds-got.txt 2>/dev/null
	check "DeepSeek-V3.1: /apply-template with assistant tool calls equals python3-jinja2" cmp -s ds-got.txt ds-ref.txt
	expect_exit 0 "SIGTERM: agserve drains and exits 0 (DeepSeek-V3.1 template)" serve_stop d
else
	not_ok "agserve starts (DeepSeek-V3.1 template)"
fi

# scripted_sdk NAME TEMPLATE LABEL OPEN ID PIECE...: a scripted model with
# that real template answering PIECE..., served, and the SDK checks on it
scripted_sdk() {
	local name=$1 tmpl=$2 label=$3 open=$4 id=$5
	shift 5
	check "scripted model ($label template)" $PY "$SERVE_DIR/mkscripted.py" --template "$tmpl" "$name" "$@"
	if ! serve_start "$name" --model "$name" --parallel 2 --threads 2 --ctx 2048; then
		not_ok "agserve starts ($label template)"
		return
	fi
	local url
	eval "url=\$URL_$name"
	check "/health answers 200 ($label template)" serve_wait_health "$url" 60
	if have_sdks; then
		sdk_checks "$url" "$name" "$open" "$(printf '%s' "$@")" "$label: " "$id"
	else
		_n=$((_n + 1)); echo "ok $_n - the SDK checks on $label # SKIP SDKs not installed (tests/serve/npm-install.sh)"
	fi
	expect_exit 0 "SIGTERM: agserve drains and exits 0 ($label template)" serve_stop "$name"
}
# MiniMax-M2: its template, its call format (values typed by the schema)
scripted_sdk mm minimax-m2.jinja MiniMax-M2 "<minimax:tool_call>" "" "$SAY" $'\n<minimax:tool_call>\n' \
	$'<invoke name="get_weather">\n' $'<parameter name="city">Paris</parameter>\n' $'</invoke>\n' "</minimax:tool_call>"
# Kimi-K2: its template, its call format, the call's id functions.NAME:IDX
scripted_sdk km kimi-k2.jinja Kimi-K2 "<|tool_calls_section_begin|>" "functions.get_weather:0" "$SAY" \
	"<|tool_calls_section_begin|>" "<|tool_call_begin|>" "functions.get_weather:0" "<|tool_call_argument_begin|>" \
	'{"city": "Paris"}' "<|tool_call_end|>" "<|tool_calls_section_end|>"
done_testing; exit
fi
check "/health answers 200 (Kimi-K2 template)" serve_wait_health "$URL_k" 60
if have_sdks; then
	raw=$(printf '%s' "${KM[@]}")
	sdk_checks "$URL_k" km "<|tool_calls_section_begin|>" "$raw" "kimi: " "functions.get_weather:0"
else
	_n=$((_n + 1)); echo "ok $_n - the SDK checks on Kimi-K2 # SKIP SDKs not installed (tests/serve/npm-install.sh)"
fi
expect_exit 0 "SIGTERM: agserve drains and exits 0 (Kimi-K2 template)" serve_stop k
done_testing
