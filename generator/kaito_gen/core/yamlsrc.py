"""YAML input with source positions.

ruamel.yaml's C parser composes nodes that carry marks; we build plain Python
data from them ourselves and record, for every mapping key and sequence item,
the 1-based ``(line, col)`` where it starts. Later stages look positions up by
field path, so even a late check (say, sizing in ``resolve``) can point at the
exact line the user wrote.

Scalars follow the YAML 1.2 core schema (``yes``/``no`` stay strings), which is
also what Kubernetes' own decoder settles on for these fields.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kaito_gen.core.errors import Diagnostic, FieldPath, SourcePos

_TAG = "tag:yaml.org,2002:"

Positions = dict[FieldPath, tuple[int, int]]


@dataclass(frozen=True)
class SourceDoc:
    """One YAML document of one input file."""

    file: str
    index: int  # position of the document within its file, from 0
    data: Any
    positions: Mapping[FieldPath, tuple[int, int]]
    line: int  # 1-based line where the document starts

    def pos(self, path: FieldPath) -> SourcePos:
        """Position of ``path``, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            hit = self.positions.get(path[:cut])
            if hit is not None:
                return SourcePos(self.file, hit[0], hit[1])
        return SourcePos(self.file, self.line, 1)


class _Builder:
    """Turns composed nodes into plain data, recording positions and problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: Positions = {}
        self.problems: list[Diagnostic] = []

    def build(self, node: Node, path: FieldPath) -> Any:
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                sub = (*path, i)
                self.positions[sub] = (child.start_mark.line + 1, child.start_mark.column + 1)
                items.append(self.build(child, sub))
            return items
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        raise TypeError(f"unexpected YAML node {type(node).__name__}")  # pragma: no cover

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.tag == _TAG + "merge":
                self.problems.append(
                    Diagnostic(
                        SourcePos(self.file, *where),
                        path,
                        "YAML merge keys (<<) are not supported",
                        hint="write the keys out in full; Kubernetes tooling treats merge keys inconsistently",
                        code="yaml-merge-key",
                    )
                )
                continue
            if not isinstance(key_node, ScalarNode):
                self.problems.append(
                    Diagnostic(SourcePos(self.file, *where), path, "mapping keys must be plain strings")
                )
                continue
            key = str(key_node.value)
            sub = (*path, key)
            if key in out:
                first = self.positions.get(sub, where)
                self.problems.append(
                    Diagnostic(
                        SourcePos(self.file, *where),
                        sub,
                        f"duplicate key {key!r} (first defined at line {first[0]})",
                        hint="Kubernetes rejects duplicate keys in strict mode; keep one",
                        code="yaml-duplicate-key",
                    )
                )
                continue
            self.positions[sub] = where
            out[key] = self.build(value_node, sub)
        return out

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        tag = node.tag or ""
        value: str = node.value
        if not tag.startswith(_TAG):
            return value
        kind = tag[len(_TAG) :]
        if kind == "str":
            return value
        if kind == "null":
            return None
        if kind == "bool":
            return value.lower() == "true"
        if kind == "int":
            return _parse_int(value)
        if kind == "float":
            return _parse_float(value)
        return value  # timestamps, binary: keep the text as written


def _parse_int(text: str) -> int:
    cleaned = text.replace("_", "")
    sign = -1 if cleaned.startswith("-") else 1
    digits = cleaned.lstrip("+-")
    if digits.startswith(("0x", "0X")):
        return sign * int(digits[2:], 16)
    if digits.startswith(("0o", "0O")):
        return sign * int(digits[2:], 8)
    return sign * int(digits, 10)


def _parse_float(text: str) -> float:
    lowered = text.lower().replace("_", "")
    if lowered in (".inf", "+.inf"):
        return math.inf
    if lowered == "-.inf":
        return -math.inf
    if lowered == ".nan":
        return math.nan
    return float(lowered)


def _parser() -> YAML:
    # typ="safe" with pure=False picks ruamel's libyaml-based CParser when the
    # ruamel.yaml.clib extension is installed (about 6x faster than the pure one).
    return YAML(typ="safe", pure=False)


def parse_documents(file: str, text: str) -> tuple[list[SourceDoc], list[Diagnostic]]:
    """Parse every document of one file. Syntax errors become diagnostics."""
    docs: list[SourceDoc] = []
    problems: list[Diagnostic] = []
    try:
        nodes: Iterator[Node] = _parser().compose_all(text)
        for index, node in enumerate(nodes):
            if node is None:
                continue
            builder = _Builder(file)
            data = builder.build(node, ())
            problems.extend(builder.problems)
            if data is None:
                continue
            docs.append(SourceDoc(file, index, data, builder.positions, node.start_mark.line + 1))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        col = mark.column + 1 if mark is not None else 0
        problems.append(
            Diagnostic(
                SourcePos(file, line, col),
                (),
                f"YAML syntax error: {exc.problem or exc.context}",
                hint="check indentation and quoting around this position",
                code="yaml-syntax",
            )
        )
    except YAMLError as exc:
        problems.append(Diagnostic(SourcePos(file), (), f"YAML error: {exc}", code="yaml-syntax"))
    return docs, problems
