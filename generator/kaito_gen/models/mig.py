"""MIG profile table (presets/mig.yaml): which NVIDIA MIG slices exist on which GPU, and their memory."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, StrictInt, StrictStr

from kaito_gen.models.base import Frozen

# Kaito's pkg/utils/mig/mig.go: `<slices>g.<memory>gb`, the mixed-strategy resource name suffix.
MIG_PROFILE_PATTERN = r"^[1-9]\d*g\.\d+(?:\.\d+)?gb$"
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"


class MigProfile(Frozen):
    name: StrictStr = Field(pattern=MIG_PROFILE_PATTERN)
    memory_gib: Decimal = Field(alias="memoryGiB", gt=0)
    slices: StrictInt = Field(ge=1, le=8)  # compute slices (the `Ng` part)

    @property
    def resource(self) -> str:
        return MIG_RESOURCE_PREFIX + self.name


class MigGpu(Frozen):
    """One MIG-capable GPU, matched to SKU rows by ``gpuModel`` and per-GPU ``gpuMemoryGiB``."""

    gpu_model: StrictStr
    gpu_memory_gib: Decimal = Field(alias="gpuMemoryGiB", gt=0)
    profiles: tuple[MigProfile, ...] = Field(min_length=1)


class MigProfileTable(Frozen):
    api_version: Literal["kaito-gen.io/v1alpha1"]
    kind: Literal["MigProfileTable"]
    gpus: tuple[MigGpu, ...]
