"""`kaito-gen explain` on the seed phi-3 workspace: figures recomputed with kaito_gen.catalog.sizing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from gitops_support import Invoke
from kaito_gen.catalog.sizing import (
    estimate,
    max_context_one_node,
    q2,
    startup_budget_seconds,
    weights_volume_gib,
)
from kaito_gen.compiler.load import load_presets


def test_explain_json_matches_the_sizing_module(repo: Path, invoke: Invoke) -> None:
    result = invoke("explain", "default/workspace-phi-3-mini", "workspaces", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    catalog = load_presets()
    sku = catalog.find_sku("Standard_NC6s_v3")
    model = catalog.find_model("phi-3-mini-4k-instruct")
    assert sku is not None and model is not None
    context = max_context_one_node(model, sku)
    sizing = estimate(model, sku, context)
    assert data["workspace"] == "default/workspace-phi-3-mini"
    assert data["sku"]["name"] == sku.name and data["sku"]["reason"] == "named by resource.instanceType"
    got = data["sizing"]
    assert got["context"] == context
    assert Decimal(str(got["weightsGiB"])) == q2(sizing.model_gib)
    assert Decimal(str(got["kvCacheGiB"])) == q2(sizing.kv_cache_gib)
    assert Decimal(str(got["availablePerGpuGiB"])) == q2(sizing.available_per_gpu_gib)
    assert Decimal(str(got["fixedPerGpuGiB"])) == q2(sizing.fixed_per_gpu_gib)
    assert Decimal(str(got["weightsPerGpuGiB"])) == q2(sizing.weights_per_gpu_gib)
    assert Decimal(str(got["headroomPerGpuGiB"])) == q2(sizing.headroom_per_gpu_gib)
    assert got["gpusNeeded"] == sizing.gpus_needed and got["fitsOneNode"] is True
    assert data["nodes"]["count"] == 1 and data["nodes"]["totalGpus"] == sku.gpu_count
    assert "resource.count unset" in data["nodes"]["reason"]
    assert data["disk"] == {"kind": "emptyDir", "sizeGiB": weights_volume_gib(model)}
    assert data["startupBudgetSeconds"] == startup_budget_seconds(model)
    assert sku.price_per_hour is not None and catalog.prices is not None
    assert Decimal(str(data["cost"]["perHour"])) == q2(sku.price_per_hour)
    assert data["cost"]["asOf"] == catalog.prices.as_of and data["cost"]["source"] == catalog.prices.source


def test_explain_text_shows_the_arithmetic(repo: Path, invoke: Invoke) -> None:
    data = json.loads(invoke("explain", "workspace-phi-3-mini", "workspaces", "--json").stdout)
    result = invoke("explain", "workspace-phi-3-mini", "workspaces")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    s = data["sizing"]
    assert f"= {s['weightsGiB']} GiB" in text
    assert f"{s['context']} tokens x {data['model']['kvBytesPerToken']} B = {s['kvCacheGiB']} GiB" in text
    assert f"+ 1 = {s['gpusNeeded']} of 1 per node (fits one node)" in text
    assert f"{data['cost']['perHour']} USD/h" in text and data["cost"]["asOf"] in text
    assert f"{data['disk']['sizeGiB']} GiB weights volume" in text


def test_explain_unknown_workspace(repo: Path, invoke: Invoke) -> None:
    result = invoke("explain", "workspace-phi-3-mimi", "workspaces")
    assert result.exit_code == 2
    assert (
        "no workspace 'workspace-phi-3-mimi'" in result.stderr
        and "did you mean 'workspace-phi-3-mini'" in result.stderr
    )


def test_explain_tuning_workspace_has_no_inference_sizing(repo: Path, invoke: Invoke) -> None:
    data = json.loads(invoke("explain", "workspace-tuning-phi-3", "workspaces", "--json").stdout)
    assert data["mode"] == "tuning" and "sizing" not in data
    assert data["nodes"]["count"] == 1 and "tuning always runs on exactly 1 node" in data["nodes"]["reason"]
