"""Write what kaito-serve accepts in Kaito's ``inference_config.yaml`` as JSON Schema, for the
compiler to check the file at compile time without importing the runtime.

    python -m kaito_runtime.serve.export_schema schemas/runtime/inference_config.schema.json \\
        generator/kaito_gen/catalog/runtime_schemas/inference_config.schema.json

Built from the tables ``serve/settings.py`` validates with (``_INT_KEYS``, ``_FLOAT_KEYS``,
``COMBINATION_TYPES``, ``MAX_TEMPLATE_BYTES``), so a change there shows up as drift in
``tests/generator/test_runtime_schema_export.py``, which also compares the compiler's packaged copy.

What the schema says, as ``parse_config_file`` does:
- ``transformers:`` is closed: each key once, ``-`` and ``_`` interchangeable (the properties are
  the ``-`` spellings; ``patternProperties`` take the ``_`` ones), values typed and ranged.
- Kaito's vLLM keys (``vllm``, ``max_probe_steps``, ``kv_cache_cpu_memory_utilization``) are
  listed and left to kaito-vllm (the compiler checks ``vllm:`` against vLLM's own argument list).
- Any other top-level key is allowed: kaito-serve ignores it with a warning.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kaito_runtime.schema_export import export
from kaito_runtime.serve.settings import (
    _FLOAT_KEYS,
    _INT_KEYS,
    COMBINATION_TYPES,
    KAITO_FOREIGN_KEYS,
    MAX_TEMPLATE_BYTES,
)


def _spellings(key: str) -> str:
    """A pattern for the spellings of ``key`` with at least one ``_`` (the ``-`` one is a property)."""
    return "^(?=.*_)" + "[-_]".join(re.escape(part) for part in key.split("-")) + "$"


def _transformers() -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key, (_attr, lo, hi) in _INT_KEYS.items():
        props[key] = {"type": "integer", "minimum": lo, "maximum": hi}
    for key, (_attr, flo, fhi) in _FLOAT_KEYS.items():
        props[key] = {"type": "number", "minimum": flo, "maximum": fhi}
    props["combination-type"] = {"enum": list(COMBINATION_TYPES)}
    props["chat-template"] = {
        "type": "string",
        "pattern": "\\S",
        "maxLength": MAX_TEMPLATE_BYTES,
        "description": "inline Jinja chat template, overrides the tokenizer's",
    }
    return {
        "type": "object",
        "description": "kaito-serve's own section ('-' and '_' are interchangeable)",
        "properties": dict(sorted(props.items())),
        "patternProperties": {_spellings(key): props[key] for key in sorted(props)},
        "additionalProperties": False,
    }


def inference_config_schema() -> str:
    props: dict[str, Any] = {"transformers": _transformers()}
    for key in KAITO_FOREIGN_KEYS:
        props[key] = {"description": "read by Kaito's vLLM runtime (kaito-vllm); kaito-serve ignores it"}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "inference_config.yaml (kaito-runtime serve)",
        "type": "object",
        "properties": dict(sorted(props.items())),
        "additionalProperties": True,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    return export(inference_config_schema, argv)


if __name__ == "__main__":
    raise SystemExit(main())
