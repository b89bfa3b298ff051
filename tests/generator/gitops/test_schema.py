"""The committed JSON Schemas match the models; `kaito-gen schema --check` catches drift."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from gitops_support import REPO_ROOT, SEEDS, Invoke
from kaito_gen.commands.schema import CONFIG_FILE, PRESETS_FILE, WORKSPACE_FILE, schema_texts

SCHEMAS = REPO_ROOT / "schemas"


def test_committed_schemas_are_current() -> None:
    for name, text in schema_texts().items():
        path = SCHEMAS / name
        assert path.is_file(), f"{path} missing: run `kaito-gen schema`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} drifted from the models: run `kaito-gen schema`"
        )


def test_schemas_accept_the_examples() -> None:
    texts = schema_texts()
    workspace = json.loads(texts[WORKSPACE_FILE])
    for doc in yaml.safe_load_all(SEEDS.read_text()):
        jsonschema.validate(doc, workspace)
    config = json.loads(texts[CONFIG_FILE])
    jsonschema.validate(yaml.safe_load((REPO_ROOT / "examples/kaito-gen.yaml").read_text()), config)
    presets = json.loads(texts[PRESETS_FILE])
    for table in sorted((REPO_ROOT / "presets").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(table.read_text()), presets)
    bad = {"apiVersion": "kaito-gen.io/v1alpha1", "kind": "Config", "clod": "azure"}
    assert list(jsonschema.Draft202012Validator(config).iter_errors(bad))


def test_schema_check_exit_codes(tmp_path: Path, invoke: Invoke) -> None:
    target = tmp_path / "schemas"
    assert invoke("schema", "--check", "--dir", str(target)).exit_code == 1
    assert invoke("schema", "-q", "--dir", str(target)).exit_code == 0
    assert invoke("schema", "--check", "--dir", str(target)).exit_code == 0
    path = target / CONFIG_FILE
    path.write_text(path.read_text().replace('"Config"', '"Konfig"'))
    result = invoke("schema", "--check", "--dir", str(target))
    assert result.exit_code == 1
    assert f"b/{CONFIG_FILE}" in result.stdout and "out of date" in result.stderr
