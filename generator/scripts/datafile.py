"""Write a generated data file, or with ``--check`` only compare it (the drift tests run that)."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(out: Path, text: str, script: str, argv: list[str]) -> int:
    """0 when ``out`` was written or already holds ``text``; 1 (and how to regenerate) on drift."""
    if "--check" in argv:
        if out.read_text() != text:
            print(f"{out} is out of date; run: .venv-vllm/bin/python {script}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    return 0
