"""Diagnostics and the one error tree of kaito-gen.

Every problem kaito-gen reports about its *input* is a :class:`Diagnostic`: a
source position, a field path, a message and a hint. Stages never raise on bad
input; they return diagnostics, so a single run reports every error in every
file at once (as a compiler does).

Exceptions are for the few situations where going on makes no sense::

    KaitoGenError                 base of everything kaito-gen raises on purpose
    ├── InputError                the input is invalid; carries the Diagnostics (exit 2)
    │   └── PresetError           a preset table (presets/*.yaml or --presets DIR) is invalid
    ├── UsageError                bad command line or configuration (exit 2)
    ├── OutputError               the output directory cannot be written safely (exit 2)
    └── DriftError                `render --check` found differences (exit 1)

Anything else that escapes is a bug: the CLI turns it into exit code 3 with a
one-line message and never shows a traceback unless ``KAITO_GEN_DEBUG=1``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FieldPath = tuple[str | int, ...]


class ExitCode(enum.IntEnum):
    """The published exit codes (README, `kaito-gen --help`)."""

    OK = 0
    DRIFT = 1
    INVALID = 2
    INTERNAL = 3


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class SourcePos:
    """A 1-based line/column in a named source file."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


def format_path(path: FieldPath) -> str:
    """Render a field path the way Kubernetes does: ``spec.adapters[0].strength``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif out:
            out.append(f".{part}")
        else:
            out.append(part)
    return "".join(out)


@dataclass(frozen=True)
class Diagnostic:
    """One problem, positioned in the source, with a hint on how to fix it."""

    pos: SourcePos
    path: FieldPath
    message: str
    hint: str = ""
    severity: Severity = Severity.ERROR
    code: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.pos.file, self.pos.line, self.pos.col, format_path(self.path), self.message)

    def render(self) -> str:
        where = format_path(self.path)
        head = f"{self.pos}: {self.severity.value}: "
        head += f"{where}: {self.message}" if where else self.message
        if self.code:
            head += f" [{self.code}]"
        if self.hint:
            head += f"\n  hint: {self.hint}"
        return head

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.pos.file,
            "line": self.pos.line,
            "column": self.pos.col,
            "path": format_path(self.path),
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
        }


def sorted_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Deterministic order: by file, line, column, path, message; duplicates dropped."""
    unique = {(d.sort_key(), d.hint, d.severity.value, d.code): d for d in diags}
    return [unique[k] for k in sorted(unique)]


def render_diagnostics(diags: Sequence[Diagnostic], limit: int = 200) -> str:
    """Render like a compiler, capped at ``limit`` with an "… and N more" line."""
    ordered = sorted_diagnostics(diags)
    lines = [d.render() for d in ordered[:limit]]
    if len(ordered) > limit:
        lines.append(f"… and {len(ordered) - limit} more")
    errors = sum(1 for d in ordered if d.is_error)
    warnings = len(ordered) - errors
    lines.append(
        f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
    return "\n".join(lines)


class KaitoGenError(Exception):
    """Base class of every exception kaito-gen raises on purpose."""

    exit_code: ExitCode = ExitCode.INVALID


@dataclass
class InputError(KaitoGenError):
    """The input is invalid. ``diagnostics`` holds every problem found."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __str__(self) -> str:
        return render_diagnostics(self.diagnostics)


class PresetError(InputError):
    """A preset table is invalid (positions point into the preset YAML)."""


class UsageError(KaitoGenError):
    """Bad command-line arguments or configuration."""


class OutputError(KaitoGenError):
    """The output directory cannot be replaced safely."""


class DriftError(KaitoGenError):
    """`render --check` found the committed output out of date."""

    exit_code = ExitCode.DRIFT
