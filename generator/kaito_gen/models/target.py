"""Every fact about the target environment, as one explicit input.

Kaito reads these from operator flags, environment variables and the live
cluster. kaito-gen is pure, so they arrive here instead: from ``kaito-gen.yaml``
and command-line flags, merged at the CLI edge and passed down frozen.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr, model_validator

from kaito_gen.models.base import Frozen
from kaito_gen.models.monitoring import Monitoring

TargetCloud = Literal["azure", "aws", "arc", "byo"]


class NodeClassRef(Frozen):
    group: StrictStr
    kind: StrictStr
    name: StrictStr


DEFAULT_NODE_CLASSES: dict[str, NodeClassRef] = {
    # AKS node auto-provisioning (NAP) serves AKSNodeClass as karpenter.azure.com/v1beta1.
    "azure": NodeClassRef(group="karpenter.azure.com", kind="AKSNodeClass", name="default"),
    "aws": NodeClassRef(group="karpenter.k8s.aws", kind="EC2NodeClass", name="default"),
}


class Features(Frozen):
    # Static capacity (NodePool spec.replicas) needs Karpenter's StaticCapacity gate,
    # which is off by default and missing from some NAP releases: opt-in only.
    nodepool_replicas: StrictBool = False
    # A PodDisruptionBudget that keeps voluntary evictions off inference pods.
    pod_disruption_budget: StrictBool = True
    # Emit the single-node inference workload as a Deployment (seed-era Kaito)
    # instead of a StatefulSet.
    single_node_deployment: StrictBool = False


class Autoscaling(Frozen):
    """How a KEDA ScaledObject measures load for InferenceSets with Kaito's
    ``scaledobject.kaito.sh/auto-provision: "true"`` (kaito-gen.yaml ``autoscaling``)."""

    # prometheus: KEDA's Prometheus scaler queries the vLLM metric over the set's pods.
    # kaito: Kaito's keda-kaito-scaler (an external gRPC scaler installed beside KEDA).
    scaler: Literal["prometheus", "kaito"] = "prometheus"
    # None: the prometheus-operator's usual in-cluster address, with a warning.
    prometheus_address: StrictStr | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # None: the keda-kaito-scaler chart's Service in kaito-workspace.
    kaito_scaler_address: StrictStr | None = Field(default=None, pattern=r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$")


CIDR = r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"
LABEL_MAP = dict[StrictStr, StrictStr]


class NetworkPeer(Frozen):
    """One NetworkPolicy peer: an address block, or pods (and/or namespaces) by label."""

    cidr: StrictStr | None = Field(default=None, pattern=CIDR)
    # Addresses inside `cidr` that stay closed (e.g. the cloud metadata endpoint).
    except_: tuple[StrictStr, ...] = Field(default=(), alias="except", max_length=64)
    namespace_labels: LABEL_MAP | None = None  # {} = every namespace
    pod_labels: LABEL_MAP | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NetworkPeer:
        if (self.cidr is None) == (self.namespace_labels is None and self.pod_labels is None):
            raise ValueError("a peer is either `cidr` (with optional `except`) or namespaceLabels/podLabels")
        if self.except_ and self.cidr is None:
            raise ValueError("`except` needs `cidr`")
        return self


class NetworkPort(Frozen):
    port: StrictInt = Field(ge=1, le=65535)
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class EgressRule(Frozen):
    """Where pods may connect: `to` these peers (empty: anywhere) on these ports (empty: any)."""

    to: tuple[NetworkPeer, ...] = Field(default=(), max_length=64)
    ports: tuple[NetworkPort, ...] = Field(default=(), max_length=64)


# Default egress: HTTPS anywhere (the model hub, the container registry, dataset hosts); their
# addresses are not known in advance, so the rule is by port. Tighten it with `egress` in
# kaito-gen.yaml (e.g. the registry's and a hub mirror's CIDRs).
DEFAULT_EGRESS = (EgressRule(to=(NetworkPeer(cidr="0.0.0.0/0"),), ports=(NetworkPort(port=443),)),)


class NetworkPolicySettings(Frozen):
    """kaito-gen.yaml ``networkPolicy``: the NetworkPolicy each bundle gets (compiler/emit/networkpolicy.py)."""

    enabled: StrictBool = True
    # Who besides the bundle's own namespace may reach the inference port (e.g. an ingress
    # controller's namespace: {namespaceLabels: {kubernetes.io/metadata.name: ingress-nginx}}).
    ingress_from: tuple[NetworkPeer, ...] = Field(default=(), max_length=64)
    # Cluster DNS: pods with these labels in the namespace with these labels, port 53 UDP and TCP.
    dns_namespace_labels: LABEL_MAP = Field(
        default_factory=lambda: {"kubernetes.io/metadata.name": "kube-system"}
    )
    dns_pod_labels: LABEL_MAP = Field(default_factory=lambda: {"k8s-app": "kube-dns"})
    egress: tuple[EgressRule, ...] = Field(default=DEFAULT_EGRESS, max_length=64)


GitopsFlavour = Literal["argocd", "flux", "none"]
Engine = Literal["vllm", "transformers"]


class GitopsTarget(Frozen):
    """What the GitOps layer needs to know while emitting (the objects themselves come from
    ``kaito-gen.yaml``'s ``gitops`` section, see kaito_gen.config / kaito_gen.compiler.emit.gitops)."""

    flavour: GitopsFlavour = "none"
    # Argo CD only: let a sync create NodePools before the Karpenter CRDs exist in the cluster.
    skip_dry_run_on_missing_resource: StrictBool = True


class Target(Frozen):
    """Where the bundle will run. Defaults mirror Kaito's chart defaults."""

    cloud: TargetCloud = "azure"
    node_class: NodeClassRef | None = None
    registry: StrictStr = "ghcr.io/kaito-gen"
    runtime_tag: StrictStr = "0.1.0"
    kubernetes_version: StrictStr = Field(default="1.32", pattern=r"^1\.\d+$")
    default_namespace: StrictStr = "default"
    # StorageClass for the model-weights volume on NVMe SKUs; None → emptyDir.
    weights_storage_class: StrictStr | None = None
    allow_secrets: StrictBool = False
    # A catalog model with `revision: unpinned` is an error instead of a warning.
    require_pinned: StrictBool = False
    # Every container image must be pinned by digest (kaito-gen.yaml requireDigests, --require-digests).
    require_digests: StrictBool = False
    features: Features = Features()
    # Default "none": the output is byte-for-byte what it was before GitOps support.
    gitops: GitopsTarget = GitopsTarget()
    # kaito-gen.yaml monitoring: a ServiceMonitor / PodMonitor per inference bundle (off by default).
    monitoring: Monitoring = Monitoring()
    # kaito-gen.yaml runtime.default: the engine when a Workspace has no kaito.sh/runtime
    # annotation. None: the preset decides (transformers where our runtime supports it).
    default_engine: Engine | None = None
    # Full image references per engine (digest-pinnable); None: <registry>/<name>:<runtime_tag>.
    vllm_image: StrictStr | None = None
    transformers_image: StrictStr | None = None
    network_policy: NetworkPolicySettings = NetworkPolicySettings()
    # KEDA autoscaling of InferenceSets (kaito-gen.yaml `autoscaling`).
    autoscaling: Autoscaling = Autoscaling()

    @property
    def runtime_image(self) -> str:
        """The transformers engine's image (kaito-serve)."""
        if self.transformers_image:
            return self.transformers_image
        return f"{self.registry.rstrip('/')}/kaito-runtime:{self.runtime_tag}"

    @property
    def vllm_runtime_image(self) -> str:
        """The vLLM engine's image (kaito-vllm)."""
        if self.vllm_image:
            return self.vllm_image
        return f"{self.registry.rstrip('/')}/kaito-vllm:{self.runtime_tag}"

    def resolved_node_class(self) -> NodeClassRef | None:
        if self.node_class is not None:
            return self.node_class
        return DEFAULT_NODE_CLASSES.get(self.cloud)
