"""The command line both runtime schema exports share: write the schema to every path given
(schemas/runtime/ and the compiler's packaged copy, usually both), or to stdout without one."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def export(schema: Callable[[], str], argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = schema()
    for path in args:
        Path(path).write_text(text, encoding="utf-8")
    if not args:
        sys.stdout.write(text)
    return 0
