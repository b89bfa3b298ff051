"""Positions inside a block scalar: from a line/column of its *value* back to its file.

A ConfigMap carries YAML inside YAML (``data.training_config.yaml: |``). The embedded
document is parsed on its own, so its positions count from the start of the value. This
module maps them back to the ConfigMap file's own lines and columns, for literal (``|``)
and folded (``>``) blocks, with any chomping (``-``/``+``), any indentation (detected or an
explicit indicator such as ``|4``) and LF, CRLF or CR line ends.

It works from the source text: it rebuilds the value line by line the way YAML does
(YAML 1.2 §8.1.2 literal, §8.1.3 folding) and records where each piece came from. The
rebuilt value must equal the parser's value; if it does not (some corner of YAML this
rebuild does not cover), :func:`block_map` returns ``None`` and callers fall back to the
key's own position. A wrong position is worse than a coarse one.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kaito_gen.core.yamlsrc import SourceDoc

# The line breaks libyaml counts (it reads YAML 1.1: NEL, LS and PS break lines too).
_BREAK = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")
_HEADER = re.compile(r"([|>])([1-9])?([+-])?([1-9])?")


@dataclass(frozen=True)
class BlockMap:
    """Where each run of a block scalar's value sits in the file (1-based lines/columns)."""

    line_starts: tuple[int, ...]  # offset in the value where each value line starts
    offsets: tuple[int, ...]  # value offset where each segment starts (sorted)
    sources: tuple[tuple[int, int], ...]  # (file line, file column) of each segment's first char

    def pos(self, line: int, col: int) -> tuple[int, int]:
        """File position of value position ``(line, col)`` (as an embedded parse reports it)."""
        index = min(max(line, 1), len(self.line_starts)) - 1
        offset = self.line_starts[index] + max(col, 1) - 1
        seg = max(bisect.bisect_right(self.offsets, offset) - 1, 0)
        src_line, src_col = self.sources[seg]
        return src_line, src_col + max(offset - self.offsets[seg], 0)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _rebuild(
    lines: Sequence[str], first: int, indent: int, folded: bool
) -> tuple[str, list[int], list[tuple[int, int]]]:
    """The value of a block whose content starts at ``lines[first]`` (0-based), indented ``indent``."""
    body: list[tuple[int, str]] = []
    for number in range(first, len(lines)):
        raw = lines[number]
        if raw.strip() and _indent(raw) < indent:
            break  # a less indented line ends the block
        body.append((number + 1, raw[indent:] if raw.strip(" ") else ""))
    while body and not body[-1][1].strip(" "):
        body.pop()  # trailing empty lines belong to chomping, not to any position
    out: list[str] = []
    offsets: list[int] = []
    sources: list[tuple[int, int]] = []
    size, empty, previous = 0, 0, ""  # previous: "" (none yet), "normal" or "spaced"
    for number, content in body:
        if not content:
            empty += 1
            continue
        spaced = content[0] in " \t"
        if not previous:
            sep = "\n" * empty
        elif folded and previous == "normal" and not spaced:
            sep = "\n" * empty if empty else " "  # folding: one break becomes a space
        else:
            sep = "\n" * (empty + 1)
        out.append(sep)
        size += len(sep)
        offsets.append(size)
        sources.append((number, indent + 1))
        out.append(content)
        size += len(content)
        empty, previous = 0, "spaced" if spaced else "normal"
    return "".join(out), offsets, sources


def block_map(doc: SourceDoc, path: tuple[str | int, ...], value: str) -> BlockMap | None:
    """A map for the block scalar at ``path`` of ``doc`` whose parsed value is ``value``.

    ``None`` when the node is not a block scalar, the source is not at hand, or the
    rebuilt value differs from ``value``.
    """
    header = doc.blocks.get(path)
    if header is None or not doc.source:
        return None
    lines = _BREAK.split(doc.source)
    h_line, h_col = header
    if h_line > len(lines):
        return None
    match = _HEADER.match(lines[h_line - 1], h_col - 1)
    if match is None:
        return None
    folded = match.group(1) == ">"
    explicit = int(match.group(2) or match.group(4) or 0)
    candidates: list[int] = []
    if explicit:
        # The indicator counts from the parent node's indentation: the owning key's column.
        key = doc.positions.get(path)
        parent = key[1] - 1 if key is not None else _indent(lines[h_line - 1])
        candidates += [parent + explicit, _indent(lines[h_line - 1]) + explicit]
    detected = next((_indent(raw) for raw in lines[h_line:] if raw.strip()), 0)
    candidates.append(detected)
    want = value.rstrip("\n")
    for indent in dict.fromkeys(candidates):
        if indent < 1:
            continue
        built, offsets, sources = _rebuild(lines, h_line, indent, folded)
        if built == want and sources:
            starts = [0] + [m.end() for m in re.finditer("\n", value)]
            return BlockMap(tuple(starts), tuple(offsets), tuple(sources))
    return None
