"""Write the runtime's typed tuning config (``tune/schema.py``) as JSON Schema, for the
compiler to check ``training_config.yaml`` at compile time without importing the runtime.

    python -m kaito_runtime.tune.export_schema schemas/runtime/training_config.schema.json

``tests/runtime/test_runtime_schema_export.py`` regenerates it and compares (drift test)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kaito_runtime.tune.schema import ConfigFile


def training_config_schema() -> str:
    schema = ConfigFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "training_config.yaml (kaito-runtime tune)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = training_config_schema()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
