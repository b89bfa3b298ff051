"""``--format github|sarif`` for failures that happen before or outside compilation.

A bad ``kaito-gen.yaml``, an invalid ``--presets`` table, "no YAML documents found", an
output directory that cannot be written: these raise (:mod:`kaito_gen.core.errors`) instead of
coming back as compile diagnostics. In CI they would only show in the job log. This decorator
also prints them as workflow commands or a SARIF log on stdout, as ``report`` does for compile
diagnostics, and re-raises, so ``guarded`` still prints the text and owns the exit code.

Order: ``@guarded`` above ``@annotate_failures``, directly on the command function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from kaito_gen.core.errors import (
    Diagnostic,
    DriftError,
    InputError,
    KaitoGenError,
    OutputError,
    SourcePos,
    UsageError,
)
from kaito_gen.review.annotations import ANNOTATION_FORMATS, render_annotations

F = TypeVar("F", bound=Callable[..., Any])

_CODES: tuple[tuple[type[KaitoGenError], str], ...] = ((UsageError, "usage"), (OutputError, "output"))


def failure_diagnostics(exc: BaseException) -> list[Diagnostic]:
    """What to annotate for ``exc``: an InputError's own diagnostics, else one unpositioned error."""
    if isinstance(exc, InputError):
        return list(exc.diagnostics)
    if isinstance(exc, KaitoGenError):
        code = next((name for cls, name in _CODES if isinstance(exc, cls)), "error")
        return [Diagnostic(SourcePos(""), (), str(exc), code=code)]
    message = f"internal error: {type(exc).__name__}: {exc} (set KAITO_GEN_DEBUG=1 for a traceback)"
    return [Diagnostic(SourcePos(""), (), message, code="internal")]


def _emit(fmt: str, diags: Sequence[Diagnostic]) -> None:
    click.echo(render_annotations(fmt, diags, Path.cwd()), nl=False)


def annotate_failures(func: F) -> F:
    """Annotate what the command raises when ``fmt`` is github or sarif (and --json is not set)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fmt = kwargs.get("fmt")
        if fmt not in ANNOTATION_FORMATS or kwargs.get("as_json"):
            return func(*args, **kwargs)
        try:
            return func(*args, **kwargs)
        except DriftError:
            raise  # `render --check`: the diff is the report, and exit 1 is not an input error
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            _emit(str(fmt), failure_diagnostics(exc))
            raise

    return wrapper  # type: ignore[return-value]
