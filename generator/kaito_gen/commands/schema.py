"""JSON Schemas of kaito-gen's inputs, generated from the pydantic models (``kaito-gen schema``).

The committed copies under ``schemas/`` serve editors (``# yaml-language-server:
$schema=...``) and CI; ``kaito-gen schema --check`` and a test fail when they drift
from the models. Output is deterministic: sorted keys, two-space indent, trailing
newline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from kaito_gen.commands.common import EXIT_CODES_HELP, guarded, note
from kaito_gen.compiler.write import unified_diff
from kaito_gen.config import Config
from kaito_gen.core.errors import ExitCode, OutputError
from kaito_gen.models.inferenceset import InferenceSet
from kaito_gen.models.mig import MigProfileTable
from kaito_gen.models.presets import GpuSkuTable, ModelPresetTable
from kaito_gen.models.workspace import Workspace

DRAFT = "https://json-schema.org/draft/2020-12/schema"
WORKSPACE_FILE = "workspace.schema.json"
CONFIG_FILE = "kaito-gen.schema.json"
PRESETS_FILE = "presets.schema.json"
INFERENCESET_FILE = "inferenceset.schema.json"


def _one(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = DRAFT
    schema["title"] = title
    schema["description"] = description
    return schema


def _presets() -> dict[str, Any]:
    refs, top = models_json_schema(
        [(ModelPresetTable, "validation"), (GpuSkuTable, "validation"), (MigProfileTable, "validation")],
        by_alias=True,
    )
    return {
        "$schema": DRAFT,
        "title": "kaito-gen preset table",
        "description": "A model preset table (kind ModelPresetTable), a GPU SKU table (kind GpuSkuTable) "
        "or a MIG profile table (kind MigProfileTable).",
        "oneOf": [
            refs[(ModelPresetTable, "validation")],
            refs[(GpuSkuTable, "validation")],
            refs[(MigProfileTable, "validation")],
        ],
        "$defs": top.get("$defs", {}),
    }


def schemas() -> dict[str, dict[str, Any]]:
    return {
        WORKSPACE_FILE: _one(
            Workspace,
            "Kaito Workspace (kaito.sh/v1alpha1 and kaito.sh/v1beta1) as kaito-gen reads it",
            "Both apiVersions share one shape; version-specific rules are checked by `kaito-gen validate`.",
        ),
        INFERENCESET_FILE: _one(
            InferenceSet,
            "Kaito InferenceSet (kaito.sh/v1alpha1 and kaito.sh/v1beta1) as kaito-gen reads it",
            "spec.template is checked with the Workspace rules by `kaito-gen validate`.",
        ),
        CONFIG_FILE: _one(Config, "kaito-gen.yaml", "The kaito-gen repo config (kind Config)."),
        PRESETS_FILE: _presets(),
    }


def schema_texts() -> dict[str, str]:
    """``{file name: text}``, byte-for-byte stable."""
    return {
        name: json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, body in schemas().items()
    }


@click.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--dir",
    "directory",
    default=Path("schemas"),
    show_default=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the schema files live.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files differ from the models.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@guarded
def schema(directory: Path, check: bool, quiet: bool) -> None:
    """Write the JSON Schemas of Workspace and InferenceSet (both apiVersions), kaito-gen.yaml and the preset tables."""
    texts = schema_texts()
    if check:
        current = {
            name: (directory / name).read_text(encoding="utf-8") if (directory / name).is_file() else ""
            for name in texts
        }
        drift = unified_diff(current, texts)
        if drift:
            click.echo(drift, nl=False)
            click.echo(
                f"kaito-gen: {directory} is out of date; run `kaito-gen schema` and commit the result",
                err=True,
            )
            sys.exit(int(ExitCode.DRIFT))
        note(f"{directory}: {len(texts)} schemas up to date", quiet, "green")
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (directory / name).write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        raise OutputError(f"cannot write {directory}: {exc}") from exc
    note(f"wrote {len(texts)} schemas to {directory}", quiet, "green")
