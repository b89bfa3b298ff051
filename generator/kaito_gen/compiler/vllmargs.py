"""The ``vllm:`` section of an inference config, checked against vLLM's real argument list.

kaito-vllm appends each ``key: value`` of that section as ``--key value`` after the
operator's flags (KAITO.md §7.2), so a misspelt key or a wrong value only shows up as a
crash-looping pod. ``catalog/vllm_args.json`` is generated from vLLM's own ``vllm serve``
parser by ``generator/scripts/gen_vllm_args.py`` (a drift test re-runs it where vLLM is installed); this
module checks each key and the kind of its value at compile time, at the key's own line.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from kaito_gen.compiler.configmaps import INFERENCE_KEY, EmbeddedMapping, parse_embedded
from kaito_gen.compiler.validate import ObjectInput
from kaito_gen.core.errors import Diagnostic, FieldPath
from kaito_gen.core.schema_errors import did_you_mean

SIZE = re.compile(r"^\d+(\.\d+)?[kKmMgGtT]?[iI]?$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE]-?\d+)?$")


@functools.cache
def vllm_args() -> tuple[str, dict[str, dict[str, Any]]]:
    """(vLLM version, {flag without dashes: {kind, choices?}})."""
    text = resources.files("kaito_gen.catalog").joinpath("vllm_args.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    return str(doc["vllmVersion"]), dict(doc["args"])


def value_problem(spec: dict[str, Any], value: Any) -> str:
    """Why ``value`` does not suit a flag of this kind, or ``""``."""
    kind = spec["kind"]
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if kind == "bool":
        ok = isinstance(value, bool) or text in ("true", "false")
        return "" if ok else f"expects true or false, got {value!r}"
    if isinstance(value, (dict, list)) and kind not in ("json", "list"):
        return f"expects a single value, got {type(value).__name__}"
    if kind == "int":
        ok = not isinstance(value, bool) and re.fullmatch(r"-?\d+", text) is not None
        return "" if ok else f"expects an integer, got {value!r}"
    if kind == "float":
        ok = not isinstance(value, bool) and NUMBER.match(text) is not None
        return "" if ok else f"expects a number, got {value!r}"
    if kind in ("size", "size-or-auto"):
        ok = not isinstance(value, bool) and (
            SIZE.match(text) is not None or (kind == "size-or-auto" and text in ("auto", "-1"))
        )
        extra = " or auto" if kind == "size-or-auto" else ""
        return "" if ok else f"expects an integer (1k, 2M, …){extra}, got {value!r}"
    if kind == "choice":
        choices = spec.get("choices", [])
        return "" if text in choices else f"expects one of {', '.join(choices)}, got {value!r}"
    return ""


def check_vllm_section(obj: ObjectInput) -> list[Diagnostic]:
    """Every problem of the ``vllm:`` section in the ConfigMap's inference_config.yaml."""
    check = parse_embedded(obj, INFERENCE_KEY, obj.doc.pos(("data",)), ("data",))
    parsed = check.parsed
    if not isinstance(parsed, EmbeddedMapping):
        return []  # reported where resolve parses the inference config
    section = parsed.get("vllm")
    if not isinstance(section, dict):
        return []
    version, known = vllm_args()
    path: FieldPath = ("data", INFERENCE_KEY)
    out: list[Diagnostic] = []
    for key, value in section.items():
        pos = parsed.locate(("vllm", key))
        name = str(key).lstrip("-").replace("_", "-")
        spec = known.get(name) or known.get(name.split(".", 1)[0])
        if spec is None:
            hint = did_you_mean(name, list(known)) or f"see `vllm serve --help` (vLLM {version})"
            out.append(
                Diagnostic(
                    pos,
                    path,
                    f"vllm.{key}: not an argument of vLLM {version}'s `vllm serve`",
                    hint=hint,
                    code="vllm-args",
                )
            )
            continue
        problem = value_problem(spec, value)
        if problem:
            out.append(Diagnostic(pos, path, f"vllm.{key}: {problem}", code="vllm-args"))
    return out
