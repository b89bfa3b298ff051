"""Follow-on diagnostics: what later stages report about fields or objects that
already have errors is noise; drop it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kaito_gen.compiler.load import Inputs
from kaito_gen.compiler.partial import about_pruned
from kaito_gen.compiler.validate import Validated, WorkspaceInput
from kaito_gen.core.errors import Diagnostic


def drop_follow_on(inputs: Inputs, validated: Validated, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Every diagnostic less the follow-on ones.

    Later stages check each Workspace on what parsed; their findings about a field
    that already has a schema error are dropped. An "is not referenced" warning is
    dropped for an object that has errors itself or that a Workspace with errors
    names (that Workspace was not compiled, so nothing referenced the object)."""
    diags = list(diags)
    failed_files = {d.pos.file for d in diags if d.is_error}
    by_file: dict[str, list[WorkspaceInput]] = {}
    for wi in validated.workspaces:
        if wi.pruned:
            by_file.setdefault(wi.doc.file, []).append(wi)
    named: set[tuple[str, str]] = set()
    for doc in inputs.docs:
        data = doc.data
        if (
            doc.file in failed_files
            and isinstance(data, dict)
            and data.get("kind") in ("Workspace", "InferenceSet")
        ):
            meta = data.get("metadata")
            ns = meta.get("namespace") if isinstance(meta, dict) else None
            namespace = ns if isinstance(ns, str) else ""
            named.update((namespace, text) for text in _strings(data))
    out = []
    for diag in diags:
        if any(about_pruned(diag, wi.pruned) for wi in by_file.get(diag.pos.file, ())) and not (
            diag.code.startswith("schema-")
        ):
            continue
        if diag.code == "unreferenced":
            obj = next(
                (o for o in validated.objects.values() if o.doc.pos(("metadata", "name")) == diag.pos), None
            )
            if obj is not None and (
                obj.doc.file in failed_files or {(obj.namespace, obj.name), ("", obj.name)} & named
            ):
                continue
        out.append(diag)
    return out


def _strings(data: Any) -> Iterable[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)
