"""Dataset stage and tokenization: every format x shape, loss masks, columns, split, errors.

Runs in-process with the tiny model's real tokenizer (byte-level BPE + a phi-3 style chat template):
labels are checked by decoding exactly the tokens that carry loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kaito_runtime.tune.dataset import (
    DatasetConfigView,
    Row,
    Shape,
    detect_shape,
    find_files,
    read_rows,
    shuffle_and_split,
)
from kaito_runtime.tune.errors import DataError
from kaito_runtime.tune.schema import DatasetSection
from kaito_runtime.tune.tokenize import IGNORE, TokenizeOptions, tokenize_rows
from tune_data import FORMATS, SHAPES, write_dataset, write_rows

DEFAULT_VIEW = DatasetConfigView(None, None, "text", False, None)
OPTIONS = TokenizeOptions(max_length=512)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _trainable(tokenizer: Any, ids: list[int], labels: list[int]) -> str:
    kept = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE]
    for token, label in zip(ids, labels, strict=True):
        assert label in (IGNORE, token)
    return str(tokenizer.decode(kept))


EXPECTED_SHAPE = {
    "messages": Shape.MESSAGES,
    "prompt_completion": Shape.PROMPT_COMPLETION,
    "instruction": Shape.INSTRUCTION,
    "text": Shape.TEXT,
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_format_and_shape_reads_and_masks_the_loss(
    shape: str, fmt: str, tmp_path: Path, tokenizer: Any
) -> None:
    write_dataset(tmp_path, shape, fmt, count=6)
    rows = read_rows(find_files(tmp_path, DatasetSection()))
    assert len(rows) == 6
    spec = detect_shape(rows, DEFAULT_VIEW)
    assert spec.shape == EXPECTED_SHAPE[shape]
    examples, report = tokenize_rows(rows, spec, tokenizer, OPTIONS)
    assert len(examples) == 6 and not report.truncated and not report.dropped
    for row, example in zip(rows, examples, strict=True):
        i = int(row.source.split("#")[1])
        trainable = _trainable(tokenizer, example.input_ids, example.labels)
        if shape == "text":
            assert trainable == f"kaito tunes item {i} on a gpu<|end|>"  # all of it, plus EOS
        elif shape == "prompt_completion":
            assert trainable == f"item {i} is a gpu<|end|>"  # the completion and EOS only
        else:  # messages, and dolly rendered through the chat template: the assistant turn only
            assert trainable == f"item {i} is a gpu<|end|>\n"
        full = tokenizer.decode(example.input_ids)
        if shape != "text":
            assert f"what is item {i}" in full  # the prompt is there, just without loss
        if shape == "instruction" and i % 2:
            assert f"item {i} sits in a cluster" in full


def test_only_assistant_turns_of_a_conversation_carry_loss(tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
    ]
    rows = [Row("x#0", {"messages": messages}), Row("x#1", {"messages": json.dumps(messages)})]
    spec = detect_shape(rows, DEFAULT_VIEW)
    examples, _ = tokenize_rows(rows, spec, tokenizer, OPTIONS)
    for example in examples:
        assert (
            _trainable(tokenizer, example.input_ids, example.labels)
            == "first answer<|end|>\nsecond answer<|end|>\n"
        )
    everything, _ = tokenize_rows(
        rows, spec, tokenizer, TokenizeOptions(max_length=512, assistant_only_loss=False)
    )
    assert all(label != IGNORE for label in everything[0].labels)


def test_many_files_are_read_together_and_hidden_files_skipped(tmp_path: Path) -> None:
    write_dataset(tmp_path, "messages", "parquet", 4, name="part-0")
    write_dataset(tmp_path / "more", "messages", "jsonl", 3, name="part-1")
    write_dataset(tmp_path, "messages", "parquet", 9, name=".train.parquet.x")  # a partial download
    (tmp_path / "README.md").write_text("not data")
    files = find_files(tmp_path, DatasetSection())
    assert [str(f.relative_to(tmp_path)) for f in files] == [
        "more/part-1.jsonl",
        "part-0.parquet",
    ]  # path order
    assert len(read_rows(files)) == 7
    only_jsonl = find_files(tmp_path, DatasetSection(dataset_extension="jsonl"))
    assert [f.name for f in only_jsonl] == ["part-1.jsonl"]
    sub = find_files(tmp_path, DatasetSection(dataset_path="more"))
    assert [f.name for f in sub] == ["part-1.jsonl"]
    with pytest.raises(DataError, match="outside"):
        find_files(tmp_path, DatasetSection(dataset_path="../../etc"))


def test_empty_and_missing_data_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no dataset files"):
        find_files(tmp_path, DatasetSection())
    write_rows(tmp_path / "train.jsonl", [])
    with pytest.raises(DataError, match="the dataset is empty"):
        read_rows(find_files(tmp_path, DatasetSection()))
    (tmp_path / "train.jsonl").write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(DataError, match=r"train\.jsonl:2: not a JSON line"):
        read_rows(find_files(tmp_path, DatasetSection()))


def test_unknown_columns_are_reported_with_what_exists() -> None:
    rows = [Row("t#0", {"question": "q", "answer": "a"})]
    with pytest.raises(DataError, match="cannot tell the record shape from the columns: answer, question"):
        detect_shape(rows, DEFAULT_VIEW)
    with pytest.raises(DataError, match=r"DatasetConfig\.messages_column 'conversation' is not a column"):
        detect_shape(rows, DatasetConfigView("conversation", None, "text", False, None))


def test_dataset_config_columns_are_honoured(tokenizer: Any) -> None:
    rows = [Row("t#0", {"question": "what is kaito", "answer": "an operator", "notes": "n"})]
    pair = detect_shape(rows, DatasetConfigView(None, "question", "answer", True, None))
    assert pair.shape == Shape.PROMPT_COMPLETION and pair.columns == {
        "prompt": "question",
        "completion": "answer",
    }
    (example,), _ = tokenize_rows(rows, pair, tokenizer, OPTIONS)
    assert _trainable(tokenizer, example.input_ids, example.labels) == "an operator<|end|>"
    text = detect_shape(rows, DatasetConfigView(None, None, "notes", True, None))
    assert text.shape == Shape.TEXT and text.columns == {"text": "notes"}
    chat = [Row("c#0", {"conv": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})]
    assert detect_shape(chat, DatasetConfigView("conv", None, "text", False, None)).columns == {
        "messages": "conv"
    }


def test_shuffle_is_seeded_and_the_split_keeps_an_eval_set() -> None:
    rows = [Row(f"r#{i}", {"text": str(i)}) for i in range(50)]
    first = shuffle_and_split(rows, DatasetSection(shuffle_seed=7, train_test_split=0.8))
    second = shuffle_and_split(rows, DatasetSection(shuffle_seed=7, train_test_split=0.8))
    other = shuffle_and_split(rows, DatasetSection(shuffle_seed=8, train_test_split=0.8))
    assert (len(first.train), len(first.eval)) == (40, 10)
    assert first == second and first.train != other.train
    assert {r.source for r in first.train} | {r.source for r in first.eval} == {r.source for r in rows}
    unshuffled = shuffle_and_split(rows, DatasetSection(shuffle_dataset=False, train_test_split=1))
    assert unshuffled.train == rows and unshuffled.eval == []
    assert len(shuffle_and_split(rows[:3], DatasetSection(train_test_split=0.99)).eval) == 1
    with pytest.raises(DataError, match="leaves nothing to train on"):
        shuffle_and_split(rows[:1], DatasetSection(train_test_split=0.5))


def test_too_long_rows_are_truncated_or_dropped_and_reported(tokenizer: Any) -> None:
    long_answer = " ".join(["gpu"] * 200)
    rows = [
        Row("d#0", {"prompt": "short", "completion": long_answer}),
        Row("d#1", {"prompt": " ".join(["node"] * 200), "completion": "ok"}),
        Row("d#2", {"prompt": "short", "completion": "fine"}),
    ]
    spec = detect_shape(rows, DEFAULT_VIEW)
    examples, report = tokenize_rows(rows, spec, tokenizer, TokenizeOptions(max_length=32))
    assert report.truncated == ["d#0", "d#1"]
    assert report.dropped == ["d#1"]  # its prompt alone fills the limit: nothing left to learn
    assert len(examples) == 2 and len(examples[0]) == 32
    warnings = report.warnings()
    assert any("2 row(s) longer than the sequence limit" in w and "d#0, d#1" in w for w in warnings)


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([{"role": "user", "content": "hi"}], "no assistant message"),
        ([{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}], "has role 'robot'"),
        ([{"role": "user"}], "'role' and 'content'"),
        ("not json", "not JSON messages"),
        ([], "non-empty list"),
    ],
)
def test_malformed_conversations_name_the_row(messages: Any, fragment: str, tokenizer: Any) -> None:
    rows = [Row("chats.jsonl#3", {"messages": messages})]
    with pytest.raises(DataError, match=fragment) as caught:
        tokenize_rows(rows, detect_shape(rows, DEFAULT_VIEW), tokenizer, OPTIONS)
    assert "chats.jsonl#3" in caught.value.message


def test_messages_need_a_chat_template(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain.chat_template = None
    rows = [Row("r#0", SHAPES["messages"](0))]
    with pytest.raises(DataError, match="no chat template"):
        tokenize_rows(rows, detect_shape(rows, DEFAULT_VIEW), plain, OPTIONS)
    dolly = [Row("r#0", SHAPES["instruction"](1))]
    (example,), _ = tokenize_rows(dolly, detect_shape(dolly, DEFAULT_VIEW), plain, OPTIONS)
    assert "### Instruction:" in plain.decode(example.input_ids)  # Alpaca-style prompt without a template
    assert _trainable(plain, example.input_ids, example.labels) == "item 1 is a gpu<|end|>"
