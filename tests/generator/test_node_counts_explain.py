"""Every row of ../shared/reference/kaito-node-counts.tsv: `explain` reports Kaito's node count."""

from __future__ import annotations

from pathlib import Path

import pytest
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.resolve import resolve
from kaito_gen.compiler.validate import validate
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target
from kaito_gen.review.explain import explain

CATALOG = load_presets()
TSV = Path(__file__).resolve().parents[3] / "shared" / "reference" / "kaito-node-counts.tsv"


def rows() -> list[tuple[str, str, str, int, int]]:
    out = []
    for line in TSV.read_text().splitlines():
        if line.startswith("#") or line.startswith("model\t") or not line.strip():
            continue
        model, sku, user, nodes, context = line.split("\t")
        out.append((model, sku, user, int(nodes), int(context)))
    assert len(out) == 31
    return out


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r[0]}@{r[1]}")
def test_explain_gives_kaitos_node_count(row: tuple[str, str, str, int, int]) -> None:
    model_name, sku_name, user, nodes, context = row
    model, sku = CATALOG.find_model(model_name), CATALOG.find_sku(sku_name)
    assert model is not None and sku is not None, row
    lines = [
        "apiVersion: kaito.sh/v1beta1",
        "kind: Workspace",
        "metadata:",
        "  name: ws",
        "  namespace: ml",
        "  annotations:",
        "    kaito.sh/runtime: vllm",
        "resource:",
        f"  instanceType: {sku_name}",
        *([f"  count: {user}"] if user else []),
        "  labelSelector:",
        "    matchLabels:",
        "      apps: ws",
        "inference:",
        "  preset:",
        f"    name: {model_name}",
        *(["    presetOptions:", "      modelAccessSecret: hf"] if model.download_auth_required else []),
    ]
    if context != 2048:
        lines += [
            "  config: cfg",
            "---",
            "apiVersion: v1",
            "kind: ConfigMap",
            "metadata:",
            "  name: cfg",
            "  namespace: ml",
            "data:",
            "  inference_config.yaml: |",
            "    vllm:",
            f"      max-model-len: {context}",
        ]
    cloud = "aws" if sku.cloud == "aws" else "azure"
    target = Target(cloud=cloud)
    docs, problems = parse_documents("ws.yaml", "\n".join(lines) + "\n")
    resolved = resolve(validate(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), target), CATALOG, target)
    assert not [d for d in resolved.diagnostics if d.is_error], resolved.diagnostics
    data = explain(resolved.workspaces[0], CATALOG, target)
    assert data["nodes"]["count"] == nodes, (row, data["nodes"])
