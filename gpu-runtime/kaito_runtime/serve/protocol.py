"""Request parsing and validation for /chat (Kaito legacy) and the OpenAI routes.

Pure Python over the decoded JSON: every problem becomes an `APIError` with the HTTP
status and a message that names the offending field, so nothing reaches the model
unchecked and no input can produce a 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_STOP_SEQUENCES = 4
MAX_STOP_LENGTH = 256
MAX_MESSAGES = 1024
ROLES = ("system", "user", "assistant", "developer", "tool")


class APIError(Exception):
    """An error answered to the client. `type`/`param`/`code` follow OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def bad(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


# --------------------------------------------------------------------------- typed getters

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    for t, name in _TYPE_NAMES.items():
        if type(value) is t:
            return name
    return type(value).__name__


def _wrong_type(name: str, expected: str, value: Any) -> APIError:
    return bad(f"Invalid type for '{name}': expected {expected}, but got {_type_name(value)} instead.", name)


def get_number(
    body: Mapping[str, Any], name: str, default: float, lo: float, hi: float, *, lo_open: bool = False
) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _wrong_type(name, "a number", value)
    if value < lo or value > hi or (lo_open and value == lo):
        bracket = "(" if lo_open else "["
        raise bad(f"'{name}' must be in {bracket}{lo:g}, {hi:g}], got {value!r}.", name)
    return float(value)


def get_int(body: Mapping[str, Any], name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _wrong_type(name, "an integer", value)
    if not lo <= value <= hi:
        raise bad(f"'{name}' must be an integer in [{lo}, {hi}], got {value!r}.", name)
    return value


def get_bool(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong_type(name, "a boolean", value)
    return value


def get_stop(body: Mapping[str, Any], name: str = "stop") -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise _wrong_type(name, "a string or an array of strings", value)
    if len(items) > MAX_STOP_SEQUENCES:
        raise bad(f"'{name}' has {len(items)} sequences; at most {MAX_STOP_SEQUENCES} are allowed.", name)
    if any(len(s) > MAX_STOP_LENGTH for s in items):
        raise bad(f"each '{name}' sequence must be at most {MAX_STOP_LENGTH} characters.", name)
    return tuple(s for s in items if s)


# --------------------------------------------------------------------------- parsed requests


@dataclass
class GenerationSpec:
    """What to generate, before tokenisation. `max_new_tokens` None means "as much as fits"."""

    max_new_tokens: int | None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    do_sample: bool = True
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    min_length: int = 0
    max_length: int | None = None  # /chat only: prompt + new tokens
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = frozenset()


@dataclass
class ChatCompletionRequest:
    model: str | None
    messages: list[dict[str, str]]
    spec: GenerationSpec
    stream: bool
    include_usage: bool


@dataclass
class CompletionRequest:
    model: str | None
    prompt: str | list[int]
    spec: GenerationSpec
    stream: bool
    include_usage: bool
    echo: bool


@dataclass
class LegacyChatRequest:
    prompt: str | None
    messages: list[dict[str, str]] | None
    spec: GenerationSpec
    return_full_text: bool
    prefix: str
    truncate_left: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise bad(f"Request body must be a JSON object, got {_type_name(body)}.")
    return body


def _model(body: Mapping[str, Any]) -> str | None:
    value = body.get("model")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong_type("model", "a string", value)
    return value


def _reject_unsupported(body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise bad("'n' must be 1: this server returns one choice per request.", "n")
    best_of = body.get("best_of")
    if best_of is not None and best_of != 1:
        raise bad("'best_of' must be 1.", "best_of")
    for name in ("presence_penalty", "frequency_penalty"):
        value = body.get(name)
        if value not in (None, 0, 0.0) or isinstance(value, bool):
            raise bad(f"'{name}' is not supported (only 0); use 'repetition_penalty' instead.", name)
    if body.get("logprobs") not in (None, False) or body.get("top_logprobs") is not None:
        raise bad("'logprobs' is not supported by this server.", "logprobs")
    if body.get("tools") or body.get("functions"):
        raise bad("tool/function calling is not supported by this server.", "tools")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise bad('\'response_format\' other than {"type": "text"} is not supported.', "response_format")


def _sampling(body: Mapping[str, Any], max_tokens: int | None) -> GenerationSpec:
    temperature = get_number(body, "temperature", 1.0, 0.0, 2.0)
    top_p = get_number(body, "top_p", 1.0, 0.0, 1.0, lo_open=True)
    top_k = get_int(body, "top_k", 0, 0, 1_000_000) or 0
    rep = get_number(body, "repetition_penalty", 1.0, 0.0, 10.0, lo_open=True)
    seed = get_int(body, "seed", None, -(2**63), 2**64 - 1)
    # vLLM's extension: suppress end-of-sequence until this many tokens (benchmarks use it).
    min_tokens = get_int(body, "min_tokens", 0, 0, 2**31 - 1) or 0
    if max_tokens is not None and min_tokens > max_tokens:
        raise bad(f"'min_tokens' ({min_tokens}) must not exceed 'max_tokens' ({max_tokens}).", "min_tokens")
    return GenerationSpec(
        max_new_tokens=max_tokens,
        min_new_tokens=min_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        do_sample=temperature > 0.0,
        repetition_penalty=rep,
        seed=seed,
        stop=get_stop(body),
    )


def _stream_options(body: Mapping[str, Any], stream: bool) -> bool:
    opts = body.get("stream_options")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise _wrong_type("stream_options", "an object", opts)
    if not stream:
        raise bad("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    return get_bool(opts, "include_usage", False)


def parse_messages(value: Any, name: str = "messages") -> list[dict[str, str]]:
    if value is None:
        raise bad(f"Missing required parameter: '{name}'.", name)
    if not isinstance(value, list):
        raise _wrong_type(name, "an array", value)
    if not value:
        raise bad(f"'{name}' must contain at least one message.", name)
    if len(value) > MAX_MESSAGES:
        raise bad(f"'{name}' has {len(value)} messages; at most {MAX_MESSAGES} are allowed.", name)
    out = []
    for i, msg in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(msg, dict):
            raise _wrong_type(where, "an object", msg)
        role = msg.get("role")
        if role not in ROLES:
            raise bad(f"'{where}.role' must be one of {', '.join(ROLES)}, got {role!r}.", f"{where}.role")
        content = msg.get("content")
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if (
                    not isinstance(part, dict)
                    or part.get("type") != "text"
                    or not isinstance(part.get("text"), str)
                ):
                    raise bad(
                        f'\'{where}.content[{j}]\' must be a text part {{"type": "text", "text": ...}}; '
                        "images and audio are not supported.",
                        f"{where}.content",
                    )
                texts.append(part["text"])
            content = "".join(texts)
        elif content is None and role == "assistant":
            content = ""
        elif not isinstance(content, str):
            raise _wrong_type(f"{where}.content", "a string or an array of text parts", content)
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


def parse_chat_completion(body: Any) -> ChatCompletionRequest:
    body = _require_object(body)
    model = _model(body)
    messages = parse_messages(body.get("messages"))
    _reject_unsupported(body)
    max_tokens = get_int(body, "max_completion_tokens", None, 1, 2**31 - 1)
    if max_tokens is None:
        max_tokens = get_int(body, "max_tokens", None, 1, 2**31 - 1)
    stream = get_bool(body, "stream", False)
    return ChatCompletionRequest(
        model, messages, _sampling(body, max_tokens), stream, _stream_options(body, stream)
    )


def parse_completion(body: Any) -> CompletionRequest:
    body = _require_object(body)
    model = _model(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise bad("Missing required parameter: 'prompt'.", "prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt):
            raise bad(
                "'prompt' must be a string, an array with one string, or a non-empty array of token ids "
                "(batched prompts are not supported: send one request per prompt).",
                "prompt",
            )
    elif not isinstance(prompt, str):
        raise _wrong_type("prompt", "a string or an array of token ids", prompt)
    if body.get("suffix"):
        raise bad("'suffix' is not supported.", "suffix")
    _reject_unsupported(body)
    # OpenAI's legacy completions default max_tokens to 16.
    max_tokens = get_int(body, "max_tokens", 16, 1, 2**31 - 1)
    stream = get_bool(body, "stream", False)
    return CompletionRequest(
        model,
        prompt,
        _sampling(body, max_tokens),
        stream,
        _stream_options(body, stream),
        get_bool(body, "echo", False),
    )


# --------------------------------------------------------------------------- Kaito legacy /chat

# Kaito's documented defaults for generate_kwargs (the legacy transformers server).
KAITO_GENERATE_DEFAULTS: dict[str, Any] = {
    "max_length": 200,
    "min_length": 0,
    "do_sample": True,
    "early_stopping": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 10,
    "top_p": 1.0,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
}
GENERATE_KWARGS = (
    "max_length",
    "max_new_tokens",
    "min_length",
    "min_new_tokens",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_return_sequences",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "pad_token_id",
    "eos_token_id",
    "seed",
    "stop",
    "stop_strings",
)


def _token_ids(value: Any, name: str) -> frozenset[int]:
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items
    ):
        raise _wrong_type(name, "a token id or an array of token ids", value)
    return frozenset(items)


def parse_generate_kwargs(value: Any) -> GenerationSpec:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _wrong_type("generate_kwargs", "an object", value)
    unknown = sorted(set(value) - set(GENERATE_KWARGS))
    if unknown:
        raise bad(
            f"generate_kwargs: unsupported key(s) {', '.join(repr(k) for k in unknown)}; "
            f"supported: {', '.join(GENERATE_KWARGS)}.",
            "generate_kwargs",
        )
    kw = {**KAITO_GENERATE_DEFAULTS, **{k: v for k, v in value.items() if v is not None}}
    if get_int(kw, "num_beams", 1, 1, 64) != 1:
        raise bad("generate_kwargs.num_beams must be 1: beam search is not supported.", "num_beams")
    if get_int(kw, "num_return_sequences", 1, 1, 64) != 1:
        raise bad("generate_kwargs.num_return_sequences must be 1.", "num_return_sequences")
    if get_number(kw, "typical_p", 1.0, 0.0, 1.0) != 1.0:
        raise bad("generate_kwargs.typical_p is not supported (only 1.0).", "typical_p")
    get_bool(kw, "early_stopping", False)  # only meaningful for beam search: validated, otherwise ignored
    get_int(kw, "pad_token_id", None, 0, 2**31 - 1)  # padding is internal; validated, otherwise ignored
    do_sample = get_bool(kw, "do_sample", True)
    temperature = get_number(kw, "temperature", 1.0, 0.0, 100.0)
    stop = get_stop(kw, "stop") + get_stop(kw, "stop_strings")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed.", "stop")
    return GenerationSpec(
        max_new_tokens=get_int(kw, "max_new_tokens", None, 1, 2**31 - 1),
        max_length=get_int(kw, "max_length", 200, 1, 2**31 - 1),
        min_length=get_int(kw, "min_length", 0, 0, 2**31 - 1) or 0,
        min_new_tokens=get_int(kw, "min_new_tokens", 0, 0, 2**31 - 1) or 0,
        do_sample=do_sample and temperature > 0.0,
        temperature=temperature,
        top_k=get_int(kw, "top_k", 10, 0, 1_000_000) or 0,
        top_p=get_number(kw, "top_p", 1.0, 0.0, 1.0, lo_open=True),
        repetition_penalty=get_number(kw, "repetition_penalty", 1.0, 0.0, 10.0, lo_open=True),
        seed=get_int(kw, "seed", None, -(2**63), 2**64 - 1),
        stop=stop,
        stop_token_ids=_token_ids(kw.get("eos_token_id"), "generate_kwargs.eos_token_id"),
    )


def parse_legacy_chat(body: Any) -> LegacyChatRequest:
    body = _require_object(body)
    prompt = body.get("prompt")
    messages = None
    if prompt is None:
        if body.get("messages") is None:
            # Kaito's text-generation pipeline message (the seeds' default pipeline).
            raise bad("Text generation parameter prompt required", "prompt")
        messages = parse_messages(body.get("messages"))
    elif not isinstance(prompt, str):
        raise _wrong_type("prompt", "a string", prompt)
    prefix = body.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise _wrong_type("prefix", "a string", prefix)
    handle = body.get("handle_long_generation")
    if handle not in (None, "hole"):
        raise bad("'handle_long_generation' must be null or \"hole\".", "handle_long_generation")
    get_bool(body, "clean_up_tokenization_spaces", False)
    return LegacyChatRequest(
        prompt=prompt,
        messages=messages,
        spec=parse_generate_kwargs(body.get("generate_kwargs")),
        return_full_text=get_bool(body, "return_full_text", True),
        prefix=prefix or "",
        truncate_left=handle == "hole",
    )
