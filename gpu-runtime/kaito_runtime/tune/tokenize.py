"""Turn dataset rows into token ids and labels, with the loss only where it belongs.

- messages: rendered with the tokenizer's chat template; labels only on assistant turns (their content
  and the end-of-turn marker the template puts after them), found by rendering each conversation prefix
  and mapping character spans to tokens through the fast tokenizer's offsets. A template that is not
  prefix-stable (it rewrites earlier turns) falls back to training on the last assistant turn only.
- prompt + completion: loss on the completion and EOS (TRL's completion_only_loss; can be turned off).
- instruction + response (+ context): as a user/assistant conversation when the tokenizer has a chat
  template, else an Alpaca-style prompt; loss on the response.
- text: loss on every token, EOS appended.
Rows longer than the sequence limit are truncated; rows left with no trainable token are dropped. Both
are counted and reported (with the first few row locations) rather than silently applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kaito_runtime.tune.dataset import Row, Shape, ShapeSpec
from kaito_runtime.tune.errors import DataError

IGNORE = -100
ROLES = frozenset({"system", "user", "assistant", "tool"})
ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n{context}### Response:\n"


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class TokenizeReport:
    rows: int = 0
    truncated: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    last_turn_only: list[str] = field(default_factory=list)
    tokens: int = 0
    trainable_tokens: int = 0

    def warnings(self) -> list[str]:
        out = []
        for label, rows, what in (
            ("truncated", self.truncated, "longer than the sequence limit; cut to it"),
            ("dropped", self.dropped, "no trainable token left within the sequence limit"),
            (
                "last_turn_only",
                self.last_turn_only,
                "chat template is not prefix-stable; trained on last turn",
            ),
        ):
            if rows:
                shown = ", ".join(rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
                out.append(f"{len(rows)} row(s) {what} ({label}): {shown}")
        return out


@dataclass(frozen=True)
class TokenizeOptions:
    max_length: int
    assistant_only_loss: bool = True
    completion_only_loss: bool = True


def tokenize_rows(
    rows: Sequence[Row], spec: ShapeSpec, tokenizer: Any, options: TokenizeOptions
) -> tuple[list[Example], TokenizeReport]:
    report = TokenizeReport(rows=len(rows))
    encode = _encoder(spec, tokenizer, options, report)
    examples: list[Example] = []
    for row in rows:
        example = encode(row)
        if len(example) > options.max_length:
            report.truncated.append(row.source)
            example = Example(example.input_ids[: options.max_length], example.labels[: options.max_length])
        if all(label == IGNORE for label in example.labels):
            report.dropped.append(row.source)
            continue
        report.tokens += len(example)
        report.trainable_tokens += sum(1 for label in example.labels if label != IGNORE)
        examples.append(example)
    return examples, report


def _encoder(
    spec: ShapeSpec, tokenizer: Any, options: TokenizeOptions, report: TokenizeReport
) -> Callable[[Row], Example]:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if spec.shape == Shape.MESSAGES and not has_template:
        raise DataError(
            "the dataset holds chat messages but the tokenizer has no chat template",
            "set ModelConfig.chat_template (a file path or the template itself)",
        )

    def encode(row: Row) -> Example:
        if spec.shape == Shape.MESSAGES:
            messages = _messages(row, spec.columns["messages"])
            return _encode_messages(tokenizer, messages, options.assistant_only_loss, row, report)
        if spec.shape == Shape.PROMPT_COMPLETION:
            prompt = row.values.get(spec.columns["prompt"])
            completion = row.values.get(spec.columns["completion"])
            if isinstance(prompt, list) and isinstance(completion, list):  # conversational prompt-completion
                messages = [*_check_messages(prompt, row), *_check_messages(completion, row)]
                return _encode_messages(tokenizer, messages, options.assistant_only_loss, row, report)
            return _encode_pair(
                tokenizer,
                _text(prompt, row, spec.columns["prompt"]),
                _text(completion, row, spec.columns["completion"]),
                options.completion_only_loss,
            )
        if spec.shape == Shape.INSTRUCTION:
            instruction = _text(row.values.get(spec.columns["instruction"]), row, spec.columns["instruction"])
            response = _text(row.values.get(spec.columns["response"]), row, spec.columns["response"])
            context_col = spec.columns.get("context")
            context = str(row.values.get(context_col) or "").strip() if context_col else ""
            if has_template:
                user = f"{instruction}\n\n{context}" if context else instruction
                messages = [{"role": "user", "content": user}, {"role": "assistant", "content": response}]
                return _encode_messages(tokenizer, messages, True, row, report)
            context_block = f"### Context:\n{context}\n\n" if context else ""
            prompt = ALPACA_PROMPT.format(instruction=instruction, context=context_block)
            return _encode_pair(tokenizer, prompt, response, True)
        text = _text(row.values.get(spec.columns["text"]), row, spec.columns["text"])
        ids = _ids(tokenizer, text, special=True)
        ids = _with_eos(tokenizer, ids)
        return Example(ids, list(ids))

    return encode


def _text(value: Any, row: Row, column: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{row.source}: column {column!r} is empty")
    if not isinstance(value, str):
        raise DataError(f"{row.source}: column {column!r} holds {type(value).__name__}, expected text")
    return value


def _messages(row: Row, column: str) -> list[dict[str, str]]:
    value = row.values.get(column)
    if isinstance(value, str):  # Kaito's docs call the column "JSON format": accept a JSON string too
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(
                f"{row.source}: column {column!r} is a string that is not JSON messages"
            ) from None
    if not isinstance(value, list) or not value:
        raise DataError(f"{row.source}: column {column!r} must be a non-empty list of messages")
    return _check_messages(value, row)


def _check_messages(value: list[Any], row: Row) -> list[dict[str, str]]:
    messages = []
    for index, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(f"{row.source}: message {index} must be an object with 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise DataError(
                f"{row.source}: message {index} has role {role!r}; expected one of {sorted(ROLES)}"
            )
        if not isinstance(content, str):
            raise DataError(f"{row.source}: message {index} content must be text")
        messages.append({"role": str(role), "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{row.source}: the conversation has no assistant message to learn from")
    return messages


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _with_eos(tokenizer: Any, ids: list[int]) -> list[int]:
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        return [*ids, int(eos)]
    return ids


def _encode_pair(tokenizer: Any, prompt: str, completion: str, completion_only: bool) -> Example:
    prompt_ids = _ids(tokenizer, prompt, special=True)
    completion_ids = _with_eos(tokenizer, _ids(tokenizer, completion, special=False))
    ids = prompt_ids + completion_ids
    labels = ([IGNORE] * len(prompt_ids) if completion_only else list(prompt_ids)) + completion_ids
    return Example(ids, labels)


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    return str(
        tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    )


def _encode_messages(
    tokenizer: Any, messages: list[dict[str, str]], assistant_only: bool, row: Row, report: TokenizeReport
) -> Example:
    try:
        full = _render(tokenizer, messages, generation_prompt=False)
    except Exception as exc:  # jinja errors: templates may reject a role order, e.g. no system turn
        raise DataError(f"{row.source}: the chat template cannot render this conversation: {exc}") from None
    spans: list[tuple[int, int]] = []
    stable = True
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:index], generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], generation_prompt=False)
        if not (through.startswith(before) and full.startswith(through)):
            stable = False
            break
        spans.append((len(before), len(through)))
    if stable:
        encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        if not assistant_only:
            return Example(ids, list(ids))
        labels = [
            token if any(start < end_span and end > start_span for start_span, end_span in spans) else IGNORE
            for token, (start, end) in zip(ids, encoded["offset_mapping"], strict=True)
        ]
        return Example(ids, labels)
    report.last_turn_only.append(row.source)
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    prompt_ids = _ids(tokenizer, _render(tokenizer, messages[:last], generation_prompt=True), special=False)
    all_ids = _ids(
        tokenizer, _render(tokenizer, messages[: last + 1], generation_prompt=False), special=False
    )
    if all_ids[: len(prompt_ids)] != prompt_ids:
        raise DataError(f"{row.source}: cannot locate the assistant reply in the rendered chat template")
    labels = [IGNORE] * len(prompt_ids) + all_ids[len(prompt_ids) :]
    return Example(all_ids, labels if assistant_only else list(all_ids))
