"""GPU sizing: Kaito's node estimator (KAITO.md §3.2) and sizing guide (§2.5).

Pure Decimal arithmetic, so the same inputs give the same figures on every
machine. The constants are Kaito's (``pkg/workspace/estimator/nodesestimator``)::

    model     = weights × 1.02                     (weights occupy ≈102 % of safetensors)
    available = per-GPU memory × 0.84              (gpuMemoryUtilization)
    fixed     = 2.3 GiB + ctx × bytes/token / GPUs (CUDA context, activations, KV cache)
    forWeights= (available − fixed) / 1.05         (overheadWeightFactor)
    minGPUs   = floor(model / forWeights) + 1
    nodes     = ceil(minGPUs / GPUs per node)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from kaito_gen.models.presets import GpuSku, ModelPreset

GPU_MEMORY_UTILIZATION = Decimal("0.84")
WEIGHT_EXPANSION = Decimal("1.02")
BASE_OVERHEAD_GIB = Decimal("2.3")
OVERHEAD_WEIGHT_FACTOR = Decimal("0.05")
DEFAULT_CONTEXT = 2048
GIB = 1 << 30
# Round served context lengths down to this granularity (keeps the flag stable).
CONTEXT_STEP = 256


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def q2(value: Decimal) -> Decimal:
    """Two decimals, for display."""
    return value.quantize(Decimal("0.01"))


@dataclass(frozen=True)
class Sizing:
    """The estimator's arithmetic for one model on one SKU at one context length."""

    sku: GpuSku
    context: int
    model_gib: Decimal  # weights × 1.02
    kv_cache_gib: Decimal  # context × bytes/token, whole node
    available_per_gpu_gib: Decimal  # per-GPU memory × 0.84
    fixed_per_gpu_gib: Decimal  # 2.3 GiB + KV share
    weights_per_gpu_gib: Decimal  # what each GPU can hold for weights (≤ 0 means nothing fits)
    gpus_needed: int  # 0 when even the fixed overhead does not fit
    nodes_needed: int

    @property
    def fits_one_node(self) -> bool:
        return 0 < self.gpus_needed <= self.sku.gpu_count

    @property
    def headroom_per_gpu_gib(self) -> Decimal:
        """Free memory per GPU once weights are spread over all GPUs of one node."""
        used = self.fixed_per_gpu_gib + self.model_gib * (1 + OVERHEAD_WEIGHT_FACTOR) / self.sku.gpu_count
        return self.sku.gpu_memory_gib * GPU_MEMORY_UTILIZATION - used


def estimate(model: ModelPreset, sku: GpuSku, context: int = DEFAULT_CONTEXT) -> Sizing:
    model_gib = model.weights_gib * WEIGHT_EXPANSION
    kv_gib = Decimal(context * model.kv_bytes_per_token) / GIB
    available = sku.gpu_memory_gib * GPU_MEMORY_UTILIZATION
    fixed = BASE_OVERHEAD_GIB + kv_gib / sku.gpu_count
    for_weights = (available - fixed) / (1 + OVERHEAD_WEIGHT_FACTOR)
    if for_weights <= 0:
        return Sizing(sku, context, model_gib, kv_gib, available, fixed, for_weights, 0, 0)
    gpus = _floor(model_gib / for_weights) + 1
    nodes = _ceil(Decimal(gpus) / sku.gpu_count)
    return Sizing(sku, context, model_gib, kv_gib, available, fixed, for_weights, gpus, nodes)


def max_context_one_node(model: ModelPreset, sku: GpuSku) -> int:
    """Largest context whose KV cache fits beside the weights on one node (§2.5),
    capped at the model's own limit and rounded down to CONTEXT_STEP. 0 if none."""
    available = sku.gpu_memory_gib * GPU_MEMORY_UTILIZATION * sku.gpu_count
    fixed = BASE_OVERHEAD_GIB * sku.gpu_count
    weights = model.weights_gib * WEIGHT_EXPANSION * (1 + OVERHEAD_WEIGHT_FACTOR)
    spare_bytes = (available - fixed - weights) * GIB
    if spare_bytes <= 0:
        return 0
    tokens = min(_floor(spare_bytes / model.kv_bytes_per_token), model.context_length)
    if tokens >= model.context_length:
        return model.context_length
    return (tokens // CONTEXT_STEP) * CONTEXT_STEP


def startup_budget_seconds(model: ModelPreset) -> int:
    """Kaito's startup timeout: clamp(15 min + weights GiB × 18 s, 30 min, 180 min)."""
    seconds = Decimal(15 * 60) + model.weights_gib * 18
    return max(30 * 60, min(180 * 60, _ceil(seconds)))


def weights_volume_gib(model: ModelPreset) -> int:
    """Scratch space for downloaded weights: 10 % slack plus 10 GiB for the HF cache."""
    return _ceil(model.weights_gib * Decimal("1.1")) + 10


def skus_that_fit(
    model: ModelPreset, skus: list[GpuSku], context: int, *, one_node: bool, max_nodes: int = 16
) -> list[tuple[GpuSku, Sizing]]:
    """SKUs on which the model fits, smallest (fewest GPUs, least memory, cheapest) first."""
    fits: list[tuple[GpuSku, Sizing]] = []
    for sku in skus:
        if sku.gpu_vendor != "nvidia":
            continue
        sizing = estimate(model, sku, context)
        if sizing.gpus_needed == 0:
            continue
        if (one_node and sizing.fits_one_node) or (not one_node and 0 < sizing.nodes_needed <= max_nodes):
            fits.append((sku, sizing))
    fits.sort(
        key=lambda item: (item[1].nodes_needed, item[0].total_memory_gib, item[0].gpu_count, item[0].name)
    )
    return fits
