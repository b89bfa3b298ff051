"""Partial parsing: a Workspace with its schema errors reported and the failing fields
dropped, so that the admission rules still run on everything that parsed."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kaito_gen.core.errors import Diagnostic, FieldPath
from kaito_gen.core.schema_errors import pydantic_diagnostics
from kaito_gen.core.yamlsrc import SourceDoc
from kaito_gen.models.workspace import Workspace

M = TypeVar("M", bound=BaseModel)


def about_pruned(diag: Diagnostic, pruned: tuple[FieldPath, ...]) -> bool:
    for path in pruned:
        if diag.path[: len(path)] == path:
            return True
        if diag.path == path[:-1] and str(path[-1]).lower() in diag.message.lower():
            return True
    return False


MAX_PRUNE_ROUNDS = 16


def parse_partial(
    doc: SourceDoc,
    model: type[M] = Workspace,  # type: ignore[assignment]
) -> tuple[M | None, tuple[FieldPath, ...], list[Diagnostic]]:
    """The Workspace (or another input ``model``), with every field that fails the schema reported
    and dropped.

    The schema errors of the document as written are reported; the fields they
    name are removed from a copy and the rest is validated again, so the
    admission rules still run on everything that parsed. ``None`` when what is
    left is not a Workspace at all (e.g. ``metadata.name`` is missing)."""
    try:
        return model.model_validate(doc.data), (), []
    except ValidationError as exc:
        found = pydantic_diagnostics(doc, exc, model)
        errors = exc.errors(include_url=False)
    data = copy.deepcopy(doc.data)
    pruned: list[FieldPath] = []
    for _ in range(MAX_PRUNE_ROUNDS):
        progress = False
        for err in errors:
            loc: FieldPath = tuple(
                p
                for p in err["loc"]
                if isinstance(p, (str, int))
                and not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
            )
            if err["type"] == "missing":
                loc = loc[:-1]
            cut = _prune(data, loc)
            if cut is not None:
                pruned.append(cut)
                progress = True
        if not progress:
            return None, tuple(pruned), found
        try:
            return model.model_validate(data), tuple(pruned), found
        except ValidationError as again:
            errors = again.errors(include_url=False)
    return None, tuple(pruned), found


def _prune(data: Any, loc: FieldPath) -> FieldPath | None:
    """Delete the innermost mapping key on ``loc``; the path deleted, or None."""
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    if not loc:
        return None
    parent: Any = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return None
    if isinstance(parent, dict) and loc[-1] in parent:
        del parent[loc[-1]]
        return loc
    return None
