"""Synthetic tuning datasets in every supported format (parquet, jsonl, json, csv, arrow) and record shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

FORMATS = ("parquet", "jsonl", "json", "csv", "arrow")


def messages_row(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"what is item {i}"},
            {"role": "assistant", "content": f"item {i} is a gpu"},
        ]
    }


def prompt_completion_row(i: int) -> dict[str, Any]:
    return {"prompt": f"what is item {i}", "completion": f"item {i} is a gpu"}


def dolly_row(i: int) -> dict[str, Any]:
    return {
        "instruction": f"what is item {i}",
        "context": f"item {i} sits in a cluster" if i % 2 else "",
        "response": f"item {i} is a gpu",
        "category": "closed_qa",
    }


def text_row(i: int) -> dict[str, Any]:
    return {"text": f"kaito tunes item {i} on a gpu"}


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "messages": messages_row,
    "prompt_completion": prompt_completion_row,
    "instruction": dolly_row,
    "text": text_row,
}


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` in the format named by `path`'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = path.suffix.lstrip(".")
    if kind == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif kind == "json":
        path.write_text(json.dumps(rows))
    elif kind == "csv":
        # CSV has no nesting: messages go in as a JSON string, as Kaito's "JSON format" column.
        flat = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows]
        pcsv.write_csv(pa.Table.from_pylist(flat), path)
    elif kind == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif kind == "arrow":  # the IPC stream format `datasets` writes
        table = pa.Table.from_pylist(rows)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        raise ValueError(f"unknown format {kind}")
    return path


def write_dataset(directory: Path, shape: str, fmt: str, count: int, name: str = "train") -> Path:
    return write_rows(directory / f"{name}.{fmt}", [SHAPES[shape](i) for i in range(count)])
