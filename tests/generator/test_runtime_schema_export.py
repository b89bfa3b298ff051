"""Drift tests: schemas/runtime/*.schema.json are what the runtime exports (the typed tuning
config, gpu-runtime/kaito_runtime/tune/schema.py; kaito-serve's inference config,
serve/settings.py), exporting needs no torch, and the compiler's packaged copies
(generator/kaito_gen/catalog/runtime_schemas/) are the same bytes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "schemas" / "runtime" / "training_config.schema.json"
PACKAGED = ROOT / "generator" / "kaito_gen" / "catalog" / "runtime_schemas"

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
        "schemas/runtime/training_config.schema.json "
        "generator/kaito_gen/catalog/runtime_schemas/training_config.schema.json"
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


INFERENCE = ROOT / "schemas" / "runtime" / "inference_config.schema.json"
SERVE_SCRIPT = """
import sys
from kaito_runtime.serve.export_schema import inference_config_schema
sys.stdout.write(inference_config_schema())
assert "torch" not in sys.modules, "exporting the inference schema imported torch"
"""


def test_inference_config_schema_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT],
        env={"PYTHONPATH": str(ROOT / "gpu-runtime"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == INFERENCE.read_text(), (
        "regenerate: PYTHONPATH=gpu-runtime python -m kaito_runtime.serve.export_schema "
        "schemas/runtime/inference_config.schema.json "
        "generator/kaito_gen/catalog/runtime_schemas/inference_config.schema.json"
    )


def test_packaged_schemas_equal_the_exported_ones() -> None:
    exported = sorted(p.name for p in (ROOT / "schemas" / "runtime").glob("*.schema.json"))
    assert exported == ["inference_config.schema.json", "training_config.schema.json"]
    assert sorted(p.name for p in PACKAGED.glob("*.schema.json")) == exported
    for name in exported:
        assert (PACKAGED / name).read_bytes() == (ROOT / "schemas" / "runtime" / name).read_bytes(), (
            f"regenerate both: the export module takes schemas/runtime/{name} and "
            f"{PACKAGED.relative_to(ROOT)}/{name} as arguments"
        )


def test_training_schema_lists_the_peft_and_transformers_fields() -> None:
    schema = json.loads(COMMITTED.read_text())
    lora = schema["$defs"]["LoraSection"]
    assert lora["additionalProperties"] is False
    assert {"r", "use_dora", "use_rslora", "modules_to_save"} <= set(lora["properties"])
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors({"training_config": {"LoraConfig": {"rr": 8}}}))
    assert not list(validator.iter_errors({"training_config": {"LoraConfig": {"use_dora": True}}}))
    # kaito-tune sets do_train itself: a config may not pass it through.
    assert list(validator.iter_errors({"training_config": {"TrainingArguments": {"do_train": True}}}))


def test_inference_schema_refuses_what_kaito_serve_refuses() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(INFERENCE.read_text()))
    good = {"transformers": {"max-model-len": 4096, "max_batch_size": 8}, "vllm": {"x": 1}, "other": 1}
    assert not list(validator.iter_errors(good))
    for bad in (
        {"transformers": {"max-model-len": 8}},  # below 16
        {"transformers": {"max-model-len": "4096"}},  # a string
        {"transformers": {"max-batch-size": True}},  # a bool is no integer
        {"transformers": {"combination-type": "sum"}},
        {"transformers": {"max-modle-len": 4096}},  # unknown key
    ):
        assert list(validator.iter_errors(bad)), bad
