"""Sizing table tests: Kaito's estimator reproduces KAITO.md §2.3's node-count column."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kaito_gen.catalog.sizing import (
    estimate,
    max_context_one_node,
    startup_budget_seconds,
    weights_volume_gib,
)
from kaito_gen.compiler.load import load_presets

CATALOG = load_presets()

# model → nodes on (Standard_NV36ads_A10_v5, Standard_NC24ads_A100_v4, Standard_ND96isr_H100_v5)
# at a 2048-token context, from KAITO.md §2.3 ("nodes A10·A100·8xH100").
KAITO_NODE_COUNTS = {
    "phi-4": (2, 1, 1),
    "phi-3-mini-4k-instruct": (1, 1, 1),
    "phi-3-medium-128k-instruct": (2, 1, 1),
    "qwen2.5-coder-32b-instruct": (4, 2, 1),
    "gpt-oss-120b": (8, 3, 1),
    "llama-3.3-70b-instruct": (9, 3, 1),
    "gemma-3-27b-instruct": (4, 1, 1),
    "deepseek-r1-0528": (39, 11, 2),
}
SKUS = ("Standard_NV36ads_A10_v5", "Standard_NC24ads_A100_v4", "Standard_ND96isr_H100_v5")


@pytest.mark.parametrize("model_name", sorted(KAITO_NODE_COUNTS))
def test_node_counts_match_kaito(model_name: str) -> None:
    model = CATALOG.find_model(model_name)
    assert model is not None
    got = tuple(estimate(model, CATALOG.find_sku(s), 2048).nodes_needed for s in SKUS)  # type: ignore[arg-type]
    assert got == KAITO_NODE_COUNTS[model_name]


def test_phi3_on_v100_arithmetic() -> None:
    model = CATALOG.find_model("phi-3-mini-128k-instruct")
    sku = CATALOG.find_sku("Standard_NC6s_v3")
    assert model is not None and sku is not None
    s = estimate(model, sku, 2048)
    assert s.model_gib == Decimal("7.12") * Decimal("1.02")
    assert s.available_per_gpu_gib == Decimal("16") * Decimal("0.84")
    assert s.kv_cache_gib == Decimal(2048 * 393216) / (1 << 30)
    assert s.gpus_needed == 1 and s.fits_one_node
    assert s.headroom_per_gpu_gib > 0
    # The 128k model cannot hold its full context on 16 GiB: the served length is capped.
    ctx = max_context_one_node(model, sku)
    assert 2048 < ctx < model.context_length and ctx % 256 == 0
    assert estimate(model, sku, ctx).headroom_per_gpu_gib >= 0
    assert estimate(model, sku, ctx + 512).headroom_per_gpu_gib < 0


@pytest.mark.parametrize(
    ("weights", "expected"),
    [("7.12", 30 * 60), ("131.42", 15 * 60 + 2366), ("641.30", 180 * 60)],
    ids=["floor-30min", "llama-70b", "cap-180min"],
)
def test_startup_budget_formula(weights: str, expected: int) -> None:
    model = CATALOG.find_model("phi-4")
    assert model is not None
    assert startup_budget_seconds(model.model_copy(update={"weights_gib": Decimal(weights)})) == expected


def test_weights_volume_has_slack() -> None:
    model = CATALOG.find_model("phi-4")
    assert model is not None
    assert weights_volume_gib(model) >= model.weights_gib * Decimal("1.1")
