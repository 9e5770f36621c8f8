#!/usr/bin/env python3
"""Renders Retina's chat-template test cases with Python jinja2 configured as transformers does, and writes the
expected strings to templates/src/test/resources/template_goldens.json for ChatTemplateGoldenTest to compare
byte for byte.

    python3 templates/src/test/python/make_template_goldens.py

transformers (utils/chat_template_utils.py, _compile_jinja_template): ImmutableSandboxedEnvironment with
trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker (the {% generation %} tag), loopcontrols],
filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys),
globals raise_exception (raises TemplateError) and strftime_now. Only jinja2 is needed here.
"""
import json
import os
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
OUT = os.path.join(MODULE, "src", "test", "resources", "template_goldens.json")
LLAVA = os.path.join(MODULE, "src", "main", "resources", "dev", "retina", "templates", "template_llava.jinja")


class GenerationTag(Extension):
    """transformers' AssistantTracker when no assistant mask is requested: renders its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[GenerationTag, jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception

# llava-hf/llava-1.5-7b-hf's template as tools/make_fixtures.py writes it (LIST_TEMPLATE), content as parts.
LIST_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# llava-hf's newer template: assistant text inside {% generation %}.
LIST_GENERATION_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# In the style of llava-v1.6-mistral (string content, [INST] turns, system folded into the first user turn).
MISTRAL_TEMPLATE = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
"""

# In the style of llava-hf/llava-v1.6-mistral-7b-hf: list content, system text read by indexing into the parts.
MISTRAL_LIST_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}"
    "{% endif %}{% endfor %}"
)

# In the style of llava-v1.6-vicuna, written with block tags on their own lines (trim_blocks/lstrip_blocks matter).
VICUNA_TEMPLATE = """{% if messages[0]['role'] != 'system' %}
A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.{{ ' ' }}
{%- endif %}
{% for message in messages %}
    {% if message['role'] == 'system' %}
{{ message['content'].strip() + ' ' }}
    {%- elif message['role'] == 'user' %}
{{ 'USER: ' + message['content'] + ' ' }}
    {%- else %}
{{ 'ASSISTANT: ' + message['content'] + eos_token }}
    {%- endif %}
{% endfor %}
{% if add_generation_prompt %}
ASSISTANT:
{%- endif %}
"""

TOJSON_TEMPLATE = (
    "{{ tools | tojson }}\n"
    "{{ tools | tojson(indent=2) }}\n"
    "{{ tools[0] | tojson }}|{{ 'say \"hi\"\\n' | tojson }}|{{ 42 | tojson }}|{{ none | tojson }}|"
    "{{ [] | tojson }}|{{ {} | tojson }}"
)

BOOLEAN_TEMPLATE = (
    "{{ flag }} {{ not flag }} {{ 1 == 1 }} {{ messages | length > 0 }} {{ flag | string }}"
    "{% if flag %} yes{% else %} no{% endif %}{% if not missing %} missing-falsy{% endif %}"
)

STRING_METHODS_TEMPLATE = (
    "{% for m in messages %}"
    "[{{ m.role.upper() }}|{{ m.content.lower() }}|{{ m.content.strip() }}|{{ m.content.lstrip() }}|"
    "{{ m.content.rstrip() }}|{{ m.content.strip(' .!') }}|{{ m.content.startswith('  Hello') }}|"
    "{{ m.content.strip().startswith('Hello') }}|{{ m.content.endswith('!  ') }}|"
    "{{ m.content.split() | join('/') }}|{{ m.content.split(',') | length }}|"
    "{{ m.content.replace('o', '0') }}|{{ m.content.strip().title() }}|{{ m.content.strip().capitalize() }}]\n"
    "{% endfor %}"
)

PYTHONIC_TEMPLATE = """{%- set ns = namespace(found=false, count=0) %}
{%- for message in messages %}
    {%- if message.role == 'system' %}
        {%- set ns.found = true %}
    {%- endif %}
    {%- set ns.count = ns.count + 1 %}
{%- endfor %}
system={{ ns.found }} count={{ ns.count }}
{% for message in messages %}
{{ loop.index0 }}/{{ loop.index }}{% if loop.first %} first{% endif %}{% if loop.last %} last{% endif %}: {{ message['role'] }}
{%- if message.content is string %} str{% endif %}
{%- if 'name' in message %} name={{ message.name }}{% endif %}
{%- if message.get('tool_calls') %} calls={{ message.get('tool_calls') | length }}{% endif %}
{{ message.get('missing', 'dflt') }}
{% endfor %}
{% for key, value in extra.items() %}{{ key }}={{ value }};{% endfor %}
{{ extra.keys() | list | length }} {{ 'x' if true else 'y' }} {{ [1, 2, 3] | join(',') }} {{ '  a b  ' | trim }}
"""

IDIOMS_TEMPLATE = """{{- messages[-1]['content'] }}|{{ messages[0]['content'][1:4] }}|{{ messages | length }}
{%- for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}|{{ loop.length }}{{ m.role[0] }}{% endfor %}
{%- set users = messages | selectattr('role', 'equalto', 'user') | list %}|users={{ users | length }}
{%- if tools is not defined or tools is none %}|no-tools{% endif %}
{%- if 'user' in (messages | map(attribute='role') | list) %}|has-user{% endif %}
|{{ missing | default('dflt') }}|{{ '  pad  ' | trim }}|{{ 'a-b-c'.split('-')[-1] }}|{{ (messages | last).role }}
{%- for m in messages if m.role != 'system' %}|{{ m.content | upper }}{% endfor %}
"""


def llava_source():
    with open(LLAVA) as f:
        return f.read()


TEMPLATES = {
    "llava": None,  # the built-in template_llava.jinja
    "list": LIST_TEMPLATE,
    "list_generation": LIST_GENERATION_TEMPLATE,
    "mistral": MISTRAL_TEMPLATE,
    "mistral_list": MISTRAL_LIST_TEMPLATE,
    "vicuna": VICUNA_TEMPLATE,
    "tojson": TOJSON_TEMPLATE,
    "booleans": BOOLEAN_TEMPLATE,
    "string_methods": STRING_METHODS_TEMPLATE,
    "pythonic": PYTHONIC_TEMPLATE,
    "idioms": IDIOMS_TEMPLATE,
}

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


def s(text):
    return {"role": "system", "content": text}


def parts(role, *items):
    content = []
    for it in items:
        content.append({"type": "image"} if it == "<img>" else {"type": "text", "text": it})
    return {"role": role, "content": content}


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city, e.g. \"Zürich\" or 東京",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer",
                   "minimum": 1, "maximum": 7.5}}, "required": ["city"], "additionalProperties": False,
                   "nullable": None, "tiny": 1e-05, "big": 1e16, "ratio": 0.1}}}]

CASES = [
    ("list_one_image", "list", [parts("user", "<img>", "What is shown in this image?")], True, {}),
    ("list_two_images_multiturn", "list", [parts("user", "<img>", "<img>", "Compare these."),
                                           parts("assistant", "The first is a cat."),
                                           parts("user", "And the second?")], True, {}),
    ("list_system_no_prompt", "list", [parts("system", "Be brief."), parts("user", "Hi")], False, {}),
    ("list_generation", "list_generation", [parts("user", "<img>", "Describe."), parts("assistant", "A cat."),
                                            parts("user", "More?")], True, {}),
    ("llava_single", "llava", [u("<image>\nWhat is shown in this image?")], True, {}),
    ("llava_system", "llava", [s("You are a helpful assistant. "), u("Hello")], True, {}),
    ("llava_multiturn", "llava", [u("Hi"), a("Hello! How can I help?"), u("Describe the image.")], True, {}),
    ("llava_no_generation_prompt", "llava", [s("Sys."), u("Hi"), a("Hey")], False, {}),
    ("llava_bad_alternation", "llava", [u("Hi"), u("Hi again")], True, {}),
    ("llava_starts_with_assistant", "llava", [a("I speak first")], True, {}),
    ("mistral_system", "mistral", [s("Answer in French."), u("Hello"), a("Bonjour"), u("Thanks")], False, {}),
    ("mistral_plain", "mistral", [u("What is this?")], True, {}),
    ("mistral_bad_role", "mistral", [u("a"), {"role": "tool", "content": "x"}], True, {}),
    ("mistral_list", "mistral_list", [parts("system", "Be kind."), parts("user", "<img>", "What is it?"),
                                      parts("assistant", "A dog."), parts("user", "Breed?")], True, {}),
    ("vicuna_default_system", "vicuna", [u("Hi there"), a("Hello."), u("Bye")], True, {}),
    ("vicuna_own_system", "vicuna", [s("  Custom system.  "), u("Hi")], False, {}),
    ("tojson", "tojson", [u("x")], False, {"tools": TOOLS}),
    ("booleans_true", "booleans", [u("x")], False, {"flag": True}),
    ("booleans_false", "booleans", [u("x")], False, {"flag": False}),
    ("string_methods", "string_methods", [u("  Hello, wOrld! they're 2go  "), a("plain,text")], False, {}),
    ("pythonic", "pythonic", [s("sys"), {"role": "user", "content": "hi", "name": "bob"},
                              {"role": "assistant", "content": "", "tool_calls": [{"id": "1"}, {"id": "2"}]}],
     False, {"extra": {"alpha": 1, "beta": "two"}}),
    ("idioms", "idioms", [s("system text"), u("first q"), a("answer"), u("last q")], False, {}),
]


def main():
    out = {"jinja2": jinja2.__version__, "special": SPECIAL, "templates": {}, "cases": []}
    for name, src in TEMPLATES.items():
        out["templates"][name] = src  # null means the built-in of that name
    for name, tmpl, messages, agp, extra in CASES:
        src = TEMPLATES[tmpl] if TEMPLATES[tmpl] is not None else llava_source()
        ctx = dict(SPECIAL)
        ctx.update(extra)
        case = {"name": name, "template": tmpl, "messages": messages, "add_generation_prompt": agp, "context": extra}
        try:
            case["expected"] = ENV.from_string(src).render(messages=messages, add_generation_prompt=agp, **ctx)
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        out["cases"].append(case)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", OUT, len(out["cases"]), "cases", file=sys.stderr)


if __name__ == "__main__":
    main()
