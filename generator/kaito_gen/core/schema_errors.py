"""Turn pydantic validation errors into positioned, hinted diagnostics."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from kaito_gen.core.errors import Diagnostic, FieldPath
from kaito_gen.core.yamlsrc import SourceDoc


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> str:
    """``"did you mean X?"`` for the closest candidate, or ``""``. Case-insensitive."""
    pool = sorted(set(candidates))
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f"did you mean {lowered[word.lower()]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return f"did you mean {lowered[close[0]]!r}?" if close else ""


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/tuple/dict annotations."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return [("seq", arg) for arg in args]
    return [annotation]


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """Follow ``loc`` (aliases and indexes) through the model classes."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {(f.alias or name): f for name, f in current.model_fields.items()}
        field = by_alias.get(part) or current.model_fields.get(part)
        if field is None:
            return None
        nxt: Any = None
        for cand in _unwrap(field.annotation):
            if isinstance(cand, tuple) and cand[0] == "seq":
                cand = cand[1]
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                nxt = cand
                break
        if nxt is None:
            return None
        current = nxt
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def pydantic_diagnostics(
    doc: SourceDoc,
    exc: ValidationError,
    model: type[BaseModel],
    base: FieldPath = (),
) -> list[Diagnostic]:
    """One diagnostic per pydantic error, positioned at the offending key."""
    out: list[Diagnostic] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
        # Pydantic appends the union member / tag name for union errors; drop non-field parts.
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path = (*base, *loc)
        kind = err["type"]
        hint = ""
        message = err["msg"]
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1]) if loc else None
            names = field_names(parent) if parent else []
            # A key that looks like a union tag ("a[b") was filtered out of loc: name it as written.
            key = str(loc[-1]) if loc else str(err["loc"][-1]) if err["loc"] else "?"
            message = f"unknown field {key!r}"
            hint = did_you_mean(key, names)
            if not hint and names:
                hint = "allowed here: " + ", ".join(sorted(names))
        elif kind == "missing":
            message = f"required field {loc[-1]!r} is missing" if loc else "required field is missing"
            path = path[:-1] if loc else path
            hint = f"add {loc[-1]!r} under {'.'.join(str(p) for p in base + loc[:-1]) or 'the top level'}"
        elif kind == "string_type":
            value = err.get("input")
            message = f"must be a string, got {type(value).__name__} {value!r}"
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                hint = f'quote it: "{value}"'
        elif kind == "literal_error":
            value = err.get("input")
            expected = err.get("ctx", {}).get("expected", "")
            message = f"{value!r} is not allowed; expected {expected}"
            if isinstance(value, str):
                options = [o.strip().strip("'") for o in str(expected).replace(" or ", ", ").split(",")]
                hint = did_you_mean(value, [o for o in options if o])
        elif kind in ("dict_type", "model_type", "model_attributes_type"):
            value = err.get("input")
            message = f"must be a mapping, got {type(value).__name__}"
        elif kind in ("tuple_type", "list_type"):
            value = err.get("input")
            message = f"must be a list, got {type(value).__name__}"
            hint = "write it as a YAML list (one '- item' per line)"
        out.append(Diagnostic(doc.pos(path), path, message, hint=hint, code=f"schema-{kind}"))
    return out
