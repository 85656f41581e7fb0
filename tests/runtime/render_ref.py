#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reference chat-template renderer: python3-jinja2 with the environment
transformers' apply_chat_template builds (written from the jinja2 and
transformers documentation, not from agkit's C engine):

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[jinja2.ext.loopcontrols])
  filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=indent,
                                  separators=separators, sort_keys=sort_keys)
  globals["raise_exception"](message) raises TemplateError(message)
  globals["strftime_now"](fmt) = datetime.now().strftime(fmt)

The variables are the context file's keys (messages, add_generation_prompt,
tools, any extra key), plus bos_token / eos_token from the model directory's
tokenizer_config.json (a string or an AddedToken-style {"content": ...})
unless the context sets them.  transformers' {% generation %} marker is
accepted and renders its body.

usage: render_ref.py MODEL_DIR_OR_TEMPLATE CONTEXT.json
  MODEL_DIR_OR_TEMPLATE: a directory (tokenizer_config.json chat_template,
  else chat_template.jinja) or a .jinja file.
Prints exactly the rendered prompt (sys.stdout.write); on an error prints
the exception's message on stderr and exits 1.
"""
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTracker(jinja2.ext.Extension):
    """{% generation %}...{% endgeneration %} as transformers' AssistantTracker
    parses it; without assistant-mask tracking it just renders the body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def token(v):
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else None


def load(path):
    bos = eos = None
    if os.path.isdir(path):
        cfg_path = os.path.join(path, "tokenizer_config.json")
        src = None
        if os.path.exists(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
            bos, eos = token(cfg.get("bos_token")), token(cfg.get("eos_token"))
            ct = cfg.get("chat_template")
            if isinstance(ct, list):
                ct = {t["name"]: t["template"] for t in ct}.get("default")
            src = ct
        if src is None:
            with open(os.path.join(path, "chat_template.jinja"), encoding="utf-8") as f:
                src = f.read()
    else:
        with open(path, encoding="utf-8") as f:
            src = f.read()
    return src, bos, eos


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    src, bos, eos = load(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        ctx = json.load(f)
    if bos is not None:
        ctx.setdefault("bos_token", bos)
    if eos is not None:
        ctx.setdefault("eos_token", eos)
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        out = env.from_string(src).render(**ctx)
    except Exception as e:  # noqa: BLE001 - any template failure is a refusal
        sys.stderr.write("%s: %s\n" % (type(e).__name__, e))
        return 1
    sys.stdout.write(out)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
