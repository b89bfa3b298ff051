"""The embedded configs checked against the runtime's own schemas, at their own lines.

``catalog/runtime_schemas/*.schema.json`` are exported from gpu-runtime's typed config
(``kaito_runtime.tune.export_schema``, ``kaito_runtime.serve.export_schema``) and shipped as
package data; a drift test holds the copies equal to the export. The compiler reads only
the JSON, so it imports neither the runtime nor torch, peft or transformers.

Every jsonschema error becomes one :class:`Diagnostic` (all of them, not the first), at the
key the error is about inside the ConfigMap's block, with the field path below
``data.<key>`` and a hint. An unknown key gets "did you mean" from the names the schema
lists (for ``LoraConfig`` these are peft's ``LoraConfig`` fields, recorded at export).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import jsonschema

from kaito_gen.core.errors import Diagnostic, FieldPath, Severity, SourcePos, format_path
from kaito_gen.core.schema_errors import did_you_mean

Locate = Callable[[FieldPath], SourcePos]

_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


@functools.cache
def runtime_validator(name: str) -> jsonschema.protocols.Validator:
    """The validator of ``catalog/runtime_schemas/<name>.schema.json``."""
    text = (
        resources.files("kaito_gen.catalog")
        .joinpath("runtime_schemas", f"{name}.schema.json")
        .read_text(encoding="utf-8")
    )
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _expects(schema: Mapping[str, Any]) -> str:
    """What a (sub)schema accepts, in words: "an integer", "one of none, all", …"""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        words = list(dict.fromkeys(_expects(b) for b in branches))
        return " or ".join(w for w in words if w) or "a valid value"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        inner = _expects(schema["items"])
        return f"a list of {inner.removeprefix('a ').removeprefix('an ')}s" if inner else "a list"
    if schema.get("$ref"):
        return "a mapping"
    return _TYPE_WORDS.get(str(kind), "")


def _bound(error: jsonschema.ValidationError) -> str:
    words = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "greater than",
        "exclusiveMaximum": "less than",
    }
    return f"must be {words[str(error.validator)]} {error.validator_value}, got {error.instance!r}"


def _hint(error: jsonschema.ValidationError, expects: str = "") -> str:
    """A hint for a value error: unquote a quoted number or flag, else the default or description."""
    value, schema = error.instance, error.schema if isinstance(error.schema, dict) else {}
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false") and "true or false" in expects:
            return f"write {text.lower()} without quotes: quoted, YAML reads it as a string"
        if re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text) and (
            "integer" in expects or "number" in expects
        ):
            return f"write {text} without quotes: quoted, YAML reads it as a string"
    if "default" in schema and schema["default"] is not None:
        return f"the runtime's default is {json.dumps(schema['default'])}"
    return str(schema.get("description", ""))


def _unknown(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """(key, hint) for each key an ``additionalProperties: false`` refused."""
    schema, instance = error.schema, error.instance
    if not isinstance(schema, dict) or not isinstance(instance, dict):
        return []
    known = list(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    out = []
    for key in instance:
        text = str(key)
        if text in known or any(p.search(text) for p in patterns):
            continue
        hint = did_you_mean(text, known) or ("known keys: " + ", ".join(known) if len(known) <= 12 else "")
        out.append((text, hint))
    return out


def schema_diagnostics(
    instance: Mapping[str, Any],
    schema_name: str,
    base: FieldPath,
    locate: Locate,
    code: str,
    sections: FieldPath = (),
) -> tuple[list[Diagnostic], set[FieldPath]]:
    """Every error of ``instance`` against the runtime schema, and the inner paths they concern.

    ``base`` is the ConfigMap field (``("data", "training_config.yaml")``); ``locate`` maps an
    inner path to its position in the file; ``sections`` names the mapping whose keys are
    called sections in messages (``("training_config",)``).
    """
    validator = runtime_validator(schema_name)
    found: list[Diagnostic] = []
    bad: set[FieldPath] = set()

    def add(path: FieldPath, message: str, hint: str = "") -> None:
        bad.add(path)
        found.append(Diagnostic(locate(path), (*base, *path), message, hint=hint, code=code))

    def handle(error: jsonschema.ValidationError) -> None:
        path: FieldPath = tuple(error.absolute_path)
        kind = str(error.validator)
        if kind in ("anyOf", "oneOf"):
            inner = _matching_branch(error)
            if inner:
                for sub in inner:
                    handle(sub)
                return
        if kind == "additionalProperties":
            noun = "section" if path == sections and sections else "key"
            for key, hint in _unknown(error):
                add((*path, key), f"unknown {noun} {format_path((*path, key))}", hint)
            return
        if kind == "required":
            missing = str(error.message).split("'")[1] if "'" in str(error.message) else ""
            add(path, f"missing required key {missing!r}".replace(" ''", ""))
            return
        if kind == "not" and isinstance(error.schema, dict):
            add(path, "is not accepted here", str(error.schema.get("description", "")))
            return
        if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            add(path, _bound(error), _hint(error))
            return
        if kind in ("type", "anyOf", "oneOf", "enum", "const"):
            expects = _expects(error.schema) if isinstance(error.schema, dict) else ""
            if expects:
                add(path, f"must be {expects}, got {error.instance!r}", _hint(error, expects))
                return
        add(path, str(error.message), _hint(error))

    for error in validator.iter_errors(instance):
        handle(error)
    return found, bad


def _matching_branch(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The errors inside the one ``anyOf`` branch whose type fits the value (``Section | None``
    given a mapping: the section's own errors), or ``[]`` when no single branch fits."""
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    fitting = [
        errs
        for errs in branches.values()
        if not any(not e.relative_path and str(e.validator) in ("type", "const", "enum") for e in errs)
    ]
    return fitting[0] if len(fitting) == 1 else []


def unknown_top_level(
    instance: Mapping[str, Any], schema_name: str, base: FieldPath, locate: Locate, code: str, reader: str
) -> list[Diagnostic]:
    """Warnings for top-level keys the schema does not list but the runtime tolerates (it ignores them)."""
    schema = runtime_validator(schema_name).schema
    known = list(schema.get("properties", {})) if isinstance(schema, Mapping) else []
    return [
        Diagnostic(
            locate((str(key),)),
            (*base, str(key)),
            f"unknown top-level key {key!r}: {reader} ignores it",
            hint=did_you_mean(str(key), known) or "known keys: " + ", ".join(known),
            severity=Severity.WARNING,
            code=code,
        )
        for key in instance
        if str(key) not in known
    ]
