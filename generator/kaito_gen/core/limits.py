"""Limits on untrusted input, checked before parsing costs anything.

kaito-gen runs in CI on whatever a pull request holds, forks included. Every input
file passes through :func:`decode_source` (size, UTF-8, control characters) before
the YAML parser sees it, and :mod:`kaito_gen.core.yamlsrc` enforces the structural
limits (nesting depth, nodes per document including alias expansion, documents per
file, string length, number size) while it streams parser events, so that an alias
bomb or a 100,000-deep nesting is refused at its first offending node instead of
exhausting memory or the C stack.

Each limit has a default (README, "Input limits") and can be changed in
``kaito-gen.yaml`` under ``limits:``. Exceeding one is a positioned diagnostic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kaito_gen.core.errors import Diagnostic, SourcePos


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 8 * 1024 * 1024
    max_depth: int = 64
    # Nodes in one document, counting every node an alias expands to (billion laughs);
    # also the budget of alias-expanded nodes for a whole file.
    max_nodes: int = 100_000
    max_documents: int = 10_000
    # Characters in one scalar: Kubernetes' own cap on a ConfigMap is 1 MiB.
    max_string: int = 1024 * 1024
    # Digits of an integer (int64 has 19); floats may not overflow to infinity.
    max_number_digits: int = 20


DEFAULT_LIMITS = Limits()

# YAML 1.2 §5.1: the printable set. Everything else (C0 controls but tab/LF/CR, DEL,
# C1 controls but NEL, U+FFFE/U+FFFF) is refused, as the YAML spec requires.
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def _limit(file: str, line: int, col: int, message: str, code: str, hint: str) -> Diagnostic:
    return Diagnostic(SourcePos(file, line, col), (), message, hint=hint, code=code)


def size_problem(file: str, size: int, limits: Limits = DEFAULT_LIMITS) -> Diagnostic | None:
    if size <= limits.max_file_bytes:
        return None
    return _limit(
        file,
        1,
        1,
        f"file is {size} bytes; the limit is {limits.max_file_bytes}",
        "limit-file-size",
        "split the file, or raise limits.maxFileBytes in kaito-gen.yaml",
    )


def decode_source(
    file: str, data: bytes, limits: Limits = DEFAULT_LIMITS
) -> tuple[str | None, list[Diagnostic]]:
    """The text of one input file, or ``None`` and the positioned reason it is refused."""
    too_big = size_problem(file, len(data), limits)
    if too_big is not None:
        return None, [too_big]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8", errors="replace")
        line, col = line_col(good, len(good))
        return None, [
            _limit(
                file,
                line,
                col,
                f"invalid UTF-8: byte 0x{data[exc.start]:02x} ({exc.reason})",
                "encoding",
                "YAML input must be UTF-8; re-save the file as UTF-8",
            )
        ]
    bad = text_problem(file, text)
    return (None, [bad]) if bad is not None else (text, [])


def text_problem(file: str, text: str) -> Diagnostic | None:
    """The first character YAML does not allow in a stream, positioned."""
    hit = _NOT_PRINTABLE.search(text)
    if hit is None:
        return None
    line, col = line_col(text, hit.start())
    return _limit(
        file,
        line,
        col,
        f"control character U+{ord(hit.group()):04X} is not allowed in YAML",
        "control-character",
        'remove it; write it as an escape ("\\x07") inside a double-quoted string if it is meant',
    )


def depth_problem(file: str, line: int, col: int, limits: Limits) -> Diagnostic:
    return _limit(
        file,
        line,
        col,
        f"nesting deeper than {limits.max_depth} levels",
        "limit-depth",
        "no Kaito resource nests this deep; raise limits.maxDepth in kaito-gen.yaml if it is meant",
    )


def nodes_problem(file: str, line: int, col: int, limits: Limits, alias: bool) -> Diagnostic:
    what = " (aliases expand to copies)" if alias else ""
    return _limit(
        file,
        line,
        col,
        f"document has more than {limits.max_nodes} nodes{what}",
        "limit-nodes",
        "an alias bomb? write the document out; or raise limits.maxNodes in kaito-gen.yaml",
    )


def documents_problem(file: str, line: int, col: int, limits: Limits) -> Diagnostic:
    return _limit(
        file,
        line,
        col,
        f"file has more than {limits.max_documents} YAML documents",
        "limit-documents",
        "split the file, or raise limits.maxDocuments in kaito-gen.yaml",
    )


def string_problem(file: str, line: int, col: int, length: int, limits: Limits) -> Diagnostic:
    return _limit(
        file,
        line,
        col,
        f"string of {length} characters; the limit is {limits.max_string}",
        "limit-string",
        "Kubernetes caps a ConfigMap at 1 MiB; raise limits.maxString in kaito-gen.yaml if it is meant",
    )
