"""Semantic diff of two rendered trees: what changes in each bundle, and what kind of change it is.

Pure: ``classify(old, new, catalog)`` takes two ``{relative path: text}`` trees (the committed
output and a fresh render, or two git revisions of it) and returns typed records, so the rules
are table-testable. The CLI edge (``diff_cmd``) reads the trees; the renderers here turn a
:class:`DiffReport` into text, a PR-comment markdown or JSON.

The kinds, from the point of view of the cluster after a sync (GITOPS.md §3.6):

* ``in-place``     the object is patched; nothing restarts (Service, ConfigMap, labels, replicas);
* ``rollout``      a pod template changed: pods are replaced one by one (StatefulSet/Deployment
                   ``spec.template``) or Karpenter drifts nodes (other NodePool ``spec.template`` fields);
* ``replacement``  an immutable field changed: the object must be deleted and re-created
                   (StatefulSet selector/volumeClaimTemplates/serviceName, any Job spec, NodePool
                   requirements or nodeClassRef, whose nodes are all replaced);
* ``tuning-rerun`` a tuning Job got a new name (a new spec hash): the old Job is pruned, the new one
                   runs again on GPUs;
* ``capacity``     SKU, node count or GPU count changed, with $/h before and after from the GPU table;
* ``added`` / ``removed``  whole resources (and bundles) that appear or disappear.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.core.errors import Diagnostic, InputError, SourcePos
from kaito_gen.review.values import ValueChange, value_changes

ChangeKind = Literal["added", "removed", "in-place", "rollout", "replacement", "tuning-rerun", "capacity"]
BundleStatus = Literal["added", "removed", "changed"]

# Most disruptive first: the summary of a bundle is its first kind in this order.
SEVERITY: tuple[ChangeKind, ...] = (
    "replacement",
    "tuning-rerun",
    "rollout",
    "capacity",
    "removed",
    "added",
    "in-place",
)
ANNOTATION_PREFIX = "kaito-gen.io/"
INSTANCE_TYPE = "kaito-gen.io/instance-type"
NODE_COUNT = "kaito-gen.io/node-count"
WORKSPACE_LABEL = "kaito.sh/workspace"
# Files that are not resources of a bundle (the kustomization only lists the files of the bundle).
IGNORED_FILES = frozenset({".kaito-gen", "kustomization.yaml"})
MAX_FIELDS = 12  # changed paths listed per resource; the rest are counted
MAX_VALUES = 25  # changed values listed per resource; the rest are counted
# A generated name that ends in a content hash (tuning ConfigMaps, Jobs): a new hash is a new object.
HASHED_NAME = re.compile(r"^(?P<stem>.+)-[0-9a-f]{8,16}$")
MAX_DOCUMENTS = 20_000  # a bound on what a (possibly hostile) base tree can make us parse

# StatefulSet updates may only touch these spec fields (apps/v1 validation); anything else is immutable.
STATEFULSET_MUTABLE = ("replicas", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
                       "minReadySeconds", "ordinals")  # fmt: skip
# Workloads with a scale subresource (what an InferenceSet compiles to; KEDA scales them too).
SCALABLE = ("StatefulSet", "Deployment", "LeaderWorkerSet")
NODEPOOL_IMMUTABLE = ("spec.template.spec.requirements", "spec.template.spec.nodeClassRef")


@dataclass(frozen=True)
class Capacity:
    """What a bundle asks the cloud for, read from the kaito-gen.io/ annotations."""

    instance_type: str | None
    node_count: int | None
    gpus: int | None
    price_per_hour: Decimal | None

    def describe(self, currency: str = "USD") -> str:
        parts = [
            f"{self.instance_type or 'no SKU'} x{self.node_count if self.node_count is not None else '?'}"
        ]
        if self.gpus is not None:
            parts.append(f"{self.gpus} GPU")
        parts.append(format_price(self.price_per_hour, currency))
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "instanceType": self.instance_type,
            "nodeCount": self.node_count,
            "gpus": self.gpus,
            "pricePerHour": None if self.price_per_hour is None else str(self.price_per_hour),
        }


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    resource: str  # "Kind/name" ("" for a bundle-level capacity change)
    summary: str
    fields: tuple[str, ...] = ()
    more_fields: int = 0
    values: tuple[ValueChange, ...] = ()
    more_values: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "resource": self.resource,
            "summary": self.summary,
            "fields": list(self.fields),
            "moreFields": self.more_fields,
            "values": [v.to_json() for v in self.values],
            "moreValues": self.more_values,
        }


@dataclass(frozen=True)
class BundleDiff:
    bundle: str  # "<namespace>/<workspace>" (the directory under the output root)
    status: BundleStatus
    changes: tuple[Change, ...]
    capacity_before: Capacity | None = None
    capacity_after: Capacity | None = None

    @property
    def kinds(self) -> tuple[ChangeKind, ...]:
        present = {c.kind for c in self.changes}
        return tuple(k for k in SEVERITY if k in present)

    def to_json(self, currency: str) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "status": self.status,
            "kinds": list(self.kinds),
            "changes": [c.to_json() for c in self.changes],
            "capacityBefore": self.capacity_before.to_json() if self.capacity_before else None,
            "capacityAfter": self.capacity_after.to_json() if self.capacity_after else None,
            "currency": currency,
        }


@dataclass(frozen=True)
class DiffReport:
    bundles: tuple[BundleDiff, ...]
    currency: str = "USD"
    price_source: str | None = None
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.bundles)

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for b in self.bundles for c in b.changes if c.kind == kind)

    def cost_delta(self) -> Decimal | None:
        """Sum of $/h after minus before over changed bundles; None when a price is unknown."""
        total = Decimal(0)
        for b in self.bundles:
            for cap, sign in ((b.capacity_before, -1), (b.capacity_after, 1)):
                if cap is None:
                    continue
                if cap.price_per_hour is None:
                    return None
                total += sign * cap.price_per_hour
        return total

    def cost_totals(self) -> tuple[Decimal, Decimal] | None:
        """$/h before and after, summed over the bundles whose capacity changes; None when a price
        is unknown (or no capacity changes)."""
        moved = [b for b in self.bundles if b.capacity_before != b.capacity_after]
        caps = [c for b in moved for c in (b.capacity_before, b.capacity_after) if c is not None]
        if not moved or any(c.price_per_hour is None for c in caps):
            return None
        before = sum(
            (b.capacity_before.price_per_hour or Decimal(0) for b in moved if b.capacity_before), Decimal(0)
        )
        after = sum(
            (b.capacity_after.price_per_hour or Decimal(0) for b in moved if b.capacity_after), Decimal(0)
        )
        return before, after


# --- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resource:
    key: tuple[str, str, str, str]  # (group, kind, namespace, name)
    doc: Mapping[str, Any]
    path: str

    @property
    def label(self) -> str:
        return f"{self.key[1]}/{self.key[3]}"


def _bundle_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else "."


def _parse_tree(tree: Mapping[str, str], side: str) -> dict[str, dict[tuple[str, str, str, str], _Resource]]:
    """{bundle: {key: resource}}; every unparseable file is reported at once (exit 2)."""
    yaml = YAML(typ="safe", pure=False)
    bundles: dict[str, dict[tuple[str, str, str, str], _Resource]] = {}
    problems: list[Diagnostic] = []
    seen = 0
    for path, text in sorted(tree.items()):
        name = path.rsplit("/", 1)[-1]
        if name in IGNORED_FILES or not name.endswith((".yaml", ".yml")):
            continue
        try:
            docs = [d for d in yaml.load_all(text) if d is not None]
        except YAMLError as exc:
            problems.append(
                Diagnostic(SourcePos(f"{side}:{path}"), (), f"not valid YAML: {exc}", code="diff")
            )
            continue
        for doc in docs:
            seen += 1
            if seen > MAX_DOCUMENTS:
                raise InputError(
                    [Diagnostic(SourcePos(side), (), f"more than {MAX_DOCUMENTS} documents", code="diff")]
                )
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if not isinstance(meta, dict) or not isinstance(doc.get("kind"), str) or not meta.get("name"):
                problems.append(
                    Diagnostic(
                        SourcePos(f"{side}:{path}"), (), "document has no kind or metadata.name", code="diff"
                    )
                )
                continue
            group = str(doc.get("apiVersion", "")).rpartition("/")[0]
            key = (group, doc["kind"], str(meta.get("namespace") or ""), str(meta["name"]))
            bundles.setdefault(_bundle_of(path), {})[key] = _Resource(key, doc, path)
    if problems:
        raise InputError(problems)
    return bundles


# --- field-level comparison ----------------------------------------------------------------------


def changed_paths(old: Any, new: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every leaf that differs (lists compared by index; extra items as wholes)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                yield sub
            else:
                yield from changed_paths(old[key], new[key], sub)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{prefix}[{i}]"
            if i >= len(old) or i >= len(new):
                yield sub
            else:
                yield from changed_paths(old[i], new[i], sub)
    elif old != new:
        yield prefix


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith((root + ".", root + "["))


def _classify_paths(kind: str, paths: Sequence[str], old: Mapping[str, Any]) -> tuple[ChangeKind, str]:
    """The kind of an update of one object (same key on both sides) and why."""
    spec_paths = [p for p in paths if _under(p, "spec")]
    if kind in SCALABLE and spec_paths and all(p == "spec.replicas" for p in spec_paths):
        return "in-place", "replicas changed: scaled in place; running replicas keep serving"
    if kind == "LeaderWorkerSet" and any(_under(p, "spec.leaderWorkerTemplate") for p in spec_paths):
        return "rollout", "group template changed: groups are replaced one by one"
    if kind == "Job" and spec_paths:
        return "replacement", "a Job spec is immutable: the Job is deleted and re-created (it runs again)"
    if kind == "StatefulSet":
        frozen = [p for p in spec_paths if not any(_under(p, f"spec.{m}") for m in STATEFULSET_MUTABLE)]
        if frozen:
            return (
                "replacement",
                f"immutable StatefulSet field {frozen[0]}: delete and re-create (pods restart)",
            )
        if any(_under(p, "spec.template") for p in spec_paths):
            return "rollout", "pod template changed: pods are replaced one by one"
    if kind == "Deployment":
        if any(_under(p, "spec.selector") for p in spec_paths):
            return "replacement", "a Deployment selector is immutable: delete and re-create"
        if any(_under(p, "spec.template") for p in spec_paths):
            return "rollout", "pod template changed: pods are replaced by the rollout strategy"
    if kind == "NodePool":
        hit = [p for p in spec_paths if any(_under(p, f) for f in NODEPOOL_IMMUTABLE)]
        if hit:
            return "replacement", f"{hit[0]} changed: Karpenter replaces every node of the pool (drift)"
        if any(_under(p, "spec.template") for p in spec_paths):
            return "rollout", "node template changed: Karpenter drifts nodes within the disruption budget"
        if any(_under(p, "spec.limits") or p == "spec.replicas" for p in spec_paths):
            return (
                "capacity",
                "node count or limits changed: Karpenter may run a different number of GPU nodes",
            )
    if kind == "ConfigMap" and old.get("immutable") is True and any(_under(p, "data") for p in paths):
        return "replacement", "an immutable ConfigMap's data changed: delete and re-create"
    if kind == "PersistentVolumeClaim" and any(not _under(p, "spec.resources") for p in spec_paths):
        return "replacement", "a PVC spec is immutable except its size: delete and re-create"
    return "in-place", "patched in place; nothing restarts"


def _trim(paths: Sequence[str]) -> tuple[tuple[str, ...], int]:
    return tuple(paths[:MAX_FIELDS]), max(0, len(paths) - MAX_FIELDS)


def _update(
    kind: ChangeKind,
    before: _Resource,
    after: _Resource,
    summary: str,
    paths: Sequence[str],
    skip: Sequence[str] = (),
) -> Change:
    """A change record with its changed paths and values (both capped)."""
    shown, more = _trim(paths)
    values = value_changes(after.key[1], before.doc, after.doc, skip)
    return Change(
        kind, after.label, summary, shown, more, tuple(values[:MAX_VALUES]), max(0, len(values) - MAX_VALUES)
    )


# --- capacity -------------------------------------------------------------------------------------


def _annotations(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = doc.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    return ann if isinstance(ann, dict) else {}


def _capacity(
    resources: Mapping[tuple[str, str, str, str], _Resource], catalog: PresetCatalog | None
) -> Capacity | None:
    # The workload's annotations are authoritative; the NodePool carries the same ones.
    order = {"StatefulSet": 0, "Deployment": 0, "LeaderWorkerSet": 0, "Job": 1, "NodePool": 2}
    candidates = sorted(
        (r for r in resources.values() if r.key[1] in order and NODE_COUNT in _annotations(r.doc)),
        key=lambda r: (order[r.key[1]], r.key),
    )
    if not candidates:
        return None
    ann = _annotations(candidates[0].doc)
    sku_name = ann.get(INSTANCE_TYPE)
    sku_name = str(sku_name) if sku_name else None
    try:
        nodes: int | None = int(str(ann.get(NODE_COUNT)))
    except ValueError:
        nodes = None
    sku = catalog.find_sku(sku_name) if (catalog and sku_name) else None
    gpus = sku.gpu_count * nodes if (sku and nodes is not None) else None
    price = (
        sku.price_per_hour * nodes if (sku and sku.price_per_hour is not None and nodes is not None) else None
    )
    return Capacity(sku_name, nodes, gpus, price)


def format_price(price: Decimal | None, currency: str = "USD") -> str:
    if price is None:
        return "price unknown"
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{price.quantize(Decimal('0.01'))}/h"


# --- the classifier -------------------------------------------------------------------------------


def _tuning_job(resource: _Resource) -> bool:
    labels = resource.doc.get("metadata", {}).get("labels") or {}
    return resource.key[1] == "Job" and labels.get("app.kubernetes.io/component") == "tuning"


def _hash_renames(
    removed: Sequence[_Resource], added: Sequence[_Resource]
) -> list[tuple[_Resource, _Resource]]:
    """Pairs (old, new) of one kind and namespace whose names differ only in a content hash,
    where exactly one of each side has that stem."""

    def stems(resources: Sequence[_Resource]) -> dict[tuple[str, str, str, str], list[_Resource]]:
        out: dict[tuple[str, str, str, str], list[_Resource]] = {}
        for r in resources:
            match = HASHED_NAME.match(r.key[3])
            if match:
                out.setdefault((*r.key[:3], match["stem"]), []).append(r)
        return out

    old_stems, new_stems = stems(removed), stems(added)
    return [
        (old_stems[k][0], new_stems[k][0])
        for k in sorted(set(old_stems) & set(new_stems))
        if len(old_stems[k]) == 1 and len(new_stems[k]) == 1
    ]


def price_unit(currency: str) -> str:
    return "$/h" if currency == "USD" else f"{currency}/h"


def _capacity_values(
    before: Capacity | None, after: Capacity | None, currency: str
) -> tuple[ValueChange, ...]:
    """``~ instanceType: A → B``, ``~ nodes``, ``~ gpus`` and ``~ $/h: 3.67 → 7.35``."""

    def facts(cap: Capacity | None) -> dict[str, Any]:
        if cap is None:
            return {}
        price = "unknown" if cap.price_per_hour is None else _money(cap.price_per_hour)
        return {"instanceType": cap.instance_type, "nodes": cap.node_count, "gpus": cap.gpus, "price": price}

    old, new = facts(before), facts(after)
    out: list[ValueChange] = []
    for name in ("instanceType", "nodes", "gpus", "price"):
        if old.get(name) != new.get(name):
            op: Literal["~", "+", "-"] = "+" if before is None else "-" if after is None else "~"
            label = price_unit(currency) if name == "price" else name
            out.append(ValueChange(op, label, old.get(name), new.get(name)))
    return tuple(out)


def _money(price: Decimal) -> float:
    return float(price.quantize(Decimal("0.01")))


def _diff_bundle(
    name: str,
    old: Mapping[tuple[str, str, str, str], _Resource],
    new: Mapping[tuple[str, str, str, str], _Resource],
    catalog: PresetCatalog | None,
    currency: str,
) -> BundleDiff | None:
    changes: list[Change] = []
    removed = [old[k] for k in sorted(set(old) - set(new))]
    added = [new[k] for k in sorted(set(new) - set(old))]
    # A tuning Job's name carries the hash of its spec: a rename is a re-run, not an add + remove.
    old_jobs = [r for r in removed if _tuning_job(r)]
    new_jobs = [r for r in added if _tuning_job(r)]
    for before, after in zip(old_jobs, new_jobs, strict=False):
        paths = [p for p in changed_paths(before.doc, after.doc) if p != "metadata.name"]
        why = f"new tuning spec hash: Job {before.key[3]} is pruned and {after.key[3]} runs on GPUs again"
        changes.append(_update("tuning-rerun", before, after, why, paths, skip=("metadata.name",)))
        removed.remove(before)
        added.remove(after)
    # Other content-hashed names (tuning ConfigMaps): the new object replaces the old one.
    for before, after in _hash_renames(removed, added):
        paths = [p for p in changed_paths(before.doc, after.doc) if p != "metadata.name"]
        why = f"new content hash: {before.key[1]} {before.key[3]} is pruned and {after.key[3]} is created"
        changes.append(_update("replacement", before, after, why, paths, skip=("metadata.name",)))
        removed.remove(before)
        added.remove(after)
    changes.extend(Change("removed", r.label, "deleted from the cluster (pruned)") for r in removed)
    changes.extend(Change("added", r.label, "created") for r in added)
    for key in sorted(set(old) & set(new)):
        paths = list(changed_paths(old[key].doc, new[key].doc))
        if not paths:
            continue
        kind, why = _classify_paths(key[1], paths, old[key].doc)
        changes.append(_update(kind, old[key], new[key], why, paths))
    cap_before = _capacity(old, catalog) if old else None
    cap_after = _capacity(new, catalog) if new else None
    if cap_before != cap_after and (cap_before or cap_after):
        before_text = cap_before.describe(currency) if cap_before else "nothing"
        after_text = cap_after.describe(currency) if cap_after else "nothing"
        changes.append(
            Change(
                "capacity",
                "",
                f"{before_text} → {after_text}",
                values=_capacity_values(cap_before, cap_after, currency),
            )
        )
    if not changes:
        return None
    status: BundleStatus = "added" if not old else "removed" if not new else "changed"
    return BundleDiff(name, status, tuple(changes), cap_before, cap_after)


def classify(
    old: Mapping[str, str], new: Mapping[str, str], catalog: PresetCatalog | None = None
) -> DiffReport:
    """Compare two rendered trees ({relative path: text}); raise InputError on unparseable YAML."""
    before = _parse_tree(old, "base")
    after = _parse_tree(new, "head")
    currency = catalog.prices.currency if catalog and catalog.prices else "USD"
    source = f"{catalog.prices.source}, as of {catalog.prices.as_of}" if catalog and catalog.prices else None
    bundles: list[BundleDiff] = []
    unchanged = 0
    for name in sorted(set(before) | set(after)):
        result = _diff_bundle(name, before.get(name, {}), after.get(name, {}), catalog, currency)
        if result is None:
            unchanged += 1
        else:
            bundles.append(result)
    return DiffReport(tuple(bundles), currency, source, unchanged)
