"""Errors of `kaito-tune`. Each renders as one clear line (or one per diagnostic), never a traceback.

TuneError             base                                                      exit 1
├── ConfigError       training_config.yaml is invalid: every problem, with
│                     file:line:col, the key path and a hint                    exit 2
├── DataError         no data, unknown columns, unusable rows                   exit 3
└── ModelError        the base model cannot be loaded or adapted                exit 4
"""

from __future__ import annotations

from dataclasses import dataclass


class TuneError(Exception):
    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return f"error: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int  # 1-based; 0 when unknown
    col: int
    path: str  # dotted key path, e.g. training_config.TrainingArguments.learnig_rate
    message: str
    hint: str = ""

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        text = (
            f"{where}: error: {self.path}: {self.message}" if self.path else f"{where}: error: {self.message}"
        )
        return f"{text} (hint: {self.hint})" if self.hint else text


MAX_SHOWN = 20


class ConfigError(TuneError):
    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__(diagnostics[0].message if diagnostics else "invalid config")
        self.diagnostics = diagnostics

    def render(self) -> str:
        lines = [d.render() for d in self.diagnostics[:MAX_SHOWN]]
        if len(self.diagnostics) > MAX_SHOWN:
            lines.append(f"... and {len(self.diagnostics) - MAX_SHOWN} more")
        return "\n".join(lines)


class DataError(TuneError):
    exit_code = 3


class ModelError(TuneError):
    exit_code = 4
