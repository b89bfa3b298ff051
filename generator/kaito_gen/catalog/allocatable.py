"""What a GPU node leaves to pods, and the CPU/memory a workload asks for (presets/README.md, "Allocatable").

Input: a :class:`GpuSku` with ``nodeCpus``/``nodeMemoryGiB`` (the instance's published size).
Output: :class:`Allocatable` (capacity minus the kubelet's kube-reserved and eviction threshold,
computed with the managed service's documented formula for the SKU's cloud) and
:class:`PodResources` for the containers. Pure arithmetic, no I/O; the numbers are integers
(millicores, MiB), so a render is byte-for-byte stable.

Sources (the formulas the clouds document for their default node images):

* AKS (``azure``; also ``arc``, AKS on Azure Local uses the same node bootstrap), "Resource
  reservations" in learn.microsoft.com/azure/aks/node-resource-reservations: kube-reserved CPU
  by core count (60m for 1 core, 100m for 2, 140m for 4, 180m for 8, 260m for 16, 420m for 32,
  740m for 64 and more; a core count between two rows takes the larger row), kube-reserved memory
  ``min(20 MiB x maxPods + 50 MiB, 25 % of memory)`` (Kubernetes 1.29 and later), eviction
  threshold ``memory.available<100Mi``. maxPods is 250, the Azure CNI Overlay default that node
  auto-provisioning uses.
* EKS (``aws``), the EKS AMI bootstrap (awslabs/amazon-eks-ami ``nodeadm``/``bootstrap.sh``):
  kube-reserved CPU 6 % of the first core, 1 % of the second, 0.5 % of the third and fourth and
  0.25 % of every further core; kube-reserved memory ``11 MiB x maxPods + 255 MiB``, eviction
  threshold ``memory.available<100Mi``. maxPods is 110 below 30 vCPUs and 250 from 30 on (the
  caps of EKS's max-pods calculator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from kaito_gen.models.presets import GpuSku

EVICTION_MIB = 100
AKS_MAX_PODS = 250
AKS_CPU_TIERS: tuple[tuple[int, int], ...] = (
    (1, 60),
    (2, 100),
    (4, 140),
    (8, 180),
    (16, 260),
    (32, 420),
    (64, 740),
)
# Requests are this share of the limits: the rest of the node stays free for the DaemonSets
# that run on every GPU node (device plugin, CNI, CSI, kube-proxy, log and metrics agents).
REQUEST_NUMERATOR, REQUEST_DENOMINATOR = 3, 4
# Helper containers (adapter and data pullers, the adapter pusher) move files, they compute nothing.
HELPER_REQUESTS = (250, 512)  # millicores, MiB
HELPER_LIMITS = (2000, 4096)
# Without a known SKU (BYO nodes without resource.instanceType) only requests can be set: enough
# to make the pod Burstable, never BestEffort; a limit would be a guess about an unknown node.
UNKNOWN_NODE_REQUESTS = (2000, 8192)


@dataclass(frozen=True)
class Allocatable:
    cpu_millis: int
    memory_mib: int


@dataclass(frozen=True)
class PodResources:
    """CPU (millicores) and memory (MiB) for one container; limits None = not set."""

    requests: tuple[int, int]
    limits: tuple[int, int] | None

    def manifest(self) -> dict[str, dict[str, str]]:
        out = {
            "requests": {"cpu": cpu_quantity(self.requests[0]), "memory": memory_quantity(self.requests[1])}
        }
        if self.limits is not None:
            out["limits"] = {"cpu": cpu_quantity(self.limits[0]), "memory": memory_quantity(self.limits[1])}
        return out


def cpu_quantity(millis: int) -> str:
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(mib: int) -> str:
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _aks_cpu_reserved(cores: int) -> int:
    for tier, millis in AKS_CPU_TIERS:
        if cores <= tier:
            return millis
    return AKS_CPU_TIERS[-1][1]


def _eks_cpu_reserved(cores: int) -> int:
    # Tenths of a millicore, so 0.25 % of a core stays an integer.
    tenths = 600 + (100 if cores >= 2 else 0) + 50 * min(max(cores - 2, 0), 2) + 25 * max(cores - 4, 0)
    return math.ceil(tenths / 10)


def reserved(sku: GpuSku) -> Allocatable | None:
    """The kubelet's kube-reserved CPU and memory plus the eviction threshold, or None if unknown."""
    if sku.node_cpus is None or sku.node_memory_gib is None:
        return None
    memory_mib = int(sku.node_memory_gib * 1024)
    cores = sku.node_cpus
    if sku.cloud == "aws":
        max_pods = 110 if cores < 30 else 250
        return Allocatable(_eks_cpu_reserved(cores), 11 * max_pods + 255 + EVICTION_MIB)
    kube_memory = min(20 * AKS_MAX_PODS + 50, memory_mib // 4)
    return Allocatable(_aks_cpu_reserved(cores), kube_memory + EVICTION_MIB)


def allocatable(sku: GpuSku) -> Allocatable | None:
    """Capacity minus :func:`reserved`: what the scheduler may hand to pods on one node."""
    taken = reserved(sku)
    if taken is None or sku.node_cpus is None or sku.node_memory_gib is None:
        return None
    return Allocatable(
        sku.node_cpus * 1000 - taken.cpu_millis,
        int(sku.node_memory_gib * 1024) - taken.memory_mib,
    )


def workload_resources(sku: GpuSku | None, gpus: int | Decimal) -> PodResources:
    """The model server's or trainer's CPU and memory on a node whose ``gpus`` GPUs it takes
    (a fraction for a MIG slice: its compute slices over the GPU's).

    Limits are the pod's share of the node's allocatable (all of it when it takes every GPU), so
    the container is OOM-killed before it can push the node into memory pressure; requests are
    3/4 of the limits, so DaemonSets still fit beside it and the pod is Burstable, ranked behind
    BestEffort pods and pods over their requests when the kubelet must evict.
    """
    node = allocatable(sku) if sku is not None else None
    if sku is None or node is None:
        return PodResources(UNKNOWN_NODE_REQUESTS, None)
    share = min(Decimal(gpus) / Decimal(sku.gpu_count), Decimal(1)) if gpus > 0 else Decimal(1)
    limits = (int(node.cpu_millis * share), int(node.memory_mib * share))
    requests = (
        limits[0] * REQUEST_NUMERATOR // REQUEST_DENOMINATOR,
        limits[1] * REQUEST_NUMERATOR // REQUEST_DENOMINATOR,
    )
    return PodResources(requests, limits)


def helper_resources(sku: GpuSku | None) -> PodResources:
    """A puller's or pusher's CPU and memory, never more than the node offers."""
    node = allocatable(sku) if sku is not None else None
    if node is None:
        return PodResources(HELPER_REQUESTS, HELPER_LIMITS)
    limits = (min(HELPER_LIMITS[0], node.cpu_millis), min(HELPER_LIMITS[1], node.memory_mib))
    requests = (min(HELPER_REQUESTS[0], limits[0]), min(HELPER_REQUESTS[1], limits[1]))
    return PodResources(requests, limits)
