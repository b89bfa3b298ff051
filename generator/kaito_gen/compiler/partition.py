"""Resolve-stage rules for ``resource.partition``: MIG slices and accelerator counts on BYO nodes.

Kaito v0.12 (KAITO.md §1.2, §1.7 item 4, §3.1, §3.2, §5.4): a partition needs BYO nodes (checked in
``validate``). ``mode: mig`` names a profile from Kaito's known list; the pod then requests one
``nvidia.com/mig-<profile>`` device (and tolerates that taint) instead of whole GPUs; the estimator
sees "one GPU with the profile's memory", so a model must fit one slice (weights within the slice
memory, and the estimator's GPU count exactly 1: a pod gets one MIG device, they do not pool).
``mode: accelerator`` requests ``count`` of the node's GPUs, and the estimator rescales the node.

kaito-gen is stricter than Kaito's flat profile list where it knows the node's SKU: a profile is
checked against that GPU's own profiles (presets/mig.yaml), so ``3g.47gb`` on an A100 80 GiB is an
error here and not a pod that never schedules.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.catalog.sizing import DEFAULT_CONTEXT, estimate
from kaito_gen.core.errors import FieldPath
from kaito_gen.core.schema_errors import did_you_mean
from kaito_gen.models.mig import MigProfile
from kaito_gen.models.presets import GpuSku, ModelPreset
from kaito_gen.models.workspace import Workspace

PATH: FieldPath = ("resource", "partition")
# Every MIG-capable GPU is Ampere or newer (compute capability >= 8.0), so a slice has bf16.
MIG_COMPUTE_CAPABILITY = "8.0"


class _Ctx(Protocol):
    """What resolve's per-Workspace context offers (a protocol: no import cycle)."""

    ws: Workspace
    catalog: PresetCatalog

    def error(
        self, path: FieldPath, message: str, hint: str = "", code: str = "", soft: bool = False
    ) -> None: ...


@dataclass(frozen=True)
class PartitionPlan:
    """What a partition changes downstream: the devices a pod requests and the GPU view sizing sees."""

    mode: Literal["mig", "accelerator"]
    profile: MigProfile | None  # mode mig
    devices: int  # devices per pod: 1 MIG slice, or `count` GPUs
    resource: str  # nvidia.com/mig-<profile>, or the SKU's GPU resource
    # The GPU view the estimator sizes against (one slice as one GPU, or `count` GPUs);
    # None when it cannot be known (accelerator mode without instanceType) or a check failed.
    sizing_sku: GpuSku | None
    # The share of the node's GPUs one pod takes, for its CPU and memory: `count` GPUs, or a MIG
    # slice's compute slices over the GPU's (1g of an A100's 7 is 1/7 of one GPU).
    gpu_share: Decimal = Decimal(1)

    @property
    def toleration_key(self) -> str | None:
        """MIG devices get their own taint key (Kaito tolerates ``nvidia.com/mig-<profile>``)."""
        return self.resource if self.mode == "mig" else None

    def describe(self) -> str:
        if self.profile is not None:
            return (
                f"MIG slice {self.profile.name} ({self.profile.memory_gib} GiB), resource {self.resource}: 1"
            )
        return f"{self.devices} GPU(s) of the node, resource {self.resource}: {self.devices}"


def slice_sku(profile: MigProfile, sku: GpuSku | None) -> GpuSku:
    """One MIG slice seen as a one-GPU node, the way Kaito's estimator sees it (§3.2)."""
    name = f"{profile.name} MIG slice" + (f" of {sku.name}" if sku else "")
    view = {"name": name, "gpu_count": 1, "gpu_memory_gib": profile.memory_gib, "price_per_hour": None}
    if sku is not None:
        return sku.model_copy(update=view)
    return GpuSku(
        cloud="arc",
        gpu_model="NVIDIA MIG slice",
        gpu_vendor="nvidia",
        compute_capability=MIG_COMPUTE_CAPABILITY,
        nvme=False,
        **view,
    )


def resolve_partition(ctx: _Ctx, model: ModelPreset | None, sku: GpuSku | None) -> PartitionPlan | None:
    """The partition of an inference Workspace, checked against the SKU and the model; None without one."""
    res = ctx.ws.resource
    part = res.partition if res else None
    if part is None:
        return None
    gpu_resource = sku.gpu_resource if sku else "nvidia.com/gpu"
    if part.mode == "accelerator":
        count = part.count or 1
        if sku is not None and count > sku.gpu_count:
            ctx.error(
                (*PATH, "count"),
                f"partition count {count} exceeds the {sku.gpu_count} GPU(s) of a {sku.name} node",
                hint=f"use count between 1 and {sku.gpu_count}",
                code="partition",
            )
            return PartitionPlan("accelerator", None, count, gpu_resource, None, Decimal(count))
        view = sku.model_copy(update={"gpu_count": count}) if sku is not None else None
        return PartitionPlan("accelerator", None, count, gpu_resource, view, Decimal(count))
    if not part.profile:
        return None  # validate reported the missing profile
    profile = _profile(ctx, part.profile, sku)
    if profile is None:
        return None
    ok = model is None or _fits_slice(ctx, model, profile, sku)
    view = slice_sku(profile, sku) if ok else None
    full = max(p.slices for p in ctx.catalog.mig_profiles(sku).values())
    share = Decimal(profile.slices) / Decimal(max(full, profile.slices))
    return PartitionPlan("mig", profile, 1, profile.resource, view, share)


def _profile(ctx: _Ctx, name: str, sku: GpuSku | None) -> MigProfile | None:
    path: FieldPath = (*PATH, "profile")
    known = ctx.catalog.mig_profiles(sku)
    if name in known:
        return known[name]
    if sku is not None and not known:
        ctx.error(
            path,
            f"{sku.name} ({sku.gpu_model}, {sku.gpu_memory_gib} GiB) has no MIG profiles: its GPU cannot be partitioned",
            hint="MIG needs an A30, A100, H100, H200 or B200 node; "
            "or drop resource.partition to use whole GPUs",
            code="partition",
        )
        return None
    names = sorted(known, key=lambda n: (Decimal(n.split(".", 1)[1].removesuffix("gb")), n))
    where = f"on {sku.gpu_model} {sku.gpu_memory_gib} GiB ({sku.name})" if sku else "in the MIG profile table"
    ctx.error(
        path,
        f"MIG profile {name!r} does not exist {where}",
        hint=(did_you_mean(name, names) + " " if did_you_mean(name, names) else "")
        + f"profiles: {', '.join(names)}",
        code="partition",
    )
    return None


def _fits_slice(ctx: _Ctx, model: ModelPreset, profile: MigProfile, sku: GpuSku | None) -> bool:
    """Kaito's admission check (weights within the slice memory), then its estimator on one slice."""
    path: FieldPath = (*PATH, "profile")
    bigger = _bigger_profiles(ctx, model, sku)
    hint = (
        f"a larger slice that fits: {', '.join(bigger)}"
        if bigger
        else "no MIG slice of this GPU fits it; drop resource.partition to use whole GPUs"
    )
    if model.weights_gib > profile.memory_gib:
        ctx.error(
            path,
            f"{model.name} does not fit the MIG slice {profile.name}: its weights need {model.weights_gib} GiB, "
            f"the slice has {profile.memory_gib} GiB",
            hint=hint,
            code="gpu-memory",
            soft=True,
        )
        return False
    sizing = estimate(model, slice_sku(profile, sku), DEFAULT_CONTEXT)
    if sizing.gpus_needed != 1:
        ctx.error(
            path,
            f"{model.name} does not fit the MIG slice {profile.name} ({profile.memory_gib} GiB): "
            f"{sizing.model_gib:.2f} GiB of weights plus {sizing.fixed_per_gpu_gib:.2f} GiB of overhead and "
            f"{DEFAULT_CONTEXT}-token KV cache exceed the {sizing.available_per_gpu_gib:.2f} GiB usable "
            "(a pod gets exactly one MIG device; slices do not pool)",
            hint=hint,
            code="gpu-memory",
            soft=True,
        )
        return False
    return True


def _bigger_profiles(ctx: _Ctx, model: ModelPreset, sku: GpuSku | None) -> list[str]:
    fits = [
        p
        for p in ctx.catalog.mig_profiles(sku).values()
        if model.weights_gib <= p.memory_gib
        and estimate(model, slice_sku(p, sku), DEFAULT_CONTEXT).gpus_needed == 1
    ]
    return [p.name for p in sorted(fits, key=lambda p: (p.memory_gib, p.slices, p.name))[:4]]
