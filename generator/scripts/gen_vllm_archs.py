"""Write generator/kaito_gen/catalog/vllm_archs.json from vLLM's own model registry.

Run with the interpreter that has vLLM installed:  .venv-vllm/bin/python generator/scripts/gen_vllm_archs.py
`--check` compares instead of writing (exit 1 on drift); the test suite runs that form.
Kaito does the same for its base image (`hack/generate_vllm_arch_list.sh` dumps
`presets/workspace/models/vllm_model_arch_list.txt`, KAITO.md §2.1): `kaito-gen presets add` refuses a
model unless one of its config.json `architectures` is in this list. Architectures vLLM dropped are kept
with the last version that served them, so the refusal can say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from datafile import write_or_check  # generator/scripts/ is on sys.path when a script runs

OUT = Path(__file__).resolve().parents[1] / "kaito_gen" / "catalog" / "vllm_archs.json"


def generate() -> str:
    import vllm
    from vllm import ModelRegistry
    from vllm.model_executor.models import registry

    doc = {
        "vllmVersion": vllm.__version__,
        "architectures": sorted(ModelRegistry.get_supported_archs()),
        "previouslySupported": dict(sorted(registry._PREVIOUSLY_SUPPORTED_MODELS.items())),
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main() -> int:
    return write_or_check(OUT, generate(), "generator/scripts/gen_vllm_archs.py", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
