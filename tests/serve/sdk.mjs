// agserve driven by the official openai and @anthropic-ai/sdk packages,
// unchanged. Run by tests/serve/sdk.sh, which starts the server and writes
// EXPECT (agrun's greedy output for each prompt). Prints "ok - ..." and
// "not ok - ..." lines (sdk.sh numbers them into its TAP stream); other lines
// are diagnostics. Environment: AGSERVE_URL (http://127.0.0.1:PORT),
// AGSERVE_KEY and AGSERVE_KEY2 (two valid keys), AGSERVE_MODEL, EXPECT;
// SDK_NO_AUTH=1: the server checks no keys (the wrong-key checks are left out).
import fs from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const url = process.env.AGSERVE_URL;
const model = process.env.AGSERVE_MODEL;
const expect = JSON.parse(fs.readFileSync(process.env.EXPECT, 'utf8'));
const N = expect.n;
const noAuth = process.env.SDK_NO_AUTH === '1';
const oai = new OpenAI({ baseURL: `${url}/v1`, apiKey: process.env.AGSERVE_KEY, maxRetries: 0, timeout: 60000 });
const oai2 = new OpenAI({ baseURL: `${url}/v1`, apiKey: process.env.AGSERVE_KEY2, maxRetries: 0, timeout: 60000 });
const ant = new Anthropic({ baseURL: url, apiKey: process.env.AGSERVE_KEY, maxRetries: 0, timeout: 60000 });

// Known server defects (tests/serve/FINDINGS.md): reported as TAP TODO, so
// they stay visible without failing the suite; they pass once fixed.
const TODO = {};
let failed = 0;
const ok = (cond, what, detail) => {
	if (cond) {
		console.log(`ok - ${what}`);
	} else if (TODO[what]) {
		console.log(`not ok - ${what} # TODO ${TODO[what]}`);
		if (detail !== undefined) console.log(`  ${JSON.stringify(detail)}`.slice(0, 600));
	} else {
		failed++;
		console.log(`not ok - ${what}`);
		if (detail !== undefined) console.log(`  ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`.slice(0, 600));
	}
	return cond;
};
const same = (got, want, what) => ok(got === want, what, { got, want });
// step NAME FN: runs FN; an exception is one failed check naming it.
const step = async (name, fn) => {
	try {
		await fn();
	} catch (e) {
		ok(false, `${name}: ${e.constructor.name}: ${e.message}`);
	}
};
const comp = expect.completions;
const c0 = comp[0];
const lenReason = (e) => (e.eos ? 'stop' : 'length');

await step('models.list', async () => {
	const ids = [];
	for await (const m of oai.models.list()) ids.push(m.id);
	ok(ids.includes(model), `openai models.list names the model ${model}`, ids);
	const m = await oai.models.retrieve(model).catch((e) => e);
	ok(m && m.id === model, 'openai models.retrieve(model)', m && (m.id || m.message));
});

await step('completions', async () => {
	const r = await oai.completions.create({ model, prompt: c0.prompt, max_tokens: N, temperature: 0 });
	same(r.object, 'text_completion', 'completions: object text_completion');
	ok(typeof r.id === 'string' && r.id.startsWith('cmpl-'), 'completions: id cmpl-...', r.id);
	same(r.choices[0].text, c0.text, 'completions: greedy text equals agrun --prompt');
	same(r.choices[0].finish_reason, lenReason(c0), 'completions: finish_reason');
	same(r.usage.prompt_tokens, c0.prompt_tokens, 'completions: usage.prompt_tokens as agrun tokenizes');
	same(r.usage.completion_tokens, N, 'completions: usage.completion_tokens');
	same(r.usage.total_tokens, c0.prompt_tokens + N, 'completions: usage.total_tokens');
});

await step('completions stream', async () => {
	const s = await oai.completions.create({ model, prompt: comp[1].prompt, max_tokens: N, temperature: 0, stream: true });
	let text = '', finish = null, chunks = 0;
	for await (const ch of s) {
		chunks++;
		if (ch.choices.length) {
			text += ch.choices[0].text;
			if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
		}
	}
	same(text, comp[1].text, 'completions stream: deltas join to agrun\'s greedy text');
	same(finish, lenReason(comp[1]), 'completions stream: finish_reason in the last chunk');
	ok(chunks >= 2, `completions stream: several chunks (${chunks})`);
});

await step('completions logprobs', async () => {
	const r = await oai.completions.create({ model, prompt: c0.prompt, max_tokens: N, temperature: 0, logprobs: 3 });
	const lp = r.choices[0].logprobs;
	same(r.choices[0].text, c0.text, 'completions logprobs: same greedy text');
	ok(lp && lp.tokens.length === N && lp.token_logprobs.length === N && lp.top_logprobs.length === N &&
		lp.text_offset.length === N, 'completions logprobs: tokens, token_logprobs, top_logprobs, text_offset for each token', lp);
	same(lp.tokens.join(''), c0.text, 'completions logprobs: tokens join to the text');
	ok(lp.token_logprobs.every((x) => typeof x === 'number' && x <= 0), 'completions logprobs: log probabilities <= 0', lp.token_logprobs);
	ok(lp.top_logprobs.every((t, i) => t && Object.keys(t).length >= 1 && Object.keys(t).length <= 3 &&
		Math.abs(Math.max(...Object.values(t)) - lp.token_logprobs[i]) < 1e-3),
	'completions logprobs: at most 3 alternatives, the greedy token is the most likely', lp.top_logprobs);
	// OpenAI counts from the start of the prompt, vLLM from the completion's: either, consistently
	let off = lp.text_offset[0], good = off === 0 || off === c0.prompt.length;
	for (let i = 0; i < N; i++) { if (lp.text_offset[i] !== off) good = false; off += lp.tokens[i].length; }
	ok(good, 'completions logprobs: text_offset advances by each token\'s length', lp.text_offset);
});

await step('completions echo', async () => {
	const r = await oai.completions.create({ model, prompt: c0.prompt, max_tokens: N, temperature: 0, echo: true });
	same(r.choices[0].text, c0.prompt + c0.text, 'completions echo: prompt then completion');
});

await step('completions echo logprobs (scoring)', async () => {
	// what agserve check sends: max_tokens 0, echo, logprobs, token ids (vLLM's return_tokens_as_token_ids)
	const r = await oai.completions.create({ model, prompt: c0.prompt, max_tokens: 0, echo: true, logprobs: 5,
		return_tokens_as_token_ids: true });
	const lp = r.choices[0].logprobs;
	same(r.choices[0].text, c0.prompt, 'echo, max_tokens 0: the prompt alone');
	ok(lp.tokens.length === r.usage.prompt_tokens && r.usage.completion_tokens === 0,
		'echo, max_tokens 0: a logprobs entry per prompt token, nothing generated', r.usage);
	ok(lp.token_logprobs[0] === null && lp.top_logprobs[0] === null &&
		lp.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0) &&
		lp.top_logprobs.slice(1).every((t) => Object.keys(t).length === 5 && Object.keys(t).every((k) => /^token_id:\d+$/.test(k))),
	'echo logprobs: the first token null, then log-probabilities and 5 alternatives named token_id:N', lp);
	const ids = lp.tokens.map((t) => Number(t.split(':')[1]));
	const r2 = await oai.completions.create({ model, prompt: ids, max_tokens: 0, echo: true, logprobs: 5,
		return_tokens_as_token_ids: true });
	same(JSON.stringify(r2.choices[0].logprobs.token_logprobs), JSON.stringify(lp.token_logprobs),
		'a prompt of token ids scores as its text does');
});

await step('completions stop', async () => {
	const t = comp[2].text;
	const stop = t.slice(6, 9);
	const want = t.slice(0, t.indexOf(stop));
	const r = await oai.completions.create({ model, prompt: comp[2].prompt, max_tokens: N, temperature: 0, stop: [stop] });
	same(r.choices[0].text, want, `completions stop ${JSON.stringify(stop)}: text up to the stop string`);
	same(r.choices[0].finish_reason, 'stop', 'completions stop: finish_reason stop');
	const s = await oai.completions.create({ model, prompt: comp[2].prompt, max_tokens: N, temperature: 0, stop, stream: true });
	let text = '';
	for await (const ch of s) if (ch.choices.length) text += ch.choices[0].text;
	same(text, want, 'completions stop, streamed: no part of the stop string is sent');
});

await step('completions sampling', async () => {
	const a = { model, prompt: c0.prompt, max_tokens: N, temperature: 1.0, top_p: 0.9, seed: 42 };
	const r1 = await oai.completions.create(a);
	const r2 = await oai.completions.create(a);
	same(r1.choices[0].text, r2.choices[0].text, 'completions: temperature 1 with a seed repeats');
	same(r1.usage.completion_tokens <= N, true, 'completions sampled: at most max_tokens');
});

const chats = expect.chats;
// Chat equality needs the runtime's template engine (agrun --render-chat).
const haveChat = chats.every((c) => typeof c.text === 'string');
const skipChat = haveChat ? '' : ' # SKIP agrun --render-chat not available (no template engine yet)';
const sameChat = (got, want, what) => (haveChat ? same(got, want, what) : console.log(`ok - ${what}${skipChat}`));
let chatText = [];
await step('chat', async () => {
	for (let i = 0; i < chats.length; i++) {
		const c = chats[i];
		const r = await oai.chat.completions.create({ model, messages: c.messages, max_tokens: N, temperature: 0 });
		same(r.object, 'chat.completion', `chat ${i}: object chat.completion`);
		ok(typeof r.id === 'string' && r.id.startsWith('chatcmpl-'), `chat ${i}: id chatcmpl-...`, r.id);
		same(r.choices[0].message.role, 'assistant', `chat ${i}: assistant message`);
		chatText[i] = r.choices[0].message.content;
		sameChat(chatText[i], c.text, `chat ${i}: greedy text equals agrun on the rendered template`);
		sameChat(r.usage.prompt_tokens, c.prompt_tokens, `chat ${i}: usage.prompt_tokens of the rendered template`);
		same(r.choices[0].finish_reason, 'length', `chat ${i}: finish_reason length`);
		same(r.usage.completion_tokens, N, `chat ${i}: usage.completion_tokens`);
	}
	const m = await oai.chat.completions.create({ model, messages: chats[0].messages, max_completion_tokens: 5, temperature: 0 });
	same(m.usage.completion_tokens, 5, 'chat: max_completion_tokens honoured');
	same(m.choices[0].message.content, chatText[0].slice(0, m.choices[0].message.content.length), 'chat: max_completion_tokens 5 is a prefix of the longer answer');
});

await step('chat stream', async () => {
	const s = await oai.chat.completions.create({
		model, messages: chats[1].messages, max_tokens: N, temperature: 0, stream: true,
		stream_options: { include_usage: true },
	});
	let text = '', finish = null, role = null, usage = null, first = true, objOk = true;
	for await (const ch of s) {
		if (ch.object !== 'chat.completion.chunk') objOk = false;
		if (ch.usage) usage = { usage: ch.usage, nchoices: ch.choices.length };
		if (!ch.choices.length) continue;
		const d = ch.choices[0].delta;
		if (first && d.role) role = d.role;
		first = false;
		if (d.content) text += d.content;
		if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
	}
	ok(objOk, 'chat stream: every chunk is chat.completion.chunk');
	same(role, 'assistant', 'chat stream: the first delta has role assistant');
	same(text, chatText[1], 'chat stream: deltas join to the non-streamed answer');
	same(finish, 'length', 'chat stream: finish_reason');
	ok(usage && usage.nchoices === 0 && usage.usage.completion_tokens === N &&
		usage.usage.total_tokens === usage.usage.prompt_tokens + N,
	'chat stream: include_usage sends a last chunk with usage and no choices', usage);
	// the openai SDK's own stream helper
	const r = await oai.chat.completions.stream({ model, messages: chats[1].messages, max_tokens: N, temperature: 0 }).finalChatCompletion();
	same(r.choices[0].message.content, chatText[1], 'chat .stream().finalChatCompletion(): same answer');
});

await step('chat logprobs', async () => {
	const r = await oai.chat.completions.create({ model, messages: chats[0].messages, max_tokens: N, temperature: 0, logprobs: true, top_logprobs: 2 });
	const lp = r.choices[0].logprobs && r.choices[0].logprobs.content;
	ok(Array.isArray(lp) && lp.length === N && lp.every((t) => typeof t.token === 'string' && t.logprob <= 0 &&
		Array.isArray(t.bytes) && t.top_logprobs.length === 2), 'chat logprobs: content[] with token, logprob, bytes, 2 top_logprobs', lp && lp[0]);
	same(lp.map((t) => t.token).join(''), chatText[0], 'chat logprobs: tokens join to the answer');
});

await step('chat refusals', async () => {
	for (const [what, extra] of [['n 2', { n: 2 }], ['tools without template support', {
		tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }],
	}]]) {
		const e = await oai.chat.completions.create({ model, messages: chats[0].messages, max_tokens: 4, ...extra }).then(() => null, (x) => x);
		ok(e instanceof OpenAI.BadRequestError && e.status === 400, `chat ${what}: BadRequestError (400)`, e && `${e.status} ${e.message}`);
	}
	const e = await oai.chat.completions.create({ model: 'no-such-model', messages: chats[0].messages, max_tokens: 4 }).then(() => null, (x) => x);
	ok(e instanceof OpenAI.NotFoundError && e.status === 404, 'chat unknown model: NotFoundError (404)', e && `${e.status} ${e.message}`);
});

if (!noAuth) await step('second key', async () => {
	const r = await oai2.completions.create({ model, prompt: c0.prompt, max_tokens: N, temperature: 0 });
	same(r.choices[0].text, c0.text, 'a key stored as sha256:HEX is accepted');
});

if (!noAuth) await step('openai wrong key', async () => {
	const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
	const e = await bad.completions.create({ model, prompt: 'x', max_tokens: 2 }).then(() => null, (x) => x);
	ok(e instanceof OpenAI.AuthenticationError && e.status === 401, 'openai wrong key: AuthenticationError (401)', e && `${e.constructor.name} ${e.status}`);
	const e2 = await bad.chat.completions.create({ model, messages: chats[0].messages, stream: true }).then(() => null, (x) => x);
	ok(e2 instanceof OpenAI.AuthenticationError, 'openai wrong key, streaming: AuthenticationError', e2 && e2.constructor.name);
	const e3 = await (async () => { for await (const m of bad.models.list()) void m; })().then(() => null, (x) => x);
	ok(e3 instanceof OpenAI.AuthenticationError, 'openai wrong key, models.list: AuthenticationError', e3 && e3.constructor.name);
});

// Anthropic: chats[1] is system + one user message.
const sys1 = chats[1].messages[0].content;
const msgs1 = chats[1].messages.slice(1);
let antText = null;
await step('anthropic messages', async () => {
	const r = await ant.messages.create({ model, max_tokens: N, system: sys1, messages: msgs1, temperature: 0 });
	same(r.type, 'message', 'anthropic: type message');
	same(r.role, 'assistant', 'anthropic: role assistant');
	ok(typeof r.id === 'string' && r.id.startsWith('msg_'), 'anthropic: id msg_...', r.id);
	ok(r.content.length === 1 && r.content[0].type === 'text', 'anthropic: one text content block', r.content);
	antText = r.content[0].text;
	same(antText, chatText[1], 'anthropic: greedy text equals the OpenAI chat answer for the same conversation');
	same(r.stop_reason, 'max_tokens', 'anthropic: stop_reason max_tokens');
	same(r.usage.output_tokens, N, 'anthropic: usage.output_tokens');
	sameChat(r.usage.input_tokens, chats[1].prompt_tokens, 'anthropic: usage.input_tokens of the rendered template');
	const b = await ant.messages.create({ model, max_tokens: N, system: [{ type: 'text', text: sys1 }],
		messages: [{ role: 'user', content: [{ type: 'text', text: msgs1[0].content }] }], temperature: 0 });
	same(b.content[0].text, antText, 'anthropic: system and content as text blocks give the same answer');
	const stop = antText.slice(4, 7);
	const s = await ant.messages.create({ model, max_tokens: N, system: sys1, messages: msgs1, temperature: 0, stop_sequences: [stop] });
	same(s.content[0].text, antText.slice(0, antText.indexOf(stop)), `anthropic stop_sequences ${JSON.stringify(stop)}: text up to it`);
	same(s.stop_reason, 'stop_sequence', 'anthropic stop_sequences: stop_reason stop_sequence');
	same(s.stop_sequence, stop, 'anthropic stop_sequences: stop_sequence names it');
});

await step('anthropic stream', async () => {
	const st = ant.messages.stream({ model, max_tokens: N, system: sys1, messages: msgs1, temperature: 0 });
	const events = [];
	let deltas = '', md = null;
	for await (const ev of st) {
		if (ev.type === 'ping') continue;
		events.push(ev.type);
		if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') deltas += ev.delta.text;
		if (ev.type === 'message_delta') md = ev;
	}
	const seq = events.join(' ');
	ok(/^message_start content_block_start( content_block_delta)+ content_block_stop message_delta message_stop$/.test(seq),
		'anthropic stream: message_start, content_block_start, content_block_delta..., content_block_stop, message_delta, message_stop', seq);
	same(deltas, antText, 'anthropic stream: text deltas join to the non-streamed answer');
	ok(md && md.delta.stop_reason === 'max_tokens' && md.usage.output_tokens === N, 'anthropic stream: message_delta with stop_reason and usage', md);
	const fm = await st.finalMessage();
	same(fm.content[0].text, antText, 'anthropic stream: finalMessage() has the answer');
	same(fm.stop_reason, 'max_tokens', 'anthropic stream: finalMessage().stop_reason');
	const raw = await ant.messages.create({ model, max_tokens: N, system: sys1, messages: msgs1, temperature: 0, stream: true });
	let t2 = '';
	for await (const ev of raw) if (ev.type === 'content_block_delta') t2 += ev.delta.text;
	same(t2, antText, 'anthropic create({stream: true}): same text');
});

if (!noAuth) await step('anthropic wrong key', async () => {
	const bad = new Anthropic({ baseURL: url, apiKey: 'sk-ant-wrong', maxRetries: 0 });
	const e = await bad.messages.create({ model, max_tokens: 4, messages: msgs1 }).then(() => null, (x) => x);
	ok(e instanceof Anthropic.AuthenticationError && e.status === 401, 'anthropic wrong key: AuthenticationError (401)', e && `${e.constructor.name} ${e.status}`);
	ok(e && e.error && e.error.type === 'error' && e.error.error && e.error.error.type === 'authentication_error',
		'anthropic wrong key: error body in Anthropic\'s format', e && e.error);
	const e2 = await (async () => { for await (const x of bad.messages.stream({ model, max_tokens: 4, messages: msgs1 })) void x; })().then(() => null, (x) => x);
	ok(e2 instanceof Anthropic.AuthenticationError, 'anthropic wrong key, streaming: AuthenticationError', e2 && e2.constructor.name);
});

await step('8 concurrent clients', async () => {
	const t0 = Date.now();
	const NL = expect.n_long;
	let running = true, maxActive = 0, scrapes = 0;
	const watch = (async () => {
		while (running) {
			const m = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
			const a = /^agserve_active_sequences (\d+)/m.exec(m);
			if (a) maxActive = Math.max(maxActive, Number(a[1]));
			scrapes++;
			await new Promise((r) => setTimeout(r, 2));
		}
	})();
	const jobs = comp.slice(0, 8).map(async (c, i) => {
		if (i % 2 === 0) {
			const r = await oai.completions.create({ model, prompt: c.prompt, max_tokens: NL, temperature: 0 });
			return r.choices[0].text;
		}
		const s = await oai.completions.create({ model, prompt: c.prompt, max_tokens: NL, temperature: 0, stream: true });
		let t = '';
		for await (const ch of s) if (ch.choices.length) t += ch.choices[0].text;
		return t;
	});
	const extra = [
		ant.messages.create({ model, max_tokens: N, system: sys1, messages: msgs1, temperature: 0 }).then((r) => r.content[0].text),
		oai.chat.completions.create({ model, messages: chats[1].messages, max_tokens: N, temperature: 0, stream: false }).then((r) => r.choices[0].message.content),
	];
	const got = await Promise.allSettled([...jobs, ...extra]);
	running = false;
	await watch;
	const want = [...comp.slice(0, 8).map((c) => c.text_long), antText, chatText[1]];
	const bad = got.map((g, i) => (g.status === 'fulfilled' && g.value === want[i] ? null : { i, g: g.value ?? String(g.reason), want: want[i] })).filter(Boolean);
	ok(bad.length === 0, `8 concurrent completions of ${NL} tokens (half streamed) + a message + a chat: all complete with agrun's greedy text (${Date.now() - t0} ms)`, bad);
	// the scrapes race with short requests; the server's own peak per step does not
	const m = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
	const sm = /^agserve_batch_sequences_max (\d+)/m.exec(m);
	const stepMax = sm ? Number(sm[1]) : 0;
	ok(stepMax >= 2, `the concurrent requests were decoded together (agserve_batch_sequences_max ${stepMax}; at most ${maxActive} active in ${scrapes} scrapes of /metrics)`);
});

process.exit(failed ? 1 : 0);
