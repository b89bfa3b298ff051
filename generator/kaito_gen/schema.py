"""JSON Schemas of kaito-gen's inputs, generated from the pydantic models (``kaito-gen schema``).

The committed copies under ``schemas/`` serve editors (``# yaml-language-server:
$schema=...``) and CI; ``kaito-gen schema --check`` and a test fail when they drift
from the models. Output is deterministic: sorted keys, two-space indent, trailing
newline.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .config import Config
from .models.presets import GpuSkuTable, ModelPresetTable
from .models.workspace import Workspace

DRAFT = "https://json-schema.org/draft/2020-12/schema"
WORKSPACE_FILE = "workspace.schema.json"
CONFIG_FILE = "kaito-gen.schema.json"
PRESETS_FILE = "presets.schema.json"


def _one(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = DRAFT
    schema["title"] = title
    schema["description"] = description
    return schema


def _presets() -> dict[str, Any]:
    refs, top = models_json_schema(
        [(ModelPresetTable, "validation"), (GpuSkuTable, "validation")], by_alias=True
    )
    return {
        "$schema": DRAFT,
        "title": "kaito-gen preset table",
        "description": "A model preset table (kind ModelPresetTable) or a GPU SKU table (kind GpuSkuTable).",
        "oneOf": [refs[(ModelPresetTable, "validation")], refs[(GpuSkuTable, "validation")]],
        "$defs": top.get("$defs", {}),
    }


def schemas() -> dict[str, dict[str, Any]]:
    return {
        WORKSPACE_FILE: _one(
            Workspace,
            "Kaito Workspace (kaito.sh/v1alpha1 and kaito.sh/v1beta1) as kaito-gen reads it",
            "Both apiVersions share one shape; version-specific rules are checked by `kaito-gen validate`.",
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
