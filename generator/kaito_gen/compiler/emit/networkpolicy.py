"""One NetworkPolicy per Workspace bundle: default deny, then only what the workload needs.

* Inference: the server port (5000) from any pod of the bundle's namespace, plus the peers
  kaito-gen.yaml names (``networkPolicy.ingressFrom``); from anywhere when the Service is a
  LoadBalancer (``kaito.sh/enablelb``), since that traffic arrives from outside the cluster.
* With ``monitoring`` on, the same port from Prometheus' namespace (``monitoring.prometheusNamespace``),
  so the ServiceMonitor / PodMonitor the bundle carries can scrape it.
* Multi-node vLLM (LeaderWorkerSet): every port, but only between the pods of the group (Ray's
  GCS on 6379 and its node, object-manager and worker ports, and NCCL, all dynamically chosen).
* Tuning Jobs: no ingress at all.
* Egress, for all: cluster DNS (kube-dns, port 53 UDP/TCP) and ``networkPolicy.egress``, by default
  TCP 443 anywhere (the model hub, the registry, dataset hosts; their addresses are unknown here).

Input: the WorkspacePlan and the Target's :class:`NetworkPolicySettings`; ``enabled: false`` emits
nothing. The pod selector is the bundle's selector label, so the policy covers exactly its pods.
"""

from __future__ import annotations

from kaito_gen.compiler.emit.common import SERVER_PORT, Manifest, manifest, metadata
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.target import NetworkPeer, NetworkPolicySettings, Target

API = "networking.k8s.io/v1"


def _peer(peer: NetworkPeer) -> Manifest:
    if peer.cidr is not None:
        block: Manifest = {"cidr": peer.cidr}
        if peer.except_:
            block["except"] = list(peer.except_)
        return {"ipBlock": block}
    out: Manifest = {}
    if peer.namespace_labels is not None:
        out["namespaceSelector"] = {"matchLabels": dict(sorted(peer.namespace_labels.items()))}
    if peer.pod_labels is not None:
        out["podSelector"] = {"matchLabels": dict(sorted(peer.pod_labels.items()))}
    return out


def _egress(settings: NetworkPolicySettings, group: Manifest | None) -> list[Manifest]:
    dns_peer = {
        "namespaceSelector": {"matchLabels": dict(sorted(settings.dns_namespace_labels.items()))},
        "podSelector": {"matchLabels": dict(sorted(settings.dns_pod_labels.items()))},
    }
    rules: list[Manifest] = [
        {
            "to": [dns_peer],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        }
    ]
    for rule in settings.egress:
        out: Manifest = {}
        if rule.to:
            out["to"] = [_peer(p) for p in rule.to]
        if rule.ports:
            out["ports"] = [{"port": p.port, "protocol": p.protocol} for p in rule.ports]
        rules.append(out)
    if group is not None:
        rules.append({"to": [group]})
    return rules


def _template_ports(plan: WorkspacePlan) -> list[Manifest]:
    """A user template's declared container ports; none declared: every port."""
    inference = plan.rw.workspace.inference
    spec = (inference.template or {}).get("spec") or {} if inference else {}
    ports: list[Manifest] = []
    for c in spec.get("containers") or []:
        for p in (c.get("ports") or []) if isinstance(c, dict) else []:
            if isinstance(p, dict) and isinstance(p.get("containerPort"), int):
                entry = {"port": p["containerPort"], "protocol": p.get("protocol", "TCP")}
                if entry not in ports:
                    ports.append(entry)
    return ports


def emit_network_policy(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    settings = target.network_policy
    rw = plan.rw
    if not settings.enabled or rw.mode not in ("inference", "tuning"):
        return []
    selector = {"matchLabels": dict(sorted(plan.selector.items()))}
    group = (
        {"podSelector": selector}
        if rw.mode == "inference" and rw.node_count > 1 and rw.engine == "vllm"
        else None
    )
    ingress: list[Manifest] = []
    if rw.mode == "inference":
        lb = rw.workspace.annotations.get("kaito.sh/enablelb", "").lower() == "true"
        peers: list[Manifest] = [{"ipBlock": {"cidr": "0.0.0.0/0"}}] if lb else [{"podSelector": {}}]
        peers += [_peer(p) for p in settings.ingress_from]
        if target.monitoring.kind != "none" and rw.model is not None and not lb:
            prom_ns = target.monitoring.prometheus_namespace
            if prom_ns != rw.namespace:
                peers.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": prom_ns}}})
        ports = [{"port": SERVER_PORT, "protocol": "TCP"}] if rw.model is not None else _template_ports(plan)
        rule: Manifest = {"from": peers}
        if ports:
            rule["ports"] = ports
        ingress.append(rule)
        if group is not None:
            ingress.append({"from": [group]})
    spec: Manifest = {
        "podSelector": selector,
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": _egress(settings, group),
    }
    return [manifest(API, "NetworkPolicy", metadata(plan, rw.name), spec=spec)]
