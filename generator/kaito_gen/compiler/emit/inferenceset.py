"""An InferenceSet's bundle: the child Workspace's manifests, scaled to the set (KAITO.md §11).

Kaito creates ``replicas`` child Workspaces, each with its own StatefulSet and Services, behind
the set. kaito-gen compiles the set into *one* workload with ``replicas`` (a StatefulSet for a
one-node model, a LeaderWorkerSet of groups for a multi-node one) and one Service that balances
over every replica, which is what clients of the set's name want; the NodePool's ``limits``
carry ``spec.nodeCountLimit`` so that Karpenter itself never exceeds it.

When a KEDA ScaledObject owns the replica count, the workload leaves ``spec.replicas`` out:
Argo CD and Flux would otherwise reset it to the committed value on every sync while the HPA
moves it, and the two would fight (the HPA wins for a moment, then the next sync scales back).
The API server defaults a missing ``replicas`` to 1 at creation; the HPA takes over from there.

:func:`scale_bundle` is a modifier applied to the emitted manifests of a set's bundle
(bundle.emit_iter), in Kaito's style of small named modifiers on fresh objects.
"""

from __future__ import annotations

from kaito_gen.compiler.emit.common import Manifest, manifest, metadata
from kaito_gen.compiler.emit.keda import scaled_object
from kaito_gen.compiler.plan import ANNOTATION_PREFIX, WorkspacePlan
from kaito_gen.compiler.setscale import set_scaling
from kaito_gen.models.inferenceset import SetScaling
from kaito_gen.models.target import Target

WORKLOAD_KINDS = ("StatefulSet", "Deployment", "LeaderWorkerSet")
NODE_COUNT = ANNOTATION_PREFIX + "node-count"


def scale_bundle(plan: WorkspacePlan, target: Target, manifests: list[Manifest]) -> list[Manifest]:
    """The manifests of a set's bundle with replicas, node limits and autoscaling applied;
    a plain Workspace's manifests unchanged."""
    scaling = set_scaling(plan.rw, target)
    if scaling is None:
        return manifests
    out: list[Manifest] = []
    workload: Manifest | None = None
    for m in manifests:
        _annotate(m, scaling)
        if m["kind"] in WORKLOAD_KINDS and m["metadata"]["name"] == plan.rw.name:
            workload = m
            _scale_workload(m, plan, scaling)
        elif m["kind"] == "NodePool":
            _limit_nodepool(m, plan, scaling, target)
        out.append(m)
    several = scaling.replicas > 1 or scaling.autoscale is not None
    has_pdb = any(m["kind"] == "PodDisruptionBudget" for m in out)
    if workload is not None and several and not has_pdb and target.features.pod_disruption_budget:
        out.append(_pdb(plan))
    if workload is not None and scaling.autoscale is not None:
        out.append(scaled_object(plan, scaling.autoscale, workload))
    return out


def _annotate(m: Manifest, s: SetScaling) -> None:
    """The node count the bundle asks for (what `diff` prices), and the set's shape."""
    ann = m["metadata"].get("annotations")
    if not ann or NODE_COUNT not in ann:
        return
    ann[NODE_COUNT] = str(s.nodes)
    ann[ANNOTATION_PREFIX + "replicas"] = str(s.replicas)
    ann[ANNOTATION_PREFIX + "nodes-per-replica"] = str(s.nodes_per_replica)
    if s.autoscale is not None:
        ann[ANNOTATION_PREFIX + "max-replicas"] = str(s.autoscale.max_replicas)
    m["metadata"]["annotations"] = dict(sorted(ann.items()))


def _scale_workload(m: Manifest, plan: WorkspacePlan, s: SetScaling) -> None:
    spec = m["spec"]
    if s.autoscale is not None:
        spec.pop("replicas", None)  # the HPA owns it; see the module docstring
    else:
        spec["replicas"] = s.replicas
    if m["kind"] == "Deployment":
        # Several replicas: replace one pod at a time instead of stopping all of them.
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    iset = plan.rw.input.inference_set
    strategy = iset.spec.update_strategy if iset and iset.spec else None
    if m["kind"] == "StatefulSet" and strategy is not None:
        spec["updateStrategy"] = strategy.model_dump(mode="json", by_alias=True, exclude_none=True)
    m["spec"] = _ordered(spec)


def _ordered(spec: Manifest) -> Manifest:
    """``replicas`` first, as every emitter writes it (stable, readable output)."""
    head = {"replicas": spec["replicas"]} if "replicas" in spec else {}
    return {**head, **{k: v for k, v in spec.items() if k != "replicas"}}


def _limit_nodepool(m: Manifest, plan: WorkspacePlan, s: SetScaling, target: Target) -> None:
    rw = plan.rw
    spec = m["spec"]
    nodes = s.max_nodes
    if target.features.nodepool_replicas and s.autoscale is None:
        spec["replicas"] = s.nodes  # static capacity: only limits.nodes is allowed
        spec["limits"] = {"nodes": str(max(nodes, s.nodes))}
    else:
        spec.pop("replicas", None)
        resource = rw.sku.gpu_resource if rw.sku else "nvidia.com/gpu"
        spec["limits"] = {resource: str(nodes * rw.gpus_per_node), "nodes": str(nodes)}
    labels = m["metadata"]["labels"]
    labels["karpenter.kaito.sh/inferenceset"] = rw.name
    labels["karpenter.kaito.sh/inferenceset-namespace"] = rw.namespace
    m["metadata"]["labels"] = dict(sorted(labels.items()))
    first = ("template", "disruption", "replicas", "limits")  # nodepool.py's order
    m["spec"] = {k: spec[k] for k in first if k in spec} | {k: v for k, v in spec.items() if k not in first}


def _pdb(plan: WorkspacePlan) -> Manifest:
    spec = {"maxUnavailable": 1, "selector": {"matchLabels": dict(plan.selector)}}
    return manifest("policy/v1", "PodDisruptionBudget", metadata(plan, plan.rw.name), spec=spec)
