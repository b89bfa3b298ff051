"""The weights dtype per GPU family: bf16 needs Ampere (compute capability 8.0) or newer.

V100 (Volta, 7.0) and T4 (Turing, 7.5) have no bf16, so a bf16 checkpoint runs in float16 there,
also when the preset asks for ``auto`` (which would keep the checkpoint's bf16).
"""

from __future__ import annotations

from kaito_gen.models.presets import GpuSku, ModelPreset


def serve_dtype(model: ModelPreset | None, sku: GpuSku | None) -> str:
    if model is None:
        return "auto"
    dtype = model.runtime.dtype
    bf16 = dtype == "bfloat16" or (dtype == "auto" and model.dtype == "bfloat16")
    if bf16 and sku is not None and not sku.supports_bf16:
        return "float16"
    return dtype


def dtype_reason(model: ModelPreset, sku: GpuSku | None) -> str:
    """One line for `explain`: why this dtype."""
    chosen = serve_dtype(model, sku)
    if sku is not None and chosen == "float16" and model.runtime.dtype != "float16":
        return (
            f"float16: {sku.gpu_model} (compute capability {sku.compute_capability}) has no bfloat16; "
            f"the {model.dtype} checkpoint is cast"
        )
    return f"{chosen}: the preset's runtime dtype"
