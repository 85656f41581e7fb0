/* Chat template engine (runtime/jinja_*.c) through the public API: the
 * Jinja subset, Python's printing, transformers' tojson, errors, and the
 * limits on hostile templates and contexts.  Expected outputs are what
 * jinja2 / Python print (checked by hand against python3-jinja2).  TAP.
 * usage: test_jinja [MODEL_DIR_SCRATCH] */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agrt/agrt.h"
#include "../tap.h"

static void check(int ok, const char *what)
{
	TAP_OK(ok, "%s", what);
}

static const char *CTX = "{\"messages\": [{\"role\": \"user\", \"content\": \" hi \\u3000\"},"
                         " {\"role\": \"assistant\", \"content\": \"yo\"}],"
                         " \"add_generation_prompt\": true, \"x\": {\"b\": 1, \"a\": [1.5, null, true, \"it's\"]},"
                         " \"n\": 7, \"s\": \"a,b,,c\"}";

/* Render src with CTX; returns the text (malloc'ed) or NULL with *err. */
static char *render(const char *src, const char *ctx, struct rt_error *e, int *ret_r)
{
	struct rt_chat_template *t = NULL;
	char *out = NULL;
	size_t len = 0;
	int r = rt_chat_template_new(src, strlen(src), "<s>", "</s>", &t, e);
	if (r == 0)
		r = rt_chat_template_render(t, ctx ? ctx : CTX, strlen(ctx ? ctx : CTX), &out, &len, e);
	rt_chat_template_free(t);
	if (ret_r)
		*ret_r = r;
	if (r == 0 && strlen(out) != len) {
		free(out);
		return NULL;
	}
	return r == 0 ? out : NULL;
}

static void expect(const char *src, const char *want)
{
	struct rt_error e = {0};
	char *got = render(src, NULL, &e, NULL);
	char what[300];
	snprintf(what, sizeof(what), "%.200s", src);
	for (char *p = what; *p; p++)
		if (*p == '\n')
			*p = ' ';
	check(got && !strcmp(got, want), what);
	if (!got)
		printf("#   error: %s\n", e.msg);
	else if (strcmp(got, want))
		printf("#   want [%s]\n#   got  [%s]\n", want, got);
	free(got);
}

/* The render (or compile) must fail with class cls, and the message contain msg. */
static void expect_fail(const char *src, const char *ctx, int cls, const char *msg, const char *what)
{
	struct rt_error e = {0};
	int r;
	char *got = render(src, ctx, &e, &r);
	check(!got && r < 0 && e.code == cls && (!msg || strstr(e.msg, msg)), what);
	if (got || e.code != cls || (msg && !strstr(e.msg, msg)))
		printf("#   r=%d class=%d msg=%s\n", r, e.code, e.msg);
	free(got);
}

static char *repeat(const char *unit, size_t n, const char *pre, const char *post)
{
	size_t ul = strlen(unit), pl = strlen(pre), ql = strlen(post);
	char *s = malloc(pl + ul * n + ql + 1), *p = s;
	if (!s)
		exit(1);
	memcpy(p, pre, pl);
	p += pl;
	for (size_t i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, post, ql + 1);
	return s;
}

/* One compiled template rendered by several threads at once (agserve does
 * this): every render must give the single-threaded result. */
struct mt_arg {
	const struct rt_chat_template *t;
	const char *want;
	int ok;
};

static void *mt_render(void *p)
{
	struct mt_arg *a = p;
	a->ok = 1;
	for (int i = 0; i < 300; i++) {
		struct rt_error e = {0};
		char *out = NULL;
		size_t len;
		if (rt_chat_template_render(a->t, CTX, strlen(CTX), &out, &len, &e) < 0 || strcmp(out, a->want))
			a->ok = 0;
		free(out);
	}
	return NULL;
}

static void threads_check(void)
{
	static const char src[] = "{% for m in messages %}{{ m.role ~ ':' ~ m.content|trim }}{{ 'lit' }}"
	                          "{{ ['a', 'b']|join(',') }}{% endfor %}{{ [3, 1, 2]|sort }}{{ x|tojson }}";
	struct rt_chat_template *t = NULL;
	struct rt_error e = {0};
	char *want = NULL;
	size_t len;
	pthread_t th[4];
	struct mt_arg a[4];
	int ok = rt_chat_template_new(src, strlen(src), NULL, NULL, &t, &e) == 0 &&
	         rt_chat_template_render(t, CTX, strlen(CTX), &want, &len, &e) == 0;
	for (int i = 0; ok && i < 4; i++) {
		a[i] = (struct mt_arg){.t = t, .want = want};
		if (pthread_create(&th[i], NULL, mt_render, &a[i]))
			ok = 0;
	}
	for (int i = 0; ok && i < 4; i++) {
		pthread_join(th[i], NULL);
		ok &= a[i].ok;
	}
	check(ok, "one template rendered by 4 threads at once gives the same text");
	free(want);
	rt_chat_template_free(t);
}

int main(int argc, char **argv)
{
	struct rt_error e = {0};
	struct rt_chat_template *t = NULL;
	char *s;

	(void)argc;
	(void)argv;
	/* ---- the subset ---- */
	expect("{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m['content']|trim }}{% endfor %}"
	       "{% if add_generation_prompt %}<assistant>{% endif %}{{ eos_token }}",
	       "<s><user>hi<assistant>yo<assistant></s>");
	expect("{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
	       "{{ loop.length }}{{ loop.revindex }};{% endfor %}",
	       "10TrueFalse22;21FalseTrue21;");
	expect("{% for m in messages if m.role == 'assistant' %}{{ loop.length }}{{ loop.last }}{% endfor %}",
	       "1True");
	expect("{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}", "b=1;a=[1.5, None, True, \"it's\"];");
	expect("{% for a in [] %}x{% else %}empty{% endfor %}", "empty");
	expect("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}"
	       "{{ i }}{% endfor %}",
	       "02");
	expect("{% set ns = namespace(c=0) %}{% for i in range(4) %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }}",
	       "6");
	expect("{% set y = 1 %}{% for i in range(3) %}{% set y = i %}{% endfor %}{{ y }}", "1");
	expect("{% if n > 10 %}a{% elif n > 5 %}b{% else %}c{% endif %}", "b");
	expect("{% macro f(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ f(1) }}{{ f(1, 2) }}{{ f(b=3, a=4) }}",
	       "[1B][12][43]");
	expect("{% set t %}blk{{ n }}{% endset %}{{ t }}|{% filter upper %}up{% endfilter %}", "blk7|UP");
	expect("{{ 'a' if n is odd else 'b' }}|{{ 'x' if false }}|{{ none or 'd' }}|{{ 0 and 1 }}", "a||d|0");
	expect("{{ n is divisibleby 7 }}{{ x is mapping }}{{ s is string }}{{ n is number }}{{ x.q is defined }}"
	       "{{ x.b is not none }}{{ 'a' in x }}{{ 'q' not in x }}",
	       "TrueTrueTrueTrueFalseTrueTrueTrue");
	expect("{{ s.split(',') }}|{{ ' a  b '.split() }}|{{ s.replace(',', ';') }}|{{ s.startswith('a,') }}"
	       "|{{ s.endswith(('x', 'c')) }}|{{ '  x\\n'.strip() }}|{{ 'xxhixx'.strip('x') }}",
	       "['a', 'b', '', 'c']|['a', 'b']|a;b;;c|True|True|x|hi");
	expect("{{ [{'k': 2, 'n': 'a'}, {'k': 1, 'n': 'b'}, {'k': 2, 'n': 'c'}]|sort(attribute='k', reverse=true)"
	       "|map(attribute='n')|join }}|{{ ['b', 'A', 'c']|sort }}|{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}",
	       "acb|['A', 'b', 'c']|['A', 'b', 'c']");
	expect("{{ [3, 1, 2]|sort }}|{{ [3, 1, 2]|reverse|list }}|{{ [1, 2, 1]|unique|list }}|{{ [1, 2]|join('-') }}"
	       "|{{ [1, 2]|first }}{{ [1, 2]|last }}|{{ 'abc'|length }}|{{ x|length }}",
	       "[1, 2, 3]|[2, 1, 3]|[1, 2]|1-2|12|3|2");
	expect("{{ messages|selectattr('role', 'equalto', 'user')|list|length }}"
	       "|{{ messages|rejectattr('role', 'eq', 'user')|map(attribute='content')|join }}"
	       "|{{ messages|map(attribute='role')|list }}",
	       "1|yo|['user', 'assistant']");
	expect("{{ [1, 2, 3][1:] }}{{ [1, 2, 3][::-1] }}{{ [1, 2, 3][-1] }}{{ 'h\xc3\xa9llo'[1:3] }}{{ 'abc'[-1] }}",
	       "[2, 3][3, 2, 1]3\xc3\xa9lc");
	expect("{{ 'a' ~ 1 ~ none }}|{{ 'ab' * 2 }}|{{ 7 // 2 }}{{ -7 // 2 }}{{ -7 % 3 }}{{ 2 ** 10 }}|{{ 10 / 4 }}",
	       "a1None|abab|3-421024|2.5");
	expect("{{ undefined_thing }}|{{ undefined_thing|default('d') }}|{{ ''|default('e', true) }}"
	       "|{{ undefined_thing is undefined }}|{{ undefined_thing|length }}",
	       "|d|e|True|0");
	expect("{{ '42'|int + 1 }}|{{ 'x'|int }}|{{ '2.5'|float }}|{{ -3|abs }}|{{ 2.5|round }}|{{ 3.14159|round(2) }}",
	       "43|0|2.5|3|2.0|3.14");
	expect("{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'Ab'|upper }}{{ 'Ab'|lower }}"
	       "|{{ 'a\\nb'|indent(2) }}|{{ '<&>'|e }}",
	       "Hello World|Hello|ABab|a\n  b|&lt;&amp;&gt;");
	expect("{{ x.get('b') }}{{ x.get('q', 'd') }}{{ x.keys()|list }}{{ x.values()|list|length }}",
	       "1d['b', 'a']2");
	expect("{{ {'k': 'v'}['k'] }}{{ x['a'][0] }}{{ x.a.1 }}{{ dict(p=1) }}{{ (1, 2) }}{{ (1,) }}",
	       "v1.5None{'p': 1}(1, 2)(1,)");
	/* whitespace control: trim_blocks, lstrip_blocks, -, + */
	expect("a\n  {% if true %}\n  b\n  {% endif %}\nc", "a\n  b\nc");
	expect("a  {%- if true -%}  b  {%- endif -%}  c", "abc");
	expect("x\n  {%+ if true %}y{% endif %}", "x\n  y");
	expect("x\n  {# c #}\ny\n{{ 'z' }}\n", "x\ny\nz");
	expect("{% raw %}{{ not }}{% endraw %}|{{ '{{' }}", "{{ not }}|{{");
	/* ---- Python printing ---- */
	expect("{{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 1e16 }} {{ 123.456 }} {{ -0.0 }} {{ 1e15 }}",
	       "1.0 1e+20 0.30000000000000004 1e-05 1e+16 123.456 -0.0 1000000000000000.0");
	expect("{{ x }}", "{'b': 1, 'a': [1.5, None, True, \"it's\"]}");
	expect("{{ ['a\"b', \"it's\", 'q\\'\"', '\\n\\t\\\\', '\xc3\xa9\xe2\x80\xa8'] }}",
	       "['a\"b', \"it's\", 'q\\'\"', '\\n\\t\\\\', '\xc3\xa9\\u2028']");
	expect("{{ true }}{{ True }}{{ none }}{{ None }}{{ false }}", "TrueTrueNoneNoneFalse");
	/* ---- tojson as transformers defines it ---- */
	expect("{{ x|tojson }}", "{\"b\": 1, \"a\": [1.5, null, true, \"it's\"]}");
	expect("{{ x|tojson(indent=2) }}", "{\n  \"b\": 1,\n  \"a\": [\n    1.5,\n    null,\n    true,\n    \"it's\"\n  ]\n}");
	expect("{{ x|tojson(separators=(',', ':'), sort_keys=true) }}", "{\"a\":[1.5,null,true,\"it's\"],\"b\":1}");
	expect("{{ '\xc3\xa9</script>&\"\\n\x01'|tojson }}", "\"\xc3\xa9</script>&\\\"\\n\\u0001\"");
	expect("{{ '\xc3\xa9\xf0\x9f\x98\x80'|tojson(ensure_ascii=true) }}", "\"\\u00e9\\ud83d\\ude00\"");
	/* ---- errors ---- */
	expect_fail("{{ raise_exception('Roles must alternate!') }}", NULL, RT_ERR_USAGE, "Roles must alternate!",
	            "raise_exception passes the template's message verbatim");
	{
		/* exactly the message: nothing prepended */
		struct rt_error e2 = {0};
		int r;
		char *g = render("{{ raise_exception('exact msg') }}", NULL, &e2, &r);
		check(!g && !strcmp(e2.msg, "exact msg"), "raise_exception message is not decorated");
		free(g);
	}
	expect_fail("{{ 'a' + [1] }}", NULL, RT_ERR_USAGE, NULL, "str + list is an error");
	expect_fail("{% for a in none %}{% endfor %}", NULL, RT_ERR_USAGE, "not iterable", "iterating None");
	expect_fail("{{ nothing.attr }}", NULL, RT_ERR_USAGE, "undefined", "attribute of undefined");
	expect_fail("{{ 1 < 'a' }}", NULL, RT_ERR_USAGE, NULL, "ordering int and str");
	expect_fail("{{ messages|selectattr('role')|length }}", NULL, RT_ERR_USAGE, "len", "length of a generator");
	expect_fail("{% if %}", NULL, RT_ERR_MODEL, "line 1", "syntax error names the line");
	expect_fail("{% for x in y %}", NULL, RT_ERR_MODEL, "endfor", "unclosed block");
	expect_fail("{% include 'x' %}", NULL, RT_ERR_MODEL, "include", "include is refused");
	expect_fail("{{ 'x' }", NULL, RT_ERR_MODEL, NULL, "unterminated tag");
	expect_fail("{{ x }}", "[1]", RT_ERR_USAGE, "object", "context must be an object");
	expect_fail("{{ x }}", "{\"x\": ", RT_ERR_USAGE, NULL, "context must be JSON");
	/* ---- limits: hostile templates fail cleanly ---- */
	s = repeat("(", 10000, "{{ ", "1 }}");
	expect_fail(s, NULL, RT_ERR_MODEL, "nested", "10000 nested parentheses refused at compile time");
	free(s);
	s = repeat("{% if true %}", 200, "", "");
	expect_fail(s, NULL, RT_ERR_MODEL, "nested", "200 nested if blocks refused");
	free(s);
	s = repeat("-", 100000, "{{ ", "1 }}");
	expect_fail(s, NULL, RT_ERR_MODEL, NULL, "100000 unary minus refused");
	free(s);
	expect_fail("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", NULL,
	            RT_ERR_USAGE, "steps", "1e10 loop iterations stop at the step limit");
	expect_fail("{% for i in range(1000000) %}{% endfor %}", NULL, RT_ERR_USAGE, "Range too big",
	            "range() capped as the sandbox does");
	expect_fail("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", NULL, RT_ERR_USAGE, "longer than",
	            "output over the limit refused");
	expect_fail("{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
	            NULL, RT_ERR_USAGE, NULL, "doubling a string is refused at the size limit");
	expect_fail("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, RT_ERR_USAGE, "deeper",
	            "unbounded macro recursion refused");
	expect_fail("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}"
	            "{{ ns.l }}",
	            NULL, RT_ERR_USAGE, "nested", "values nested 1000 deep refused");
	expect_fail("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", NULL, RT_ERR_USAGE, "deep",
	            "a namespace holding itself: printing refused, no leak");
	s = repeat("[", 100, "{\"x\": ", "");
	{
		char *c2 = repeat("]", 100, s, "}");
		expect_fail("{{ x }}", c2, RT_ERR_USAGE, "nested", "context nested 100 deep refused");
		free(c2);
	}
	free(s);
	expect_fail("{{ 'ab' * 100000000 }}", NULL, RT_ERR_USAGE, NULL, "huge string repetition refused");
	expect_fail("{{ [1] * 100000000 }}", NULL, RT_ERR_USAGE, NULL, "huge list repetition refused");
	expect("{{ '' * 9223372036854775807 }}{{ [] * 9223372036854775807 }}", "[]");
	expect("{{ 1 // 0.1 }}|{{ -7.5 // 2 }}|{{ 2.5 is even }}{{ 3.0 is odd }}|{{ 'a 0.1 b_c'|wordcount }}"
	       "|{{ 5|safe ~ '' }}|{{ [1]|map(attribute='x')|list }}|{{ 0|select|list }}",
	       "9.0|-4.0|FalseTrue|4|5|[Undefined]|[]");
	expect_fail("{{ undefined_thing|int }}", NULL, RT_ERR_USAGE, NULL, "int of undefined is an error");
	expect_fail("{{ [{'a': 1}, {'a': 1}]|unique|list }}", NULL, RT_ERR_USAGE, "unhashable", "unique of dicts");
	expect_fail("{{ 9223372036854775807 + 1 }}", NULL, RT_ERR_USAGE, "overflow", "integer overflow refused");
	/* ---- API ---- */
	threads_check();
	rt_chat_template_free(NULL);
	s = "{% if tools %}{{ tools|tojson }}{% endif %}";
	check(rt_chat_template_new(s, strlen(s), NULL, NULL, &t, &e) == 0 &&
	              rt_chat_template_mentions(t, "tools") && !rt_chat_template_mentions(t, "tool") &&
	              !rt_chat_template_mentions(t, "messages"),
	      "rt_chat_template_mentions finds names, whole words only");
	rt_chat_template_free(t);
	{
		char dir[] = "/tmp/agkit-jinja-XXXXXX", path[300];
		FILE *f;
		int r;
		char *out = NULL;
		size_t len;
		check(mkdtemp(dir) != NULL, "scratch dir");
		r = rt_chat_template_load(dir, NULL, &t, &e);
		check(r == -ENOENT && e.code == RT_ERR_MODEL, "a model without a template: -ENOENT, RT_ERR_MODEL");
		snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
		f = fopen(path, "w");
		fputs("{\"bos_token\": {\"content\": \"<B>\"}, \"eos_token\": \"<E>\", \"chat_template\": ["
		      "{\"name\": \"default\", \"template\": \"{{ bos_token }}d{{ eos_token }}\"},"
		      "{\"name\": \"tool_use\", \"template\": \"t\"}]}",
		      f);
		fclose(f);
		r = rt_chat_template_load(dir, NULL, &t, &e);
		check(r == 0 && rt_chat_template_render(t, "{}", 2, &out, &len, &e) == 0 && !strcmp(out, "<B>d<E>"),
		      "named template list, default, AddedToken bos");
		free(out);
		out = NULL;
		rt_chat_template_free(t);
		t = NULL;
		r = rt_chat_template_load(dir, "tool_use", &t, &e);
		check(r == 0 && rt_chat_template_render(t, "{}", 2, &out, &len, &e) == 0 && !strcmp(out, "t"),
		      "named template list, by name");
		free(out);
		out = NULL;
		rt_chat_template_free(t);
		t = NULL;
		check(rt_chat_template_load(dir, "nope", &t, &e) == -ENOENT, "unknown template name: -ENOENT");
		f = fopen(path, "w");
		fputs("{\"eos_token\": \"<E>\"}", f);
		fclose(f);
		snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
		f = fopen(path, "w");
		fputs("{{ bos_token is defined }}{{ eos_token }}{{ bos_token }}\n", f);
		fclose(f);
		r = rt_chat_template_load(dir, NULL, &t, &e);
		check(r == 0 && rt_chat_template_render(t, "{\"bos_token\": \"X\"}", 18, &out, &len, &e) == 0 &&
		              !strcmp(out, "True<E>X"),
		      "chat_template.jinja; context bos_token wins; trailing newline dropped");
		free(out);
		rt_chat_template_free(t);
		unlink(path);
		snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
		unlink(path);
		rmdir(dir);
	}
	return tap_done();
}
