"""Drift test: schemas/runtime/training_config.schema.json is what the runtime's typed
tuning config (gpu-runtime/kaito_runtime/tune/schema.py) exports, and exporting it needs
no torch (the generator side must stay torch-free)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "runtime" / "training_config.schema.json"

SCRIPT = """
import sys
from kaito_runtime.tune.export_schema import training_config_schema
sys.stdout.write(training_config_schema())
assert "torch" not in sys.modules, "exporting the tuning schema imported torch"
"""


def test_training_config_schema_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"PYTHONPATH": str(ROOT / "gpu-runtime"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == COMMITTED.read_text(), (
        "regenerate: PYTHONPATH=gpu-runtime python -m kaito_runtime.tune.export_schema "
        "schemas/runtime/training_config.schema.json"
    )


def test_training_config_schema_refuses_what_the_runtime_refuses() -> None:
    schema = json.loads(COMMITTED.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = {"training_config": {"LoraConfig": {"r": 16}}}
    assert not list(validator.iter_errors(good))
    for bad in (
        {"training_config": {"LoraConfig": {"r": "sixteen"}}},
        {"training_config": {"LoraConfig": {"r": 0}}},  # out of range (ge=1)
        {"training_config": {"LoraConfg": {"r": 8}}},  # unknown section (extra=forbid)
    ):
        assert list(validator.iter_errors(bad)), bad
