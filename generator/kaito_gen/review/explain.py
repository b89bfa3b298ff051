"""``kaito-gen explain``: why a Workspace compiles to the SKU, nodes, disk and cost it does.

Every figure is recomputed with :mod:`kaito_gen.catalog.sizing`, the same code the
compiler used, so the explanation cannot drift from the output. Pure: the
resolved workspace and the catalog in, a JSON-able mapping (and its text form)
out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.catalog.sizing import (
    BASE_OVERHEAD_GIB,
    GPU_MEMORY_UTILIZATION,
    OVERHEAD_WEIGHT_FACTOR,
    WEIGHT_EXPANSION,
    q2,
    skus_that_fit,
    startup_budget_seconds,
    weights_volume_gib,
)
from kaito_gen.compiler.resolve import ResolvedWorkspace, hourly_cost, total_gpus
from kaito_gen.compiler.validate import V1ALPHA1_DEFAULT_INSTANCE_TYPE
from kaito_gen.core.errors import UsageError
from kaito_gen.core.schema_errors import did_you_mean
from kaito_gen.models.target import Target


def find_workspace(workspaces: tuple[ResolvedWorkspace, ...], ref: str) -> ResolvedWorkspace:
    """By ``name`` (must be unique across namespaces) or ``namespace/name``."""
    if "/" in ref:
        namespace, _, name = ref.partition("/")
        hits = [rw for rw in workspaces if rw.namespace == namespace and rw.name == name]
    else:
        hits = [rw for rw in workspaces if rw.name == ref]
    if len(hits) == 1:
        return hits[0]
    known = [f"{rw.namespace}/{rw.name}" for rw in workspaces]
    if len(hits) > 1:
        raise UsageError(
            f"workspace {ref!r} exists in several namespaces; name one of: {', '.join(sorted(known))}"
        )
    hint = did_you_mean(ref, [rw.name for rw in workspaces] + known)
    raise UsageError(
        f"no workspace {ref!r} in the sources"
        + (f"; {hint}" if hint else f" (known: {', '.join(sorted(known))})")
    )


def _num(value: Decimal) -> float:
    return float(q2(value))


def _sku_reason(rw: ResolvedWorkspace) -> str:
    res = rw.workspace.resource
    if res is not None and res.instance_type:
        return "named by resource.instanceType"
    if rw.sku is not None and rw.sku.name == V1ALPHA1_DEFAULT_INSTANCE_TYPE:
        return "resource.instanceType unset: the kaito.sh/v1alpha1 CRD default"
    return "none: BYO nodes selected by resource.labelSelector"


def explain(rw: ResolvedWorkspace, catalog: PresetCatalog, target: Target) -> dict[str, Any]:
    """The explanation as plain data (the --json form)."""
    out: dict[str, Any] = {
        "workspace": f"{rw.namespace}/{rw.name}",
        "mode": rw.mode,
        "source": rw.input.doc.file,
        "provisioner": rw.provisioner,
    }
    if rw.mode == "inference":
        out["engine"] = {"name": rw.engine, "reason": rw.engine_reason}
    model = rw.model
    if model is not None and rw.mode == "inference":
        from kaito_gen.catalog.dtype import dtype_reason

        out["dtype"] = {"name": rw.dtype, "reason": dtype_reason(model, rw.sku)}
    if model is not None:
        out["model"] = {
            "name": model.name,
            "hfRepo": model.hf_repo,
            "weightsGiB": _num(model.weights_gib),
            "contextLength": model.context_length,
            "kvBytesPerToken": model.kv_bytes_per_token,
        }
    sku = rw.sku
    if sku is not None:
        out["sku"] = {
            "name": sku.name,
            "gpuModel": sku.gpu_model,
            "gpuCount": sku.gpu_count,
            "gpuMemoryGiB": _num(sku.gpu_memory_gib),
            "nvme": sku.nvme,
            "reason": _sku_reason(rw),
        }
        if model is not None and rw.mode == "inference":
            fits = skus_that_fit(
                model, catalog.skus_for(sku.cloud), rw.sizing.context if rw.sizing else 2048, one_node=True
            )
            if fits:
                smallest, _ = fits[0]
                out["sku"]["smallestFit"] = smallest.name
    if rw.partition is not None:
        part = rw.partition
        out["partition"] = {
            "mode": part.mode,
            "profile": part.profile.name if part.profile else None,
            "memoryGiB": _num(part.profile.memory_gib) if part.profile else None,
            "resource": part.resource,
            "devicesPerPod": part.devices,
            "reason": part.describe(),
        }
    sizing = rw.sizing
    if sizing is not None:
        out["sizing"] = {
            "context": sizing.context,
            # The GPU view the estimator used: the SKU's GPUs, or one MIG slice as one GPU.
            "gpuCount": sizing.sku.gpu_count,
            "gpuMemoryGiB": _num(sizing.sku.gpu_memory_gib),
            "weightsGiB": _num(sizing.model_gib),
            "kvCacheGiB": _num(sizing.kv_cache_gib),
            "availablePerGpuGiB": _num(sizing.available_per_gpu_gib),
            "fixedPerGpuGiB": _num(sizing.fixed_per_gpu_gib),
            "weightsPerGpuGiB": _num(sizing.weights_per_gpu_gib),
            "gpusNeeded": sizing.gpus_needed,
            "headroomPerGpuGiB": _num(sizing.headroom_per_gpu_gib),
            "fitsOneNode": sizing.fits_one_node,
        }
    out["nodes"] = {
        "count": rw.node_count,
        "reason": rw.node_count_reason,
        "gpusPerNode": rw.gpus_per_node,
        "totalGpus": total_gpus(rw),
    }
    if model is not None:
        pvc = bool(target.weights_storage_class and sku is not None and sku.nvme)
        out["disk"] = (
            {
                "kind": "PersistentVolumeClaim",
                "sizeGiB": model.disk_gib,
                "storageClass": target.weights_storage_class,
            }
            if pvc
            else {"kind": "emptyDir", "sizeGiB": weights_volume_gib(model)}
        )
        out["startupBudgetSeconds"] = startup_budget_seconds(model)
    from kaito_gen.review.setexplain import explain_set

    iset = explain_set(rw, target)
    if iset is not None:
        out["inferenceSet"] = iset
    cost = hourly_cost(rw)
    prices = catalog.prices
    out["cost"] = {
        "perNodeHour": _num(sku.price_per_hour)
        if sku is not None and sku.price_per_hour is not None
        else None,
        "perHour": _num(cost) if cost is not None else None,
        "currency": prices.currency if prices else None,
        "source": prices.source if prices else None,
        "asOf": prices.as_of if prices else None,
    }
    return out


def render_text(data: dict[str, Any]) -> str:
    """The human form: each figure with the arithmetic that produced it."""
    lines = [f"workspace {data['workspace']} ({data['mode']}, from {data['source']})"]
    engine = data.get("engine")
    if engine:
        lines.append(f"engine     {engine['name']} ({engine['reason']})")
    if data.get("dtype"):
        lines.append(f"dtype      {data['dtype']['reason']}")
    model = data.get("model")
    if model:
        lines.append(
            f"model      {model['name']} ({model['hfRepo']}): {model['weightsGiB']} GiB weights, "
            f"{model['contextLength']}-token context, {model['kvBytesPerToken']} KV bytes/token"
        )
    sku = data.get("sku")
    if sku:
        lines.append(
            f"sku        {sku['name']}: {sku['gpuCount']} x {sku['gpuModel']} {sku['gpuMemoryGiB']} GiB"
            f"{', NVMe' if sku['nvme'] else ''} ({sku['reason']})"
        )
        if sku.get("smallestFit") and sku["smallestFit"] != sku["name"]:
            lines.append(f"           smallest SKU of this cloud that fits: {sku['smallestFit']}")
    else:
        lines.append(f"sku        none ({data['provisioner']} nodes)")
    part = data.get("partition")
    if part:
        lines.append(f"partition  {part['reason']}")
    sizing = data.get("sizing")
    if sizing and model:
        n = sizing["gpuCount"]
        lines += [
            f"sizing     at a {sizing['context']}-token context:",
            f"  weights    {model['weightsGiB']} GiB x {WEIGHT_EXPANSION} = {sizing['weightsGiB']} GiB",
            f"  KV cache   {sizing['context']} tokens x {model['kvBytesPerToken']} B = {sizing['kvCacheGiB']} GiB",
            f"  per GPU    {sizing['gpuMemoryGiB']} GiB x {GPU_MEMORY_UTILIZATION} = {sizing['availablePerGpuGiB']} GiB usable",
            f"  overhead   {BASE_OVERHEAD_GIB} GiB + KV {sizing['kvCacheGiB']} GiB / {n} GPU(s) = {sizing['fixedPerGpuGiB']} GiB per GPU",
            f"  for weights ({sizing['availablePerGpuGiB']} - {sizing['fixedPerGpuGiB']}) / {1 + OVERHEAD_WEIGHT_FACTOR}"
            f" = {sizing['weightsPerGpuGiB']} GiB per GPU",
            f"  GPUs       floor({sizing['weightsGiB']} / {sizing['weightsPerGpuGiB']}) + 1 = {sizing['gpusNeeded']}"
            f" of {n} per node ({'fits' if sizing['fitsOneNode'] else 'does NOT fit'} one node)",
            f"  headroom   {sizing['headroomPerGpuGiB']} GiB free per GPU with the weights spread over {n} GPU(s)",
        ]
    nodes = data["nodes"]
    lines.append(
        f"nodes      {nodes['count']} x {nodes['gpusPerNode']} GPU(s) = {nodes['totalGpus']} GPU(s): {nodes['reason']}"
    )
    disk = data.get("disk")
    if disk:
        where = (
            f"PVC of StorageClass {disk['storageClass']}"
            if disk["kind"] == "PersistentVolumeClaim"
            else "emptyDir"
        )
        lines.append(f"disk       {disk['sizeGiB']} GiB weights volume ({where})")
        budget = data["startupBudgetSeconds"]
        lines.append(f"startup    {budget} s ({budget // 60} min) before the startup probe gives up")
    if data.get("inferenceSet"):
        from kaito_gen.review.setexplain import set_lines

        lines += set_lines(data["inferenceSet"])
    cost = data["cost"]
    if cost["perHour"] is not None:
        lines.append(
            f"cost       {cost['perNodeHour']} x {nodes['count']} node(s) = {cost['perHour']} {cost['currency']}/h"
            f" (list price: {cost['source']}, as of {cost['asOf']})"
        )
    else:
        lines.append("cost       unknown (no price for this SKU in the GPU table)")
    return "\n".join(lines) + "\n"
