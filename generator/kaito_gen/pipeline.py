"""The pipeline: the stages, in order, written down once.

    load → validate → resolve → plan → emit → write

``compile_inputs`` runs the pure part (validate … emit) over loaded inputs;
``load`` and ``write`` are the only stages that touch the filesystem and are
called by the CLI around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .emit.bundle import Bundle, emit
from .errors import Diagnostic, sorted_diagnostics
from .load import Inputs
from .models.target import Target
from .plan import Plan, plan
from .presets import PresetCatalog
from .resolve import Resolved, resolve
from .validate import validate
from .write import render_files

STAGES = ("load", "validate", "resolve", "plan", "emit", "write")


@dataclass(frozen=True)
class Compiled:
    resolved: Resolved
    plan: Plan | None
    bundles: tuple[Bundle, ...]
    files: dict[str, str]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def compile_inputs(inputs: Inputs, catalog: PresetCatalog, target: Target) -> Compiled:
    """Pure: the same inputs give the same files, byte for byte."""
    validated = validate(inputs, target)
    resolved = resolve(validated, catalog, target)
    diagnostics = tuple(sorted_diagnostics(resolved.diagnostics))
    if any(d.is_error for d in diagnostics):
        return Compiled(resolved, None, (), {}, diagnostics)
    the_plan = plan(resolved, target)
    bundles = emit(the_plan, target)
    return Compiled(resolved, the_plan, bundles, render_files(bundles), diagnostics)
