"""Stage 4, ``plan``: decide names, hashes, labels and bundle membership.

Input: :class:`~kaito_gen.compiler.resolve.Resolved` and the :class:`Target`.
Output: :class:`Plan` — for each Workspace the names of everything it will
emit, and which user objects travel in which bundle. Objects referenced by
several Workspaces of a namespace go to that namespace's ``_shared`` bundle,
so that no manifest is owned by two GitOps applications.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaito_gen.compiler.resolve import Resolved, ResolvedWorkspace
from kaito_gen.compiler.validate import ObjectInput
from kaito_gen.models.target import Target

MANAGED_BY = "kaito-gen"
SHARED_BUNDLE = "_shared"
ANNOTATION_PREFIX = "kaito-gen.io/"


def short_hash(payload: Any, length: int) -> str:
    """sha256 over canonical JSON: stable across runs, machines and PYTHONHASHSEED."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def nodepool_name(namespace: str, name: str) -> str:
    """Kaito's NodePool naming: ``<ns>-<name>``, or 53 chars + '-' + 9 hex of sha256 when longer than 63."""
    full = f"{namespace}-{name}"
    if len(full) <= 63:
        return full
    return f"{full[:53]}-{hashlib.sha256(full.encode()).hexdigest()[:9]}"


@dataclass(frozen=True)
class WorkspacePlan:
    rw: ResolvedWorkspace
    bundle: str  # "<namespace>/<name>"
    image: str
    labels: Mapping[str, str]
    selector: Mapping[str, str]
    annotations: Mapping[str, str]
    nodepool: str | None
    job_name: str | None
    training_config_name: str | None
    objects: tuple[ObjectInput, ...]  # user objects emitted in this bundle


@dataclass(frozen=True)
class Plan:
    workspaces: tuple[WorkspacePlan, ...]
    shared: Mapping[str, tuple[ObjectInput, ...]]  # namespace -> objects in its _shared bundle


def _labels(rw: ResolvedWorkspace, target: Target) -> dict[str, str]:
    # Never app.kubernetes.io/instance: Argo CD tracks resources with that label by
    # default, so writing it would make Argo CD mis-attribute or prune our objects.
    return {
        "app.kubernetes.io/name": rw.model.name if rw.model else rw.name,
        "app.kubernetes.io/component": rw.mode,
        "app.kubernetes.io/part-of": "kaito",
        "app.kubernetes.io/version": target.runtime_tag,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "kaito.sh/workspace": rw.name,
    }


def _annotations(rw: ResolvedWorkspace, nodepool: str | None) -> dict[str, str]:
    out = {
        ANNOTATION_PREFIX + "provisioner": rw.provisioner,
        ANNOTATION_PREFIX + "node-count": str(rw.node_count),
        ANNOTATION_PREFIX + "node-count-reason": rw.node_count_reason,
        ANNOTATION_PREFIX + "source": rw.input.doc.file,
    }
    if rw.sku is not None:
        out[ANNOTATION_PREFIX + "instance-type"] = rw.sku.name
    if nodepool is not None:
        out[ANNOTATION_PREFIX + "nodepool"] = nodepool
    return out


def _image(rw: ResolvedWorkspace, target: Target) -> str:
    spec = (
        rw.workspace.inference.preset
        if rw.workspace.inference
        else rw.workspace.tuning.preset
        if rw.workspace.tuning
        else None
    )
    if spec is not None and spec.preset_options is not None and spec.preset_options.image:
        return spec.preset_options.image  # Kaito's private-image escape hatch
    return target.runtime_image


def job_hash(rw: ResolvedWorkspace, target: Target, image: str) -> str:
    """What makes a tuning run different: spec, pinned model, config, image, SKU."""
    tuning = rw.workspace.tuning
    payload = {
        "tuning": tuning.model_dump(mode="json", by_alias=True, exclude_none=True) if tuning else None,
        "model": [rw.model.hf_repo, rw.model.revision] if rw.model else None,
        "config": rw.config_map.data.get("data") if rw.config_map else rw.training_config,
        "image": image,
        "sku": rw.sku.name if rw.sku else None,
        "cloud": target.cloud,
    }
    return short_hash(payload, 10)


def plan(resolved: Resolved, target: Target) -> Plan:
    users: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for rw in resolved.workspaces:
        for obj in rw.references:
            users[(obj.kind, obj.namespace, obj.name)].append(rw.name)
    shared: dict[str, list[ObjectInput]] = defaultdict(list)
    for key, names in sorted(users.items()):
        if len(names) > 1:
            shared[key[1]].append(resolved.objects[key])
    plans = []
    for rw in resolved.workspaces:
        nodepool = nodepool_name(rw.namespace, rw.name) if rw.provisioner == "karpenter" else None
        image = _image(rw, target)
        job_name = training_name = None
        if rw.mode == "tuning":
            digest = job_hash(rw, target, image)
            job_name = f"{rw.name}-{digest}"
            if rw.config_map is None and rw.training_config is not None:
                training_name = f"{rw.name}-{rw.tuning_method}-params-{short_hash(rw.training_config, 8)}"
        own = tuple(o for o in rw.references if len(users[(o.kind, o.namespace, o.name)]) == 1)
        plans.append(
            WorkspacePlan(
                rw=rw,
                bundle=f"{rw.namespace}/{rw.name}",
                image=image,
                labels=_labels(rw, target),
                selector={"kaito.sh/workspace": rw.name},
                annotations=_annotations(rw, nodepool),
                nodepool=nodepool,
                job_name=job_name,
                training_config_name=training_name,
                objects=own,
            )
        )
    return Plan(tuple(plans), {ns: tuple(objs) for ns, objs in sorted(shared.items())})
