"""Resolve-stage rules for the vLLM engine: Kaito's admission checks and its node estimator.

Kaito (KAITO.md §1.7 item 5, §3.2, §3.3): vLLM refuses adapter ``strength``; the node count
comes from the estimator and overrides ``resource.count``; the context the estimator sizes
for is ``vllm.max-model-len`` from the inference config, else 2048 tokens.
"""

from __future__ import annotations

from typing import Protocol

from kaito_gen.catalog.sizing import DEFAULT_CONTEXT, Sizing, estimate
from kaito_gen.core.errors import FieldPath
from kaito_gen.models.presets import GpuSku, ModelPreset
from kaito_gen.models.workspace import Workspace


class _Ctx(Protocol):
    """What resolve's per-Workspace context offers (kept as a protocol: no import cycle)."""

    ws: Workspace

    def error(
        self, path: FieldPath, message: str, hint: str = "", code: str = "", soft: bool = False
    ) -> None: ...


def admit_vllm(ctx: _Ctx, model: ModelPreset) -> None:
    inference = ctx.ws.inference
    for index, adapter in enumerate((inference.adapters or ()) if inference else ()):
        if adapter.strength is not None:
            ctx.error(
                ("inference", "adapters", index, "strength"),
                "vLLM does not support adapter strength",
                hint="remove strength (each adapter is served as its own LoRA model), "
                "or annotate kaito.sh/runtime: transformers to merge adapters with weights",
                code="runtime",
            )


def size_vllm(
    ctx: _Ctx, model: ModelPreset, sku: GpuSku | None, configured: int | None, count: int, mig: bool = False
) -> tuple[Sizing | None, int | None, int, str]:
    """(sizing, max_model_len, node count, why) for a vLLM Workspace. With ``mig``, ``sku`` is one MIG
    slice seen as a one-GPU node, and a model that needs more than one slice is refused (Kaito §3.2)."""
    if sku is None:
        return None, configured, count, f"BYO nodes without instanceType: resource.count={count} node(s)"
    context = configured or DEFAULT_CONTEXT
    sizing = estimate(model, sku, context)
    if sizing.gpus_needed == 0:
        ctx.error(
            ("resource", "instanceType"),
            f"Insufficient GPU memory: on {sku.name} ({sku.gpu_count}x{sku.gpu_memory_gib} GiB) the fixed "
            f"overhead and the KV cache of a {context}-token context leave no room for {model.name}'s weights",
            hint="choose a SKU with more memory per GPU, or lower vllm.max-model-len in the inference config",
            code="gpu-memory",
            soft=True,
        )
        return sizing, configured, count, "no fit"
    nodes = sizing.nodes_needed
    if mig and nodes > 1:
        ctx.error(
            ("resource", "partition", "profile"),
            f"{model.name} needs {sizing.gpus_needed} GPUs of {sku.gpu_memory_gib} GiB at a {context}-token context, "
            f"but a pod gets exactly one MIG slice ({sku.name})",
            hint="choose a larger MIG profile, or lower vllm.max-model-len in the inference config",
            code="gpu-memory",
            soft=True,
        )
        return sizing, configured, 1, "no fit"
    reason = (
        f"Kaito's estimator (vLLM): {sizing.gpus_needed} GPU(s) at a {context}-token context "
        f"= {nodes} node(s) of {sku.gpu_count} GPU(s)"
    )
    given = ctx.ws.resource.count if ctx.ws.resource else None
    if given and given != nodes:
        reason += f"; resource.count={given} is overridden, as Kaito does for vLLM (§3.3)"
    return sizing, configured, nodes, reason
