"""The Kaito Workspace, as users write it (KAITO.md §1).

Both served versions (``kaito.sh/v1alpha1`` and ``kaito.sh/v1beta1``) share one
model: their schemas are near-identical and Kaito round-trips them by rewriting
``apiVersion``. Version-specific rules live in ``validate``. Fields sit at the
top level (no ``spec:``), exactly like the CRD.

Free-form Kubernetes structures (``volumeSource``, ``template``) are kept as
plain mappings: the CRD declares them schemaless too, and the emitted manifests
are checked against the real Kubernetes schemas anyway.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictInt, StrictStr

from kaito_gen.models.base import Frozen

KAITO_API_VERSIONS = ("kaito.sh/v1alpha1", "kaito.sh/v1beta1")


class LabelSelectorRequirement(Frozen):
    key: StrictStr
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[StrictStr, ...] | None = None


class LabelSelector(Frozen):
    match_labels: dict[StrictStr, StrictStr] | None = None
    match_expressions: tuple[LabelSelectorRequirement, ...] | None = None


class Partition(Frozen):
    """GPU partitioning (v1beta1, BYO nodes only)."""

    mode: Literal["mig", "accelerator"]
    profile: StrictStr | None = None
    count: StrictInt | None = Field(default=None, ge=1)


class ResourceSpec(Frozen):
    count: StrictInt | None = Field(default=None, ge=0)
    instance_type: StrictStr | None = None
    label_selector: LabelSelector
    preferred_nodes: tuple[StrictStr, ...] | None = None
    partition: Partition | None = None


class PresetOptions(Frozen):
    image: StrictStr | None = None
    image_pull_secrets: tuple[StrictStr, ...] | None = None
    model_access_secret: StrictStr | None = None


class PresetSpec(Frozen):
    name: StrictStr
    access_mode: Literal["public", "private"] | None = None
    preset_options: PresetOptions | None = None


class DataSource(Frozen):
    name: StrictStr | None = None
    urls: tuple[StrictStr, ...] | None = None
    volume_source: dict[str, Any] | None = None
    image: StrictStr | None = None
    image_pull_secrets: tuple[StrictStr, ...] | None = None


class AdapterSpec(Frozen):
    source: DataSource | None = None
    # Kaito keeps strength a *string* ("language agnostic"); a YAML number is
    # rejected with a hint to quote it, as the CRD schema would.
    strength: StrictStr | None = None


class InferenceSpec(Frozen):
    preset: PresetSpec | None = None
    template: dict[str, Any] | None = None
    config: StrictStr | None = None
    adapters: tuple[AdapterSpec, ...] | None = None


class DataDestination(Frozen):
    volume_source: dict[str, Any] | None = None
    image: StrictStr | None = None
    image_push_secret: StrictStr | None = None


class TuningSpec(Frozen):
    preset: PresetSpec | None = None
    method: StrictStr | None = None
    config: StrictStr | None = None
    input: DataSource | None = None
    output: DataDestination | None = None


class ObjectMeta(Frozen):
    """Workspace metadata. Server-populated fields are tolerated and ignored, so a
    Workspace exported with ``kubectl get -o yaml`` still compiles."""

    model_config = ConfigDict(alias_generator=None)

    name: StrictStr
    namespace: StrictStr | None = None
    labels: dict[StrictStr, StrictStr] | None = None
    annotations: dict[StrictStr, StrictStr] | None = None
    # Ignored, but accepted (kubectl get -o yaml output).
    uid: Any = None
    resourceVersion: Any = None
    generation: Any = None
    creationTimestamp: Any = None
    managedFields: Any = None
    finalizers: Any = None
    ownerReferences: Any = None
    generateName: Any = None


class Workspace(Frozen):
    api_version: Literal["kaito.sh/v1alpha1", "kaito.sh/v1beta1"]
    kind: Literal["Workspace"]
    metadata: ObjectMeta
    resource: ResourceSpec | None = None
    inference: InferenceSpec | None = None
    tuning: TuningSpec | None = None
    status: dict[str, Any] | None = None  # written by Kaito's controller; ignored here

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.metadata.annotations or {})
