"""Preset tables: models and GPU SKUs (presets/*.yaml). Data, validated at load."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, model_validator

from kaito_gen.models.base import Frozen

Cloud = Literal["azure", "aws", "arc"]
HF_REVISION_PATTERN = r"^[0-9a-f]{40}$"
UNPINNED = "unpinned"  # explicit `revision` value of a row whose commit is not known yet
Engine = Literal["vllm", "transformers"]


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
    """One catalog row (presets/models.yaml).

    ``revision``: the HF commit (40 hex) the weights are pinned to, or the explicit value
    ``unpinned`` (Kaito knows no commit; render warns and names ``kaito-gen presets pin <name>``;
    ``--require-pinned`` makes it an error). Use ``pinned_revision`` to pass it to an engine.
    ``engines``: the serving engines this model may run on (``vllm``, ``transformers``), with
    ``engines_reason`` saying why; when omitted it is vLLM plus transformers iff
    ``runtime.transformers``. ``default_engine``: the engine when a Workspace names none (None:
    transformers where supported, else vLLM). The per-model vLLM flags (parsers, chat template, load format,
    extras) are derived from name/family/quantization by ``catalog/vllmparams.py``.
    """

    name: StrictStr = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    hf_repo: StrictStr = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    revision: StrictStr = Field(pattern=rf"^(?:[0-9a-f]{{40}}|{UNPINNED})$")
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
    engines: tuple[Engine, ...] | None = Field(default=None, min_length=1)
    engines_reason: StrictStr | None = None
    # The engine a Workspace without kaito.sh/runtime gets; None: transformers where supported.
    default_engine: Engine | None = None

    @model_validator(mode="after")
    def _engines_agree(self) -> ModelPreset:
        if self.engines is not None and ("transformers" in self.engines) != self.runtime.transformers:
            raise ValueError("engines lists transformers exactly when runtime.transformers is true")
        if self.default_engine is not None and self.default_engine not in self.supported_engines:
            raise ValueError(f"defaultEngine {self.default_engine} is not among the supported engines")
        return self

    @property
    def supported_engines(self) -> tuple[Engine, ...]:
        if self.engines is not None:
            return self.engines
        return ("vllm", "transformers") if self.runtime.transformers else ("vllm",)

    @property
    def pinned(self) -> bool:
        return self.revision != UNPINNED

    @property
    def pinned_revision(self) -> str | None:
        """The commit to pass to the engine (``--revision``), or None when unpinned."""
        return self.revision if self.pinned else None

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
    # The node's published vCPUs and memory (GiB); kaito_gen.catalog.allocatable derives what the
    # kubelet leaves to pods from them. None (user tables): no CPU/memory limits can be derived.
    node_cpus: StrictInt | None = Field(default=None, gt=0, le=4096)
    node_memory_gib: Decimal | None = Field(default=None, alias="nodeMemoryGiB", gt=0, le=65536)
    price_per_hour: Decimal | None = Field(default=None, ge=0)
    # Where the row comes from when not Kaito HEAD (e.g. "seed-era: ... (V100, Volta)").
    generation: StrictStr | None = None
    # Why a Workspace may not use this SKU (K80/M60: below the runtime's CUDA build); None = usable.
    refused: StrictStr | None = None

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
