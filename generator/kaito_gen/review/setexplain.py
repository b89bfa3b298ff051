"""``explain`` for an InferenceSet: what the set compiles to (KAITO.md §11).

The figures come from :func:`kaito_gen.compiler.setscale.set_scaling`, the function ``emit``
uses, so the explanation cannot drift from the output.
"""

from __future__ import annotations

from typing import Any

from kaito_gen.compiler.emit.keda import BEHAVIOR, query
from kaito_gen.compiler.resolve import ResolvedWorkspace, hourly_cost
from kaito_gen.compiler.setscale import set_scaling
from kaito_gen.models.target import Target


def explain_set(rw: ResolvedWorkspace, target: Target) -> dict[str, Any] | None:
    """The set's section of ``explain --json``; None for a Workspace."""
    s = set_scaling(rw, target)
    if s is None:
        return None
    kind = "LeaderWorkerSet" if rw.engine == "vllm" and rw.node_count > 1 else "StatefulSet"
    single = rw.engine == "transformers" and rw.node_count == 1
    if single and target.features.single_node_deployment:
        kind = "Deployment"
    cost = hourly_cost(rw)
    out: dict[str, Any] = {
        "workload": f"{kind}/{rw.name}",
        "replicas": s.replicas,
        "nodesPerReplica": s.nodes_per_replica,
        "nodeCountLimit": s.node_limit,
        "nodePoolLimitNodes": s.max_nodes,
        "servedModelName": rw.name,
        "services": [f"Service/{rw.name}"]
        + ([f"Service/{rw.name}-headless"] if kind == "StatefulSet" else []),
        "perHour": float(cost * s.replicas) if cost is not None else None,
        "autoscaling": None,
    }
    auto = s.autoscale
    if auto is not None:
        trigger: dict[str, Any] = {"scaler": auto.scaler, "address": auto.server_address}
        if auto.scaler == "prometheus":
            trigger["query"] = query(auto, rw.namespace, kind, rw.name)
        out["autoscaling"] = {
            "scaledObject": f"ScaledObject/{rw.name}",
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metric": auto.metric,
            "threshold": auto.threshold,
            "trigger": trigger,
            "behavior": BEHAVIOR,
            "maxPerHour": float(cost * auto.max_replicas) if cost is not None else None,
        }
    return out


def set_lines(data: dict[str, Any]) -> list[str]:
    """The text form of :func:`explain_set`."""
    per = data["nodesPerReplica"]
    limit = data["nodeCountLimit"]
    cap = f"spec.nodeCountLimit {limit}" if limit is not None else "no nodeCountLimit: replicas x nodes"
    lines = [
        f"set        InferenceSet → {data['workload']}: one workload with replicas, {per} node(s) per replica,",
        f"           served as model {data['servedModelName']!r} behind {', '.join(data['services'])} (all replicas)",
        f"           NodePool limits.nodes {data['nodePoolLimitNodes']} ({cap}), so Karpenter enforces it",
    ]
    auto = data["autoscaling"]
    if auto is None:
        lines.append(f"replicas   {data['replicas']} (fixed: spec.replicas)")
        if data["perHour"] is not None:
            lines.append(f"set cost   {data['perHour']:.2f}/h for {data['replicas']} replica(s)")
        return lines
    trig = auto["trigger"]
    how = (
        f"Prometheus at {trig['address']}: {trig['query']}"
        if trig["scaler"] == "prometheus"
        else (f"keda-kaito-scaler at {trig['address']}")
    )
    lines += [
        f"replicas   {auto['minReplicas']}..{auto['maxReplicas']}, scaled by KEDA {auto['scaledObject']} "
        "(the workload leaves spec.replicas to the HPA)",
        f"           on the average {auto['metric']} per replica > {auto['threshold']}, via {how}",
        "           up after 60 s, at most 1 pod / 300 s; down after 300 s, at most 1 pod / 600 s (Kaito's behaviour)",
    ]
    if data["perHour"] is not None and auto["maxPerHour"] is not None:
        lines.append(
            f"set cost   {data['perHour']:.2f}/h at {auto['minReplicas']} replica(s), "
            f"up to {auto['maxPerHour']:.2f}/h at {auto['maxReplicas']}"
        )
    return lines
