"""YAML input with source positions.

ruamel.yaml's C parser (libyaml) emits events that carry marks; we build plain
Python data from that event stream ourselves and record, for every mapping key
and sequence item, the 1-based ``(line, col)`` where it starts. Later stages look
positions up by field path, so even a late check (say, sizing in ``resolve``) can
point at the exact line the user wrote.

The builder is iterative, not recursive, and enforces :mod:`kaito_gen.core.limits`
as it goes: nesting depth, nodes per document counting alias expansion (an alias
bomb stops at the alias that crosses the limit), documents per file, string length
and number size. Recursive aliases, unknown tags and tags that do not fit their
value are refused at the node. Nothing in here raises on bad input.

Scalars follow the YAML 1.2 core schema (``yes``/``no`` stay strings), which is
also what Kubernetes' own decoder settles on for these fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
)
from ruamel.yaml.nodes import ScalarNode

from kaito_gen.core import limits as lim
from kaito_gen.core.errors import Diagnostic, FieldPath, SourcePos
from kaito_gen.core.limits import DEFAULT_LIMITS, Limits

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
    # Block scalars (``|``, ``>``): path -> (line, col) of the indicator; with ``source`` (the
    # file's text) kaito_gen.core.blockmap maps positions inside their values back to the file.
    blocks: Mapping[FieldPath, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)
    source: str = field(default="", repr=False, compare=False)

    def pos(self, path: FieldPath) -> SourcePos:
        """Position of ``path``, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            hit = self.positions.get(path[:cut])
            if hit is not None:
                return SourcePos(self.file, hit[0], hit[1])
        return SourcePos(self.file, self.line, 1)


class _Abort(Exception):
    """A limit was crossed: stop reading this file (the diagnostic is recorded)."""


_NEED_KEY: Any = object()  # a mapping frame waiting for its next key
_SKIP: Any = object()  # a mapping frame whose next value is dropped (bad or duplicate key)
_IN_KEY: Any = object()  # a mapping frame reading a key that is itself a collection


@dataclass
class _Frame:
    kind: str  # "map" | "seq"
    data: Any
    path: FieldPath | None  # None: inside something being dropped; no positions recorded
    where: tuple[int, int]
    anchor: str | None
    nodes_at_start: int
    log_at_start: int
    key: Any = _NEED_KEY
    key_where: tuple[int, int] = (0, 0)


@dataclass
class _Anchor:
    data: Any = None
    nodes: int = 1
    positions: list[tuple[FieldPath, tuple[int, int]]] = field(default_factory=list)
    open: bool = True


def _size(data: Any) -> int:
    """Nodes in ``data`` (iteratively): what one more copy of it costs."""
    count, todo = 0, [data]
    while todo:
        item = todo.pop()
        count += 1
        if isinstance(item, dict):
            count += len(item)  # the keys
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return count


def _copy(data: Any) -> Any:
    """An alias's own copy of its anchor's plain data (dicts, lists, immutable scalars); faster than
    ``copy.deepcopy``, which an alias bomb makes do up to ``max_nodes`` copies. Depth is bounded by
    ``max_depth``, checked before any anchor closes."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _mark(event: Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


class _Builder:
    """Turns one document's events into plain data, recording positions and problems."""

    def __init__(self, file: str, limits: Limits, resolver: Any, expanded: list[int]) -> None:
        self.file = file
        self.expanded = expanded  # nodes copied by aliases so far, across the file's documents
        self.limits = limits
        self.resolver = resolver
        self.positions: Positions = {}
        self.blocks: Positions = {}
        self.log: list[tuple[FieldPath, tuple[int, int]]] = []  # every position, in order (for anchors)
        self.problems: list[Diagnostic] = []
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.nodes = 0
        self.done = False
        self.data: Any = None
        self.root_line = 1

    # -- problems ----------------------------------------------------------------------------------

    def _problem(
        self, where: tuple[int, int], path: FieldPath | None, message: str, hint: str = "", code: str = ""
    ) -> None:
        self.problems.append(
            Diagnostic(SourcePos(self.file, *where), path or (), message, hint=hint, code=code)
        )

    def _fatal(self, diag: Diagnostic) -> None:
        self.problems.append(diag)
        raise _Abort

    # -- placing a node ------------------------------------------------------------------------------

    def _slot(self, where: tuple[int, int]) -> tuple[FieldPath | None, bool]:
        """The path of the node starting at ``where``, and whether it is a mapping key."""
        if not self.stack:
            self.root_line = where[0]
            return (), False
        top = self.stack[-1]
        if top.kind == "seq":
            if top.path is None:
                return None, False
            sub = (*top.path, len(top.data))
            self._record(sub, where)
            return sub, False
        if top.key is _NEED_KEY:
            return None, True
        if top.key is _SKIP or top.key is _IN_KEY or top.path is None:
            return None, False
        return (*top.path, top.key), False

    def _record(self, path: FieldPath, where: tuple[int, int]) -> None:
        self.positions[path] = where
        self.log.append((path, where))

    def _attach(self, value: Any) -> None:
        if not self.stack:
            self.data = value
            self.done = True
            return
        top = self.stack[-1]
        if top.kind == "seq":
            top.data.append(value)
        elif top.key is _IN_KEY:
            top.key = _SKIP
        else:
            if top.key is not _SKIP:
                top.data[top.key] = value
            top.key = _NEED_KEY

    def _count(self, n: int, where: tuple[int, int], alias: bool) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            self._fatal(lim.nodes_problem(self.file, *where, self.limits, alias))

    # -- events ---------------------------------------------------------------------------------------

    def feed(self, event: Event) -> None:
        if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            self._end()
            return
        where = _mark(event)
        path, is_key = self._slot(where)
        if is_key:
            self._key(event, where)
            return
        if isinstance(event, ScalarEvent):
            self._count(1, where, alias=False)
            value = self._scalar(event, where, path)
            if path is not None and event.style in ("|", ">"):
                self.blocks[path] = where
            if event.anchor is not None:
                self.anchors[event.anchor] = _Anchor(value, 1, [], open=False)
            self._attach(value)
        elif isinstance(event, AliasEvent):
            self._alias(event, where, path)
        elif isinstance(event, CollectionStartEvent):
            self._start(event, where, path)

    def _start(self, event: CollectionStartEvent, where: tuple[int, int], path: FieldPath | None) -> None:
        self._count(1, where, alias=False)
        if len(self.stack) >= self.limits.max_depth:
            self._fatal(lim.depth_problem(self.file, *where, self.limits))
        is_map = isinstance(event, MappingStartEvent)
        tag = None if event.tag is None else str(event.tag)
        if tag not in (None, "!", _TAG + ("map" if is_map else "seq")):
            self._problem(
                where,
                path,
                f"YAML tag {tag!r} does not apply here",
                hint="remove the tag; Kubernetes manifests use plain mappings, sequences and scalars",
                code="yaml-tag",
            )
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor()
        self.stack.append(
            _Frame(
                "map" if is_map else "seq",
                {} if is_map else [],
                path,
                where,
                event.anchor,
                self.nodes,
                len(self.log),
            )
        )

    def _end(self) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            anchor = self.anchors[frame.anchor]
            cut = len(frame.path) if frame.path is not None else 0
            anchor.data = frame.data
            anchor.nodes = max(self.nodes - frame.nodes_at_start + 1, _size(frame.data))
            anchor.positions = (
                [(p[cut:], w) for p, w in self.log[frame.log_at_start :]] if frame.path is not None else []
            )
            anchor.open = False
        self._attach(frame.data)

    def _alias(self, event: AliasEvent, where: tuple[int, int], path: FieldPath | None) -> None:
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            self._problem(
                where, path, f"alias *{event.anchor} names no anchor defined before it", code="yaml-alias"
            )
            self._attach(None)
            return
        if anchor.open:
            self._fatal(
                Diagnostic(
                    SourcePos(self.file, *where),
                    path or (),
                    f"recursive alias *{event.anchor}: it refers to a node that contains it",
                    hint="a manifest is a tree; write the value out instead of referring to its parent",
                    code="yaml-recursive-alias",
                )
            )
        self._count(anchor.nodes, where, alias=True)
        self.expanded[0] += anchor.nodes
        if self.expanded[0] > self.limits.max_nodes:
            self._fatal(lim.nodes_problem(self.file, *where, self.limits, alias=True))
        if path is not None:
            for rel, pos in anchor.positions:
                self._record((*path, *rel), pos)
        self._attach(_copy(anchor.data))

    def _key(self, event: Event, where: tuple[int, int]) -> None:
        top = self.stack[-1]
        if not isinstance(event, ScalarEvent):
            self._problem(where, top.path, "mapping keys must be plain strings", code="yaml-key")
            if isinstance(event, CollectionStartEvent):
                # Read the key's contents and drop them; the value after it is dropped too.
                top.key = _IN_KEY
                self._start(event, where, None)
            else:
                top.key = _SKIP
            return
        self._count(1, where, alias=False)
        tag = None if event.tag is None else str(event.tag)
        resolved = str(self.resolver.resolve(ScalarNode, event.value, event.implicit)) if tag is None else tag
        if resolved == _TAG + "merge":
            self._problem(
                where,
                top.path,
                "YAML merge keys (<<) are not supported",
                hint="write the keys out in full; Kubernetes tooling treats merge keys inconsistently",
                code="yaml-merge-key",
            )
            top.key = _SKIP
            return
        key = str(event.value)
        if len(key) > self.limits.max_string:
            self._fatal(lim.string_problem(self.file, *where, len(key), self.limits))
        if key in top.data:
            sub = (*(top.path or ()), key)
            first = self.positions.get(sub, where)
            self._problem(
                where,
                sub,
                f"duplicate key {key!r} (first defined at line {first[0]})",
                hint="Kubernetes rejects duplicate keys in strict mode; keep one",
                code="yaml-duplicate-key",
            )
            top.key = _SKIP
            return
        if top.path is not None:
            self._record((*top.path, key), where)
        top.key = key

    # -- scalars --------------------------------------------------------------------------------------

    def _scalar(self, event: ScalarEvent, where: tuple[int, int], path: FieldPath | None) -> Any:
        value: str = event.value
        if len(value) > self.limits.max_string:
            self._fatal(lim.string_problem(self.file, *where, len(value), self.limits))
        tag = None if event.tag is None else str(event.tag)
        explicit = tag not in (None, "!")
        if tag is None:
            tag = str(self.resolver.resolve(ScalarNode, value, event.implicit))
        elif tag == "!":
            tag = _TAG + "str"
        kind = tag[len(_TAG) :] if tag.startswith(_TAG) else ""
        if kind == "str" or (kind == "timestamp" and not explicit):
            return value  # implicit timestamps keep the text as written
        if kind == "null" and (not explicit or value in ("", "~", "null", "Null", "NULL")):
            return None
        if kind == "bool" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind in ("int", "float"):
            try:
                return self._int(value, where, path) if kind == "int" else self._float(value, where, path)
            except ValueError:
                pass
        if kind in ("null", "bool", "int", "float"):
            self._problem(
                where,
                path,
                f"{value!r} is not a valid !!{kind}",
                hint="remove the tag or fix the value",
                code="yaml-tag",
            )
            return value
        self._problem(
            where,
            path,
            f"YAML tag {event.tag!r} does not apply here",
            hint="remove the tag; write the value as a plain or quoted string",
            code="yaml-tag",
        )
        return value

    def _int(self, text: str, where: tuple[int, int], path: FieldPath | None) -> int | str:
        cleaned = text.replace("_", "")
        sign = -1 if cleaned.startswith("-") else 1
        digits = cleaned.lstrip("+-")
        base = 10
        if digits[:2] in ("0x", "0X"):
            base, digits = 16, digits[2:]
        elif digits[:2] in ("0o", "0O"):
            base, digits = 8, digits[2:]
        if len(digits.lstrip("0")) > self.limits.max_number_digits:
            return self._too_big(text, where, path)
        if not digits or not digits.isalnum():
            raise ValueError(text)
        return sign * int(digits, base)

    def _float(self, text: str, where: tuple[int, int], path: FieldPath | None) -> float | str:
        lowered = text.lower().replace("_", "")
        if lowered in (".inf", "+.inf"):
            return math.inf
        if lowered == "-.inf":
            return -math.inf
        if lowered == ".nan":
            return math.nan
        if lowered.strip(" \t\n") != lowered or "inf" in lowered or "nan" in lowered:
            raise ValueError(text)
        number = float(lowered)
        if math.isinf(number):
            return self._too_big(text, where, path)
        return number

    def _too_big(self, text: str, where: tuple[int, int], path: FieldPath | None) -> str:
        shown = text if len(text) <= 40 else text[:37] + "..."
        self._problem(
            where,
            path,
            f"number {shown} is too large (more than {self.limits.max_number_digits} digits, or beyond a float)",
            hint="Kubernetes stores integers as int64; quote it if it is meant as text",
            code="limit-number",
        )
        return text


def _parser() -> YAML:
    # typ="safe" with pure=False picks ruamel's libyaml-based CParser when the
    # ruamel.yaml.clib extension is installed (about 6x faster than the pure one).
    return YAML(typ="safe", pure=False)


def _error_position(exc: YAMLError, text: str) -> tuple[int, int]:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1, mark.column + 1
    offset = getattr(exc, "position", None)
    if isinstance(offset, int) and 0 <= offset <= len(text):
        return lim.line_col(text, offset)
    return 1, 1


def parse_documents(
    file: str, text: str, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[SourceDoc], list[Diagnostic]]:
    """Parse every document of one file. Syntax errors and crossed limits become diagnostics."""
    docs: list[SourceDoc] = []
    problems: list[Diagnostic] = []
    bad = lim.text_problem(file, text)
    if bad is not None:
        return docs, [bad]
    yaml = _parser()
    builder: _Builder | None = None
    expanded = [0]
    index = -1
    try:
        for event in yaml.parse(text):
            if isinstance(event, DocumentStartEvent):
                index += 1
                if index >= limits.max_documents:
                    problems.append(lim.documents_problem(file, _mark(event)[0], 1, limits))
                    break
                builder = _Builder(file, limits, yaml.resolver, expanded)
            elif isinstance(event, DocumentEndEvent):
                if builder is not None:
                    problems.extend(builder.problems)
                    if builder.done and builder.data is not None:
                        docs.append(
                            SourceDoc(
                                file,
                                index,
                                builder.data,
                                builder.positions,
                                builder.root_line,
                                builder.blocks,
                                text,
                            )
                        )
                builder = None
            elif builder is not None:
                builder.feed(event)
    except _Abort:
        assert builder is not None
        problems.extend(builder.problems)
    except MarkedYAMLError as exc:
        if builder is not None:
            problems.extend(builder.problems)
        line, col = _error_position(exc, text)
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
        line, col = _error_position(exc, text)
        problems.append(Diagnostic(SourcePos(file, line, col), (), f"YAML error: {exc}", code="yaml-syntax"))
    return docs, problems
