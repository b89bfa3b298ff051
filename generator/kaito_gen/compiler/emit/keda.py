"""The KEDA ScaledObject of an autoscaled InferenceSet (KAITO.md §11.2; CRD ``keda.sh/v1alpha1``).

Kaito's keda-kaito-scaler turns the ``scaledobject.kaito.sh/*`` annotations into a ScaledObject
whose HPA scales up after a 60 s stabilization window by at most one pod per 300 s, and down
after 300 s by at most one pod per 600 s, on the *average* of a vLLM metric over the replicas
(``AverageValue``). kaito-gen writes that ScaledObject itself, into the bundle, against the
workload it compiled the set into (StatefulSet, Deployment or LeaderWorkerSet; each has the
scale subresource). The trigger is KEDA's Prometheus scaler by default: the query sums the metric
over the set's serving pods (for a LeaderWorkerSet the leaders, which run the API server) and
KEDA divides by the replica count. ``autoscaling.scaler: kaito`` in kaito-gen.yaml writes Kaito's
external-scaler trigger instead.
"""

from __future__ import annotations

from kaito_gen.compiler.emit.common import Manifest, manifest, metadata
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.inferenceset import Autoscale

KEDA_API = "keda.sh/v1alpha1"
# keda-kaito-scaler's behaviour (KAITO.md §11.2).
BEHAVIOR: Manifest = {
    "scaleUp": {
        "stabilizationWindowSeconds": 60,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 600}],
    },
}


def pod_pattern(kind: str, name: str) -> str:
    """A PromQL regex for the serving pods' names (StatefulSet ordinals, LWS leaders, Deployment hashes)."""
    if kind == "Deployment":
        return f"{name}-[a-z0-9]+-[a-z0-9]+"
    return f"{name}-[0-9]+"


def query(auto: Autoscale, namespace: str, kind: str, name: str) -> str:
    return f'sum({auto.metric}{{namespace="{namespace}",pod=~"{pod_pattern(kind, name)}"}})'


def _trigger(plan: WorkspacePlan, auto: Autoscale, kind: str) -> Manifest:
    rw = plan.rw
    if auto.scaler == "kaito":
        return {
            "type": "external",
            "name": "keda-kaito-scaler",
            "metricType": "AverageValue",
            "metadata": {
                "scalerAddress": auto.server_address,
                "inferenceSetName": rw.name,
                "inferenceSetNamespace": rw.namespace,
                "metricName": auto.metric,
                "threshold": auto.threshold,
            },
            "authenticationRef": {"name": "keda-kaito-scaler-creds", "kind": "ClusterTriggerAuthentication"},
        }
    return {
        "type": "prometheus",
        "name": auto.metric.replace(":", "_"),
        "metricType": "AverageValue",
        "metadata": {
            "serverAddress": auto.server_address,
            "query": query(auto, rw.namespace, kind, rw.name),
            "threshold": auto.threshold,
        },
    }


def scaled_object(plan: WorkspacePlan, auto: Autoscale, workload: Manifest) -> Manifest:
    kind = str(workload["kind"])
    spec: Manifest = {
        "scaleTargetRef": {"apiVersion": workload["apiVersion"], "kind": kind, "name": plan.rw.name},
        "minReplicaCount": auto.min_replicas,
        "maxReplicaCount": auto.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": BEHAVIOR}},
        "triggers": [_trigger(plan, auto, kind)],
    }
    meta = metadata(plan, plan.rw.name, extra_labels={"app.kubernetes.io/component": "autoscaling"})
    return manifest(KEDA_API, "ScaledObject", meta, spec=spec)
