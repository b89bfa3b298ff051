"""Stage 5, ``emit``: manifests per bundle, built by a fixed tuple of emitters.

Input: the :class:`~kaito_gen.compiler.plan.Plan` and the :class:`Target`.
Output: one :class:`Bundle` per Workspace (``<namespace>/<name>``) plus one
``<namespace>/_shared`` bundle per namespace that has shared objects. Each
emitter is a pure function of (WorkspacePlan, Target); EMITTERS fixes the order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kaito_gen.compiler.emit.common import Manifest
from kaito_gen.compiler.emit.inference import emit_inference
from kaito_gen.compiler.emit.inferenceset import scale_bundle
from kaito_gen.compiler.emit.monitoring import emit_monitoring
from kaito_gen.compiler.emit.networkpolicy import emit_network_policy
from kaito_gen.compiler.emit.nodepool import emit_nodepool
from kaito_gen.compiler.emit.passthrough import passthrough
from kaito_gen.compiler.emit.tuning import emit_training_config, emit_tuning
from kaito_gen.compiler.emit.vllm import emit_vllm_workload
from kaito_gen.compiler.plan import SHARED_BUNDLE, Plan, WorkspacePlan
from kaito_gen.compiler.validate import ObjectInput
from kaito_gen.models.target import Target

Emitter = Callable[[WorkspacePlan, Target], list[Manifest]]


KUSTOMIZATION = "kustomization.yaml"


def resource_filename(manifest: Mapping[str, Any]) -> str:
    """The file a manifest is written to inside its bundle: `<kind>-<name>.yaml`."""
    return f"{str(manifest['kind']).lower()}-{manifest['metadata']['name']}.yaml"


def emit_user_objects(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    return [passthrough(obj) for obj in sorted(plan.objects, key=lambda o: (o.kind, o.name))]


EMITTERS: tuple[Emitter, ...] = (
    emit_nodepool,
    emit_user_objects,
    emit_training_config,
    emit_inference,
    emit_vllm_workload,
    emit_tuning,
    emit_monitoring,
    emit_network_policy,
)


@dataclass(frozen=True)
class Bundle:
    path: str  # "<namespace>/<workspace>" or "<namespace>/_shared"
    sources: tuple[str, ...]  # input files it was compiled from
    manifests: tuple[Manifest, ...]


def emit(plan: Plan, target: Target) -> tuple[Bundle, ...]:
    return tuple(emit_iter(plan, target))


def emit_iter(plan: Plan, target: Target) -> Iterator[Bundle]:
    """Bundles in path order, one at a time, so a caller can render and release each.

    Only the order is computed up front (from the planned paths); each bundle's manifests are
    emitted when it is its turn, so at most one bundle's manifest tree is alive at once."""

    def workspace_bundle(wp: WorkspacePlan) -> Bundle:
        manifests: list[Manifest] = []
        for emitter in EMITTERS:
            manifests.extend(emitter(wp, target))
        manifests = scale_bundle(wp, target, manifests)  # InferenceSets: replicas, limits, KEDA
        sources = sorted({wp.rw.input.doc.file, *(o.doc.file for o in wp.objects)})
        return Bundle(wp.bundle, tuple(sources), tuple(manifests))

    def shared_bundle(namespace: str, objects: Sequence[ObjectInput]) -> Bundle:
        manifests = [passthrough(o) for o in sorted(objects, key=lambda o: (o.kind, o.name))]
        sources = sorted({o.doc.file for o in objects})
        return Bundle(f"{namespace}/{SHARED_BUNDLE}", tuple(sources), tuple(manifests))

    # (path, emission order) keeps the stable order of equal paths that a sort of the bundles had.
    order: list[tuple[str, int, Callable[[], Bundle]]] = []
    for wp in plan.workspaces:
        order.append((wp.bundle, len(order), functools.partial(workspace_bundle, wp)))
    for namespace, objects in sorted(plan.shared.items()):
        order.append(
            (f"{namespace}/{SHARED_BUNDLE}", len(order), functools.partial(shared_bundle, namespace, objects))
        )
    order.sort(key=lambda item: (item[0], item[1]))
    for _, _, make in order:
        yield make()
