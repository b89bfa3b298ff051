"""CPU and memory on every container: requests and limits from the SKU's allocatable resources.

The sizes come from :mod:`kaito_gen.catalog.allocatable`; here they are merged with the GPU (or MIG)
extended resources that :func:`~kaito_gen.compiler.emit.common.gpu_resources` sets, which stay
requests == limits as the device plugin requires.
"""

from __future__ import annotations

from collections.abc import Mapping

from kaito_gen.catalog.allocatable import helper_resources, workload_resources
from kaito_gen.compiler.emit.common import Manifest, gpu_resources
from kaito_gen.compiler.plan import WorkspacePlan


def server_resources(plan: WorkspacePlan, extra: Mapping[str, str] | None = None) -> Manifest:
    """The model server's or trainer's resources: its GPUs plus its share of the node's CPU and memory."""
    out = gpu_resources(plan, extra)
    sized = workload_resources(plan.rw.sku, plan.rw.gpu_share).manifest()
    for key in ("requests", "limits"):
        if key in sized:
            out[key] = dict(sorted({**out.get(key, {}), **sized[key]}.items()))
    return dict(sorted(out.items()))


def helper_container_resources(plan: WorkspacePlan) -> Manifest:
    """Init containers and sidecars that pull or push files: small, bounded, no GPU."""
    return helper_resources(plan.rw.sku).manifest()
