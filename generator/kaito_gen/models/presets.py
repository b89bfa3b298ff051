"""Preset tables: models and GPU SKUs (presets/*.yaml). Data, validated at load."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from kaito_gen.models.base import Frozen

Cloud = Literal["azure", "aws", "arc"]
HF_REVISION_PATTERN = r"^[0-9a-f]{40}$"


class ModelRuntime(Frozen):
    transformers: StrictBool
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    trust_remote_code: StrictBool
    chat_template: StrictStr | None = None


class ModelTuning(Frozen):
    lora_gpu_memory_gib: Decimal = Field(alias="loraGpuMemoryGiB", gt=0)
    qlora_gpu_memory_gib: Decimal = Field(alias="qloraGpuMemoryGiB", gt=0)
    disk_gib: StrictInt = Field(alias="diskGiB", gt=0)
    target_modules: tuple[StrictStr, ...] = Field(min_length=1)


class ModelPreset(Frozen):
    name: StrictStr = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    hf_repo: StrictStr = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    revision: StrictStr = Field(pattern=HF_REVISION_PATTERN)
    architecture: StrictStr
    family: StrictStr
    weights_gib: Decimal = Field(alias="weightsGiB", gt=0)
    context_length: StrictInt = Field(gt=0)
    kv_bytes_per_token: StrictInt = Field(gt=0)
    attention: Literal["MHA", "GQA", "MQA", "MLA"]
    dtype: Literal["bfloat16", "float16", "float32"]
    quantization: StrictStr | None = None
    download_auth_required: StrictBool
    deprecated: StrictBool
    runtime: ModelRuntime
    tuning: ModelTuning | None = None

    @property
    def disk_gib(self) -> int:
        # Kaito's generator: DiskStorageRequirement = int(modelFileSizeGi + 80).
        return int(self.weights_gib) + 80


class ModelPresetTable(Frozen):
    api_version: Literal["kaito-gen.io/v1alpha1"]
    kind: Literal["ModelPresetTable"]
    models: tuple[ModelPreset, ...]


class GpuSku(Frozen):
    name: StrictStr
    cloud: Cloud
    gpu_model: StrictStr
    gpu_vendor: Literal["nvidia", "amd", "aws-neuron"]
    gpu_count: StrictInt = Field(gt=0)
    gpu_memory_gib: Decimal = Field(alias="gpuMemoryGiB", gt=0)
    compute_capability: StrictStr | None = Field(default=None, pattern=r"^\d+\.\d+$")
    nvme: StrictBool
    price_per_hour: Decimal | None = Field(default=None, ge=0)

    @property
    def total_memory_gib(self) -> Decimal:
        return self.gpu_memory_gib * self.gpu_count

    @property
    def supports_bf16(self) -> bool:
        # bf16 needs Ampere (compute capability 8.0) or newer; the seeds' V100 is 7.0.
        if self.compute_capability is None:
            return False
        return int(self.compute_capability.split(".")[0]) >= 8

    @property
    def gpu_resource(self) -> str:
        """The extended resource the device plugin advertises for this vendor."""
        return {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu", "aws-neuron": "aws.amazon.com/neuron"}[
            self.gpu_vendor
        ]


class PriceInfo(Frozen):
    currency: StrictStr
    source: StrictStr
    as_of: StrictStr


class GpuSkuTable(Frozen):
    api_version: Literal["kaito-gen.io/v1alpha1"]
    kind: Literal["GpuSkuTable"]
    prices: PriceInfo | None = None
    skus: tuple[GpuSku, ...]
