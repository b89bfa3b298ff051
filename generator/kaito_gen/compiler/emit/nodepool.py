"""The Karpenter NodePool: one per Workspace (KAITO.md §4.2; GITOPS.md §4)."""

from __future__ import annotations

from kaito_gen.compiler.emit.common import Manifest, manifest, metadata, ownership_labels, user_match_labels
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.target import Target

NODECLASS_ANNOTATION = "kaito.sh/node-class-name"


def emit_nodepool(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    rw = plan.rw
    node_class = target.resolved_node_class()
    if plan.nodepool is None or rw.sku is None or node_class is None:
        return []  # BYO nodes: pods select existing nodes by labelSelector
    class_name = rw.workspace.annotations.get(NODECLASS_ANNOTATION, node_class.name)
    requirements: list[Manifest] = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [rw.sku.name]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
    ]
    if node_class.group == "karpenter.azure.com":
        # GPU capacity is often missing in a given zone; Kaito asks for regional placement.
        requirements.append(
            {"key": "karpenter.azure.com/placement-scope", "operator": "In", "values": ["regional"]}
        )
    template_labels = {**user_match_labels(plan), **ownership_labels(plan)}
    gpus = rw.node_count * rw.gpus_per_node
    static = target.features.nodepool_replicas
    # A node is only consolidated when empty, and drift replaces one node at a time:
    # a running model or training job is never evicted for cost reasons.
    disruption: Manifest = {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "10m" if rw.mode == "inference" else "5m",
        "budgets": [
            {"nodes": "1", "reasons": ["Drifted"]}
            if rw.mode == "inference"
            else {"nodes": "0", "reasons": ["Drifted"]}
        ],
    }
    spec: Manifest = {
        "template": {
            "metadata": {"labels": dict(sorted(template_labels.items()))},
            "spec": {
                "nodeClassRef": {"group": node_class.group, "kind": node_class.kind, "name": class_name},
                "requirements": requirements,
                "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
                # GPU nodes are not recycled on a timer; upgrades come through drift.
                "expireAfter": "Never",
            },
        },
        "disruption": disruption,
    }
    if static:
        # Static capacity (Karpenter StaticCapacity gate): only limits.nodes is allowed.
        spec["replicas"] = rw.node_count
        spec["limits"] = {"nodes": str(rw.node_count)}
    else:
        spec["limits"] = {rw.sku.gpu_resource: str(gpus), "nodes": str(rw.node_count)}
    extra = {
        "karpenter.kaito.sh/workspace-name": rw.name,
        "karpenter.kaito.sh/workspace-namespace": rw.namespace,
    }
    meta = metadata(plan, plan.nodepool, namespaced=False, extra_labels=extra, annotations=plan.annotations)
    meta["labels"]["app.kubernetes.io/component"] = "nodepool"
    return [manifest("karpenter.sh/v1", "NodePool", meta, spec=spec)]
