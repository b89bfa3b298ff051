"""The Kaito InferenceSet, as users write it (KAITO.md §11.1, ``api/v1beta1/inferenceset_types.go``).

An InferenceSet runs ``spec.replicas`` copies of one inference Workspace built from
``spec.template``; ``spec.labelSelector`` becomes each copy's ``resource.labelSelector``.
Both served versions (``kaito.sh/v1alpha1`` and ``kaito.sh/v1beta1``) share this shape.

``spec.template.resource`` and ``spec.template.inference`` are typed here for the published
schema; ``compiler.inferenceset`` checks them with the Workspace rules, so a mistake in them is
reported once, at its own line. :class:`SetScaling` is what ``resolve`` decides for a set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StrictStr

from kaito_gen.models.base import Frozen
from kaito_gen.models.workspace import InferenceSpec, LabelSelector, ObjectMeta, Partition

INFERENCESET_API_VERSIONS = ("kaito.sh/v1alpha1", "kaito.sh/v1beta1")


class InferenceSetResource(Frozen):
    # Required under node auto-provisioning, empty for BYO nodes (checked by the rules).
    instance_type: StrictStr | None = None
    partition: Partition | None = None


class InferenceSetTemplate(Frozen):
    # Schemaless in Kaito's CRD (an ObjectMeta with pruning off); kept as written.
    metadata: dict[str, Any] | None = None
    resource: InferenceSetResource | None = None
    inference: InferenceSpec | None = None
    # Newer Kaito: distributed caching for the child Workspaces (refused by the rules).
    cache: dict[str, Any] | None = None


class RollingUpdate(Frozen):
    max_unavailable: StrictInt | StrictStr | None = None
    partition: StrictInt | None = Field(default=None, ge=0)


class UpdateStrategy(Frozen):
    """A StatefulSet update strategy (Kaito default: RollingUpdate, maxUnavailable 1)."""

    type: Literal["RollingUpdate", "OnDelete"] | None = None
    rolling_update: RollingUpdate | None = None


class MaintenanceWindow(Frozen):
    schedule: StrictStr | None = None  # 5-field cron, UTC; required (a rule says so, positioned)
    duration: StrictStr | None = None  # Go duration, default 4h


class AutoUpgrade(Frozen):
    enabled: StrictBool = False
    strategy: Literal["InPlace", "Surge"] = "InPlace"
    maintenance_window: MaintenanceWindow | None = None


class InferenceSetSpec(Frozen):
    # Optional here so that a missing one is a positioned rule error and the rest still checks.
    template: InferenceSetTemplate | None = None
    replicas: StrictInt | None = None  # CRD default 1, minimum 0
    node_count_limit: StrictInt | None = None  # 0 or unset: no limit
    label_selector: LabelSelector | None = None
    update_strategy: UpdateStrategy | None = None
    auto_upgrade: AutoUpgrade | None = None


class InferenceSet(Frozen):
    model_config = ConfigDict(title="InferenceSet")

    api_version: Literal["kaito.sh/v1alpha1", "kaito.sh/v1beta1"]
    kind: Literal["InferenceSet"]
    metadata: ObjectMeta
    spec: InferenceSetSpec | None = None
    status: dict[str, Any] | None = None  # written by Kaito's controller; ignored here

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def replicas(self) -> int:
        spec = self.spec
        return 1 if spec is None or spec.replicas is None else spec.replicas

    @property
    def node_count_limit(self) -> int | None:
        limit = self.spec.node_count_limit if self.spec else None
        return limit or None


Scaler = Literal["prometheus", "kaito"]


@dataclass(frozen=True)
class Autoscale:
    """A KEDA ScaledObject on the set's workload (Kaito's ``scaledobject.kaito.sh/*`` annotations)."""

    min_replicas: int
    max_replicas: int
    metric: str
    threshold: str
    scaler: Scaler
    server_address: str  # Prometheus server, or the keda-kaito-scaler gRPC address


@dataclass(frozen=True)
class SetScaling:
    """How many copies of the serving workload, and how many nodes the NodePool may hold."""

    replicas: int  # fixed replica count, or the autoscaler's minimum
    nodes_per_replica: int
    node_limit: int | None  # spec.nodeCountLimit (None: no limit)
    max_nodes: int  # the NodePool's limits.nodes
    autoscale: Autoscale | None = None

    @property
    def nodes(self) -> int:
        """Nodes at the fixed (or minimum) replica count."""
        return self.replicas * self.nodes_per_replica
