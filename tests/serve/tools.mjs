// Tool calls through the official openai and @anthropic-ai/sdk packages,
// unchanged, against agserve serving tests/serve/mkscripted.py's model,
// whose greedy answer is the text SCRIPT_RAW (a sentence, then one call of
// get_weather {"city": "Paris"} in the template's format, which opens with
// SCRIPT_OPEN: Hermes <tool_call> or MiniMax <minimax:tool_call>). Run by
// tests/serve/tools.sh.
// Prints "ok - ..." / "not ok - ..." lines; other lines are diagnostics.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import assert from 'node:assert';

const url = process.env.AGSERVE_URL;
const model = process.env.AGSERVE_MODEL;
const SAY = process.env.SCRIPT_SAY;
const RAW = process.env.SCRIPT_RAW; // the whole scripted text
const OPEN = process.env.SCRIPT_OPEN ?? '<tool_call>';
const ID = process.env.SCRIPT_ID || undefined; // the call's id when the format names it (Kimi)
const oai = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 60000 });
const ant = new Anthropic({ baseURL: url, apiKey: 'none', maxRetries: 0, timeout: 60000 });
let failed = 0;
const ok = (cond, what, detail) => {
	console.log(`${cond ? 'ok' : 'not ok'} - ${what}`);
	if (!cond) {
		failed++;
		if (detail !== undefined) console.log(`  ${JSON.stringify(detail)}`.slice(0, 800));
	}
	return cond;
};
const same = (got, want, what) => ok(got === want, what, { got, want });
const deep = (got, want, what) => {
	let eq = true;
	try { assert.deepStrictEqual(got, want); } catch { eq = false; }
	return ok(eq, what, { got, want });
};
const step = async (name, fn) => {
	try { await fn(); } catch (e) { ok(false, `${name}: ${e.constructor.name}: ${e.message}`); }
};
const weather = {
	type: 'function',
	function: {
		name: 'get_weather', description: 'Current weather in a city',
		parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
	},
};
const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];

await step('openai chat with tools', async () => {
	const r = await oai.chat.completions.create({ model, messages: ask, tools: [weather], temperature: 0, max_tokens: 64 });
	const m = r.choices[0].message;
	same(r.choices[0].finish_reason, 'tool_calls', 'openai: finish_reason tool_calls');
	same(m.content, SAY, 'openai: content is the text before the call');
	ok(Array.isArray(m.tool_calls) && m.tool_calls.length === 1, 'openai: one tool call', m.tool_calls);
	const c = m.tool_calls[0];
	ok(c.type === 'function' && (ID ? c.id === ID : /^call_[0-9a-f]{24}$/.test(c.id)), `openai: call id ${ID ?? 'call_...'} and type function`, c);
	same(c.function.name, 'get_weather', 'openai: function name');
	same(typeof c.function.arguments, 'string', 'openai: arguments are a JSON text');
	deep(JSON.parse(c.function.arguments), { city: 'Paris' }, 'openai: arguments parse to the call\'s object');
});

await step('openai chat stream with tools', async () => {
	const s = await oai.chat.completions.create({ model, messages: ask, tools: [weather], temperature: 0, max_tokens: 64, stream: true });
	let content = '', finish = null, leaked = false;
	const calls = [];
	for await (const ch of s) {
		const d = ch.choices[0]?.delta ?? {};
		if (d.content) { content += d.content; if (d.content.includes(OPEN) || d.content.includes('<') || d.content.includes('{')) leaked = true; }
		for (const tc of d.tool_calls ?? []) {
			calls[tc.index] ??= { id: '', name: '', arguments: '' };
			if (tc.id) calls[tc.index].id = tc.id;
			if (tc.function?.name) calls[tc.index].name += tc.function.name;
			if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
		}
		if (ch.choices[0]?.finish_reason) finish = ch.choices[0].finish_reason;
	}
	same(content, SAY, 'openai stream: content deltas join to the text before the call');
	ok(!leaked, 'openai stream: no part of the call went out as content');
	same(finish, 'tool_calls', 'openai stream: finish_reason tool_calls');
	ok(calls.length === 1 && calls[0].name === 'get_weather' && (ID ? calls[0].id === ID : calls[0].id.startsWith('call_')), 'openai stream: one get_weather call delta', calls);
	deep(JSON.parse(calls[0]?.arguments ?? 'null'), { city: 'Paris' }, 'openai stream: its arguments');
});

await step('openai stream helper', async () => {
	// the SDK's own accumulator (what agent frameworks call)
	const s = oai.chat.completions.stream({ model, messages: ask, tools: [weather], temperature: 0, max_tokens: 64 });
	const f = await s.finalChatCompletion();
	const m = f.choices[0].message;
	ok(m.tool_calls?.length === 1 && m.tool_calls[0].function.name === 'get_weather', 'openai chat.completions.stream(): finalChatCompletion has the call', m);
	deep(JSON.parse(m.tool_calls?.[0]?.function?.arguments ?? 'null'), { city: 'Paris' }, 'openai chat.completions.stream(): arguments');
});

await step('openai tool_choice none', async () => {
	const r = await oai.chat.completions.create({ model, messages: ask, tools: [weather], tool_choice: 'none', temperature: 0, max_tokens: 64 });
	same(r.choices[0].message.content, RAW, 'openai tool_choice none: the text as generated, not parsed');
	ok(!r.choices[0].message.tool_calls, 'openai tool_choice none: no tool_calls');
	same(r.choices[0].finish_reason, 'stop', 'openai tool_choice none: finish_reason stop');
});

await step('openai tool_choice required', async () => {
	const e = await oai.chat.completions.create({ model, messages: ask, tools: [weather], tool_choice: 'required', max_tokens: 8 }).catch((x) => x);
	ok(e instanceof OpenAI.BadRequestError && /tool_choice/.test(e.message), 'openai tool_choice required: BadRequestError naming tool_choice', e.message);
});

await step('openai round trip', async () => {
	// the call and its result sent back, as an agent loop does
	const first = await oai.chat.completions.create({ model, messages: ask, tools: [weather], temperature: 0, max_tokens: 64 });
	const m = first.choices[0].message;
	const r = await oai.chat.completions.create({
		model, tools: [weather], temperature: 0, max_tokens: 64,
		messages: [...ask, m, { role: 'tool', tool_call_id: m.tool_calls[0].id, content: '{"temp_c": 18}' }],
	});
	ok(r.usage.prompt_tokens > first.usage.prompt_tokens + 20, 'openai: the assistant call and the tool result reach the prompt', [r.usage, first.usage]);
});

const antTool = { name: 'get_weather', description: 'Current weather in a city', input_schema: weather.function.parameters };
await step('anthropic messages with tools', async () => {
	const r = await ant.messages.create({ model, max_tokens: 64, messages: ask, tools: [antTool] });
	same(r.stop_reason, 'tool_use', 'anthropic: stop_reason tool_use');
	same(r.content.length, 2, 'anthropic: a text block and a tool_use block');
	same(r.content[0]?.type === 'text' && r.content[0].text, SAY, 'anthropic: the text block');
	const u = r.content[1] ?? {};
	ok(u.type === 'tool_use' && (ID ? u.id === ID : /^toolu_[0-9a-f]{24}$/.test(u.id)) && u.name === 'get_weather', `anthropic: tool_use block with id ${ID ?? 'toolu_...'} and the name`, u);
	deep(u.input, { city: 'Paris' }, 'anthropic: tool_use input is the object');
});

await step('anthropic stream with tools', async () => {
	const s = ant.messages.stream({ model, max_tokens: 64, messages: ask, tools: [antTool] });
	const types = [];
	s.on('streamEvent', (ev) => types.push(ev.type + (ev.content_block ? ':' + ev.content_block.type : '') + (ev.delta?.type ? ':' + ev.delta.type : '')));
	const f = await s.finalMessage();
	same(f.stop_reason, 'tool_use', 'anthropic stream: stop_reason tool_use');
	const u = f.content.find((b) => b.type === 'tool_use');
	ok(u && u.name === 'get_weather', 'anthropic stream: finalMessage has the tool_use block', f.content);
	deep(u?.input, { city: 'Paris' }, 'anthropic stream: input accumulated from input_json_delta');
	same(f.content[0]?.text, SAY, 'anthropic stream: the text block');
	ok(types.includes('content_block_start:tool_use') && types.includes('content_block_delta:input_json_delta'), 'anthropic stream: tool_use block start and input_json_delta events', types);
});

await step('anthropic round trip', async () => {
	const first = await ant.messages.create({ model, max_tokens: 64, messages: ask, tools: [antTool] });
	const r = await ant.messages.create({
		model, max_tokens: 64, tools: [antTool],
		messages: [...ask, { role: 'assistant', content: first.content },
			{ role: 'user', content: [{ type: 'tool_result', tool_use_id: first.content[1].id, content: '{"temp_c": 18}' }] }],
	});
	ok(r.usage.input_tokens > first.usage.input_tokens + 20, 'anthropic: tool_use and tool_result reach the prompt', [r.usage, first.usage]);
	const e = await ant.messages.create({ model, max_tokens: 8, messages: ask, tools: [antTool], tool_choice: { type: 'any' } }).catch((x) => x);
	ok(e instanceof Anthropic.BadRequestError && /tool_choice/.test(e.message), 'anthropic tool_choice any: BadRequestError naming tool_choice', e.message);
});

process.exit(failed ? 1 : 0);
