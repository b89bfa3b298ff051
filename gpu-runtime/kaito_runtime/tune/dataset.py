"""Find the dataset files, read their rows, tell the record shape, shuffle and split.

Formats: parquet, jsonl, json (an array, or JSON lines as `datasets` accepts), csv, arrow (IPC stream, as
`datasets` writes it, or IPC file), one file or many; read with pyarrow, no torch. Record shapes:

    messages              [{"role": "system"|"user"|"assistant", "content": ...}, ...]   (dolly-15k-oai-style)
    prompt + completion   two strings
    instruction + response (+ context / input)  dolly-15k and alpaca (`output` for `response`)
    text                  one string

The shape is detected from the columns, or taken from DatasetConfig: `messages_column` names a messages
column; `context_column` + `response_column` name a prompt/completion pair; `response_column` alone (or
TRL's `dataset_text_field`) names a text column.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from kaito_runtime.tune.errors import DataError
from kaito_runtime.tune.schema import DatasetSection

EXTENSIONS = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


class Shape(StrEnum):
    MESSAGES = "messages"
    PROMPT_COMPLETION = "prompt_completion"
    INSTRUCTION = "instruction"
    TEXT = "text"


@dataclass(frozen=True)
class ShapeSpec:
    shape: Shape
    columns: dict[
        str, str
    ]  # role -> column: messages | prompt, completion | instruction, response, context | text
    reason: str  # how it was chosen, for the log


@dataclass(frozen=True)
class Row:
    source: str  # "file.parquet#12": where an error message should send the user
    values: dict[str, Any]


@dataclass(frozen=True)
class Split:
    train: list[Row]
    eval: list[Row]


def find_files(data_dir: Path, dataset: DatasetSection) -> list[Path]:
    """Dataset files under `data_dir` (or `DatasetConfig.dataset_path` inside it), sorted by name."""
    root = data_dir.absolute()
    target = root
    if dataset.dataset_path:
        candidate = (root / dataset.dataset_path.lstrip("/")).resolve()
        if not (candidate == root.resolve() or root.resolve() in candidate.parents):
            raise DataError(f"DatasetConfig.dataset_path {dataset.dataset_path!r} points outside {root}")
        target = candidate
    wanted = _extension_filter(dataset.dataset_extension)
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted(
            p
            for p in target.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(target).parts)
        )
    else:
        raise DataError(
            f"dataset path {target} does not exist", "check --data and DatasetConfig.dataset_path"
        )
    chosen = [p for p in files if p.suffix.lower() in wanted]
    if not chosen:
        found = ", ".join(p.name for p in files[:5]) or "nothing"
        raise DataError(
            f"no dataset files ({', '.join(sorted(wanted))}) in {target}; found {found}",
            "the data init container writes the tuning input URLs' files to --data",
        )
    return chosen


def _extension_filter(extension: str | None) -> set[str]:
    if extension is None:
        return set(EXTENSIONS)
    ext = "." + extension.lower().lstrip(".")
    if ext not in EXTENSIONS:
        raise DataError(
            f"DatasetConfig.dataset_extension {extension!r} is not one of {', '.join(EXTENSIONS)}"
        )
    return {ext}


def read_rows(files: Sequence[Path]) -> list[Row]:
    rows: list[Row] = []
    for path in files:
        try:
            records = _read_file(path)
        except DataError:
            raise
        except Exception as exc:  # pyarrow raises many types; all mean "this file cannot be parsed"
            raise DataError(f"cannot read {path.name} as {EXTENSIONS[path.suffix.lower()]}: {exc}") from None
        rows.extend(Row(f"{path.name}#{i}", record) for i, record in enumerate(records))
    if not rows:
        raise DataError(
            f"the dataset is empty: {', '.join(p.name for p in files)} hold no rows",
            "check the tuning input: the files exist but contain no records",
        )
    return rows


def _read_file(path: Path) -> list[dict[str, Any]]:
    kind = EXTENSIONS[path.suffix.lower()]
    if path.stat().st_size == 0:
        return []
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(path).to_pylist())
    if kind == "csv":
        import pyarrow.csv as pcsv

        options = pcsv.ConvertOptions(strings_can_be_null=False)
        return list(pcsv.read_csv(path, convert_options=options).to_pylist())
    if kind == "arrow":
        return _read_arrow(path)
    return _read_json(path, lines=kind == "jsonl")


def _read_arrow(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            return list(pa.ipc.open_stream(source).read_all().to_pylist())
    except pa.ArrowInvalid:
        with pa.memory_map(str(path)) as source:
            return list(pa.ipc.open_file(source).read_all().to_pylist())


def _read_json(path: Path, *, lines: bool) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if not lines and stripped.startswith("["):
        data = json.loads(text)
        records = data
    else:
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path.name}:{number}: not a JSON line ({exc.msg})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path.name}: expected JSON objects (one per line, or an array of objects)")
    return records


def detect_shape(rows: Iterable[Row], dataset: DatasetConfigView) -> ShapeSpec:
    """Pick the record shape from DatasetConfig, else from the columns of the rows."""
    columns: set[str] = set()
    for row in rows:
        columns.update(row.values)
    listing = ", ".join(sorted(columns)) or "(none)"

    def need(*names: tuple[str, str]) -> None:
        for field, column in names:
            if column not in columns:
                raise DataError(
                    f"DatasetConfig.{field} {column!r} is not a column of the dataset; columns: {listing}"
                )

    if dataset.messages_column:
        need(("messages_column", dataset.messages_column))
        return ShapeSpec(
            Shape.MESSAGES, {"messages": dataset.messages_column}, "DatasetConfig.messages_column"
        )
    if dataset.context_column:
        need(("context_column", dataset.context_column), ("response_column", dataset.response_column))
        return ShapeSpec(
            Shape.PROMPT_COMPLETION,
            {"prompt": dataset.context_column, "completion": dataset.response_column},
            "DatasetConfig.context_column + response_column",
        )
    if dataset.text_field:
        need(("dataset_text_field", dataset.text_field))
        return ShapeSpec(Shape.TEXT, {"text": dataset.text_field}, "TrainingArguments.dataset_text_field")
    if dataset.response_column_set:
        need(("response_column", dataset.response_column))
        return ShapeSpec(Shape.TEXT, {"text": dataset.response_column}, "DatasetConfig.response_column")
    if "messages" in columns:
        return ShapeSpec(Shape.MESSAGES, {"messages": "messages"}, "column 'messages'")
    if {"prompt", "completion"} <= columns:
        return ShapeSpec(Shape.PROMPT_COMPLETION, {"prompt": "prompt", "completion": "completion"}, "columns")
    for response in ("response", "output"):
        if {"instruction", response} <= columns:
            spec = {"instruction": "instruction", "response": response}
            for context in ("context", "input"):
                if context in columns:
                    spec["context"] = context
                    break
            return ShapeSpec(Shape.INSTRUCTION, spec, "columns")
    if dataset.response_column in columns:
        return ShapeSpec(Shape.TEXT, {"text": dataset.response_column}, f"column {dataset.response_column!r}")
    raise DataError(
        f"cannot tell the record shape from the columns: {listing}",
        "expected messages | prompt+completion | instruction+response(+context) | text, or name the columns "
        "with DatasetConfig.messages_column, context_column + response_column, or response_column",
    )


@dataclass(frozen=True)
class DatasetConfigView:
    """The column settings detect_shape needs, with `response_column` marked as explicit or defaulted."""

    messages_column: str | None
    context_column: str | None
    response_column: str
    response_column_set: bool
    text_field: str | None


def shuffle_and_split(rows: list[Row], dataset: DatasetSection) -> Split:
    """Kaito's order: optional seeded shuffle, then `train_test_split` (the training fraction)."""
    ordered = list(rows)
    if dataset.shuffle_dataset:
        random.Random(dataset.shuffle_seed).shuffle(ordered)
    fraction = dataset.train_test_split
    if fraction >= 1:
        return Split(train=ordered, eval=[])
    n_eval = round(len(ordered) * (1 - fraction))
    n_eval = min(max(n_eval, 1), len(ordered) - 1)
    if n_eval <= 0:
        raise DataError(
            f"train_test_split {fraction} leaves nothing to train on with {len(ordered)} row(s)",
            "use more rows or set DatasetConfig.train_test_split: 1",
        )
    return Split(train=ordered[:-n_eval], eval=ordered[-n_eval:])
