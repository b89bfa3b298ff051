"""The chat templates the vLLM emitter names exist, ship in the kaito-vllm image, and render.

``--chat-template=/workspace/chat_templates/<file>`` (catalog/vllmparams.py) points into the image;
a missing file is a server that exits at start. Each template is rendered the way vLLM renders a
Hugging Face tokenizer's template (transformers' sandboxed Jinja environment: trim_blocks,
lstrip_blocks, loopcontrols, its ``tojson``), and a rendered tool call is read back with the same
pattern as the vLLM 0.32 tool parser the catalog pairs the template with.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from kaito_gen.catalog.vllmparams import _BY_PREFIX, CHAT_TEMPLATE_DIR, vllm_params
from kaito_gen.compiler.load import load_presets

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "gpu-runtime" / "chat_templates"
DOCKERFILE = ROOT / "gpu-runtime" / "Dockerfile.vllm"
CATALOG = load_presets()


def rule_paths() -> set[str]:
    """Every path the prefix rules can name (also for models added with --presets)."""
    return {f"{CHAT_TEMPLATE_DIR}/{stem}.jinja" for *_, stem in _BY_PREFIX if stem}


def catalog_paths() -> set[str]:
    return {p for m in CATALOG.models.values() if (p := vllm_params(m).chat_template)}


def _copies() -> list[tuple[list[str], str]]:
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in text.splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "COPY":
            *sources, dest = [a for a in rest.split() if not a.startswith("--")]
            out.append((sources, dest))
    return out


def image_path(source: Path) -> str | None:
    """Where the Dockerfile puts a repository file inside the image, or None."""
    rel = source.relative_to(ROOT).as_posix()
    for sources, dest in _copies():
        for src in sources:
            if src.endswith("/") and rel.startswith(src):
                return dest.rstrip("/") + "/" + rel[len(src) :]
            if rel == src:
                return dest + source.name if dest.endswith("/") else dest
    return None


def test_catalog_templates_are_a_subset_of_the_rules() -> None:
    assert catalog_paths() <= rule_paths()
    assert len(catalog_paths()) >= 5  # the rule table is really exercised by the catalog


@pytest.mark.parametrize("path", sorted(rule_paths()))
def test_every_named_template_is_shipped_in_the_vllm_image(path: str) -> None:
    name = path.rsplit("/", 1)[-1]
    source = TEMPLATES / name
    assert source.is_file(), f"{path} is named by catalog/vllmparams.py but {source} does not exist"
    assert image_path(source) == path, f"gpu-runtime/Dockerfile.vllm does not copy {source.name} to {path}"
    ignore = (ROOT / "gpu-runtime" / "Dockerfile.vllm.dockerignore").read_text().splitlines()
    assert "!gpu-runtime/chat_templates/" in ignore, "Dockerfile.vllm.dockerignore keeps the templates out"


def test_every_shipped_template_is_named_by_a_rule() -> None:
    shipped = {f"{CHAT_TEMPLATE_DIR}/{p.name}" for p in TEMPLATES.glob("*.jinja")}
    assert shipped == rule_paths()


def test_image_path_finds_a_missing_copy() -> None:
    assert image_path(ROOT / "README.md") == "/src/README.md"
    assert image_path(ROOT / "Makefile") is None


# --- rendering ---------------------------------------------------------------------------------


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def render(name: str, messages: list[dict[str, Any]], **kwargs: Any) -> str:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    template = env.from_string((TEMPLATES / name).read_text())
    return template.render(messages=messages, add_generation_prompt=True, bos_token="<BOS>", **kwargs)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
ARGS = {"city": "Paris", "days": 3}
CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "What is 2+2?"},
]


def tool_chat(arguments: Any) -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]


def _json_calls(pattern: str, text: str, args_key: str) -> list[tuple[str, Any]]:
    calls = [json.loads(m) for m in re.findall(pattern, text, re.DOTALL)]
    return [(c["name"], c[args_key]) for c in calls]


def _hermes(text: str) -> list[tuple[str, Any]]:
    # vllm/tool_parsers/hermes_tool_parser.py: tool_call_regex
    return _json_calls(r"<tool_call>(.*?)</tool_call>", text, "arguments")


def _llama(text: str) -> list[tuple[str, Any]]:
    # vllm/tool_parsers/llama_tool_parser.py: the assistant turn's JSON objects, "; "-separated.
    turns = re.findall(r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n(\{.*?)<\|eot_id\|>", text)
    calls = [json.loads(part) for turn in turns for part in turn.split("; ")]
    return [(c["name"], c["parameters"]) for c in calls]


def _phi4(text: str) -> list[tuple[str, Any]]:
    # vllm/tool_parsers/phi4mini_tool_parser.py: functools\[(.*?)\]
    calls = [json.loads("[" + m + "]") for m in re.findall(r"functools\[(.*?)\]", text, re.DOTALL)]
    return [(c["name"], c["arguments"]) for group in calls for c in group]


def _deepseek(text: str) -> list[tuple[str, Any]]:
    # vllm/tool_parsers/deepseekv3_tool_parser.py: tool_call_regex
    pattern = (
        r"<｜tool▁call▁begin｜>(?P<type>.*)<｜tool▁sep｜>(?P<function_name>.*)\n```json\n"
        r"(?P<function_arguments>.*)\n```<｜tool▁call▁end｜>"
    )
    return [(m[1], json.loads(m[2])) for m in re.findall(pattern, text)]


def _gemma4(text: str) -> list[tuple[str, Any]]:
    # vllm/tool_parsers/gemma4_utils.py: standard_pattern; arguments in Gemma's key:value syntax.
    found = re.findall(r"<\|tool_call\>call:(\w+)\{(.*?)\}(?:<tool_call\|>|<turn\|>)", text, re.DOTALL)
    out = []
    for name, args in found:
        parsed: dict[str, Any] = {}
        for pair in args.split(","):
            key, _, value = pair.partition(":")
            parsed[key] = value[5:-5] if value.startswith('<|"|>') else json.loads(value)
        out.append((name, parsed))
    return out


# (template file, generation prompt it must end with, tool-call reader)
CASES = [
    ("tool-chat-hermes.jinja", "<|im_start|>assistant\n", _hermes),
    ("tool-chat-llama3.1-json.jinja", "<|start_header_id|>assistant<|end_header_id|>\n\n", _llama),
    ("tool-chat-phi4-mini.jinja", "<|assistant|>", _phi4),
    ("tool-chat-deepseekr1.jinja", "<｜Assistant｜><think>\n", _deepseek),
    ("tool-chat-deepseekv3.jinja", "<｜Assistant｜>", _deepseek),
    ("tool-chat-gemma4.jinja", "<|turn>model\n", _gemma4),
]


def test_the_render_cases_cover_every_shipped_template() -> None:
    assert {c[0] for c in CASES} == {p.name for p in TEMPLATES.glob("*.jinja")}


@pytest.mark.parametrize(("name", "prompt", "reader"), CASES, ids=[c[0] for c in CASES])
def test_a_plain_conversation_renders(name: str, prompt: str, reader: Any) -> None:
    for extra in ({}, {"tools": None}):
        text = render(name, CHAT, **extra)
        assert text.endswith(prompt), text[-200:]
        positions = [text.index(m["content"]) for m in CHAT]
        assert positions == sorted(positions), "messages out of order"
        assert reader(text) == []
        assert "get_weather" not in text


@pytest.mark.parametrize(("name", "prompt", "reader"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("arguments", [ARGS, json.dumps(ARGS)], ids=["mapping", "json-string"])
def test_a_tool_conversation_renders_calls_the_parser_reads_back(
    name: str, prompt: str, reader: Any, arguments: Any
) -> None:
    """vLLM hands the template mappings (renderers/chat_utils.py, _postprocess_messages parses the
    OpenAI JSON string); other callers may pass the string itself, which JSON templates keep."""
    text = render(name, tool_chat(arguments), tools=TOOLS)
    if name == "tool-chat-gemma4.jinja" and isinstance(arguments, str):
        # Gemma's key:value syntax cannot be made from a JSON string in Jinja: passed through.
        assert "call:get_weather{" + arguments + "}" in text
        return
    if name != "tool-chat-gemma4.jinja":
        assert text.endswith(prompt), text[-200:]
    else:
        # Gemma 4 continues in the model turn that made the call; no new turn is opened.
        assert text.endswith("<tool_response|>"), text[-200:]
    assert "get_weather" in text.split("Weather in Paris?")[0], "tool definitions missing before the question"
    assert "Weather for a city" in text
    # The system turn describes the call syntax; read only what follows the question, as the
    # parser reads only the model's output.
    assert reader(text.split("Weather in Paris?", 1)[1]) == [("get_weather", ARGS)]
    assert text.index("sunny, 21C") > text.rindex("get_weather"), "the tool result must follow the call"


@pytest.mark.parametrize("name", ["tool-chat-deepseekr1.jinja", "tool-chat-gemma4.jinja"])
def test_earlier_reasoning_is_not_sent_back(name: str) -> None:
    thought = (
        "<think>secret musing</think>" if "deepseek" in name else "<|channel>thought\nsecret musing<channel|>"
    )
    chat = [*CHAT[:2], {"role": "assistant", "content": thought + "Hi."}, CHAT[3]]
    text = render(name, chat)
    assert "secret musing" not in text and "Hi." in text


def test_an_unknown_role_is_refused() -> None:
    for name, *_ in CASES:
        with pytest.raises(jinja2.exceptions.TemplateError, match="unsupported role"):
            render(name, [{"role": "wizard", "content": "x"}])
