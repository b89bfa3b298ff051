"""Write the runtime's typed tuning config (``tune/schema.py``) as JSON Schema, for the
compiler to check ``training_config.yaml`` at compile time without importing the runtime.

    python -m kaito_runtime.tune.export_schema schemas/runtime/training_config.schema.json \\
        generator/kaito_gen/catalog/runtime_schemas/training_config.schema.json

``tests/generator/test_runtime_schema_export.py`` regenerates it and compares it with this file and
with the compiler's packaged copy (``generator/kaito_gen/catalog/runtime_schemas/``): drift tests.

The sections that pass library fields through (``LoraConfig`` to peft's ``LoraConfig``,
``TrainingArguments`` to transformers' ``TrainingArguments``) accept only the fields of the pinned
libraries, as kaito-tune does (``schema.allowed_keys``). The export lists those names as properties
and closes the sections, so the schema alone refuses an unknown key and the compiler can offer a
"did you mean" without importing peft or transformers. Keys kaito-tune sets itself are listed
with a ``false`` schema, so a config that sets one is refused at its line."""

from __future__ import annotations

import json

from kaito_runtime.schema_export import export
from kaito_runtime.tune.schema import (
    LORA_NAMES,
    RESERVED_TRAINING_KEYS,
    TRAINING_ARGUMENT_NAMES,
    ConfigFile,
)

# $defs entry of each passthrough section -> (library field names, what receives them)
_PASSTHROUGH = {
    "LoraSection": (LORA_NAMES, "peft LoraConfig"),
    "TrainingSection": (TRAINING_ARGUMENT_NAMES - RESERVED_TRAINING_KEYS, "transformers TrainingArguments"),
}


def training_config_schema() -> str:
    schema = ConfigFile.model_json_schema()
    for name, (fields, target) in _PASSTHROUGH.items():
        section = schema["$defs"][name]
        props = section["properties"]
        for field in sorted(fields - set(props)):
            props[field] = {"description": f"passed to {target} unchanged"}
        if name == "TrainingSection":
            for field in sorted(RESERVED_TRAINING_KEYS - set(props)):
                props[field] = {"not": {}, "description": "kaito-tune sets this itself; remove it"}
        section["additionalProperties"] = False
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "training_config.yaml (kaito-runtime tune)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    return export(training_config_schema, argv)


if __name__ == "__main__":
    raise SystemExit(main())
