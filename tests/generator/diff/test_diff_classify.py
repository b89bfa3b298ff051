"""The diff classifier: one golden case per change kind, built by compiling two variants of
Workspaces with the real pipeline, plus table cases for rules the compiler cannot produce today."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.compiler.load import load, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.core.errors import InputError
from kaito_gen.models.target import Target
from kaito_gen.review.diff import DiffReport, classify, format_price
from kaito_gen.review.diffrender import COMMENT_MARKER, render_json, render_markdown, render_text

CHAT = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: chat
  namespace: ml
resource:
  instanceType: {sku}
  count: {count}
  labelSelector:
    matchLabels:
      apps: {app}
inference:
  preset:
    name: phi-3-mini-4k-instruct
"""
TUNE = """\
---
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: tune
  namespace: ml
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: tune
tuning:
  preset:
    name: phi-3-mini-4k-instruct
  method: qlora
  input:
    urls: ["{url}"]
  output:
    image: myregistry.azurecr.io/adapters/tune:0.0.1
    imagePushSecret: push
"""
BASE_SKU = "Standard_NC24ads_A100_v4"
BIG_SKU = "Standard_NC48ads_A100_v4"


def workspaces(
    sku: str = BASE_SKU,
    count: int = 1,
    app: str = "chat",
    url: str = "https://example.com/a.parquet",
    tune: bool = True,
) -> str:
    return CHAT.format(sku=sku, count=count, app=app) + (TUNE.format(url=url) if tune else "")


@pytest.fixture(scope="module")
def catalog() -> PresetCatalog:
    return load_presets()


def render(tmp_path: Path, catalog: PresetCatalog, text: str, **target: Any) -> dict[str, str]:
    folder = tmp_path / f"ws{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / "workspaces.yaml").write_text(text)
    compiled = compile_inputs(load([folder], base=folder), catalog, Target(**target))
    assert compiled.ok, compiled.diagnostics
    return compiled.files


def by_resource(report: DiffReport, bundle: str) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    found = [b for b in report.bundles if b.bundle == bundle]
    assert len(found) == 1, f"{bundle} not in {[b.bundle for b in report.bundles]}"
    out: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for change in found[0].changes:
        out.setdefault(change.resource, []).append((change.kind, change.fields))
    return out


def kinds(report: DiffReport, bundle: str) -> dict[str, set[str]]:
    return {res: {k for k, _ in changes} for res, changes in by_resource(report, bundle).items()}


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory: pytest.TempPathFactory, catalog: PresetCatalog) -> dict[str, str]:
    return render(tmp_path_factory.mktemp("base"), catalog, workspaces())


def test_identical_trees_have_no_changes(base_tree: dict[str, str], catalog: PresetCatalog) -> None:
    report = classify(base_tree, dict(base_tree), catalog)
    assert not report.changed
    assert report.unchanged == 2
    assert "No changes" in render_text(report)


def test_rollout_when_the_pod_template_changes(
    tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog
) -> None:
    report = classify(base_tree, render(tmp_path, catalog, workspaces(app="chat-v2")), catalog)
    assert [b.bundle for b in report.bundles] == ["ml/chat"]
    changes = by_resource(report, "ml/chat")
    assert [k for k, _ in changes["StatefulSet/chat"]] == ["rollout"]
    assert any("affinity" in f for f in changes["StatefulSet/chat"][0][1])
    # New node labels: Karpenter drifts the nodes, but the pool keeps its requirements.
    assert [k for k, _ in changes["NodePool/ml-chat"]] == ["rollout"]
    assert "" not in changes  # same SKU and count: no capacity record


def test_rollout_when_the_runtime_image_changes(
    tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog
) -> None:
    report = classify(base_tree, render(tmp_path, catalog, workspaces(), runtime_tag="9.9.9"), catalog)
    chat = by_resource(report, "ml/chat")
    assert chat["StatefulSet/chat"][0][0] == "rollout"
    assert "spec.template.spec.containers[0].image" in chat["StatefulSet/chat"][0][1]
    assert {k for k, _ in chat["Service/chat"]} == {"in-place"}  # only the version label changed
    # The tuning Job's spec hash covers its image: a new tag is a new Job, i.e. a re-run.
    assert "tuning-rerun" in {k for ks in kinds(report, "ml/tune").values() for k in ks}


def test_replacement_and_capacity_when_the_sku_changes(
    tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog
) -> None:
    report = classify(base_tree, render(tmp_path, catalog, workspaces(sku=BIG_SKU)), catalog)
    chat = by_resource(report, "ml/chat")
    assert chat["NodePool/ml-chat"][0][0] == "replacement"
    assert "spec.template.spec.requirements[0].values[0]" in chat["NodePool/ml-chat"][0][1]
    assert chat["StatefulSet/chat"][0][0] == "rollout"
    bundle = report.bundles[0]
    old, new = catalog.find_sku(BASE_SKU), catalog.find_sku(BIG_SKU)
    assert old is not None and new is not None and old.price_per_hour and new.price_per_hour
    assert bundle.capacity_before is not None and bundle.capacity_after is not None
    assert (bundle.capacity_before.instance_type, bundle.capacity_before.gpus) == (BASE_SKU, old.gpu_count)
    assert (bundle.capacity_after.instance_type, bundle.capacity_after.gpus) == (BIG_SKU, new.gpu_count)
    assert bundle.capacity_after.price_per_hour == new.price_per_hour
    assert report.cost_delta() == new.price_per_hour - old.price_per_hour
    assert chat[""][0][0] == "capacity"
    text = render_text(report)
    assert f"{format_price(old.price_per_hour)} → " in text and format_price(new.price_per_hour) in text
    assert bundle.kinds[0] == "replacement"  # the most disruptive kind leads


def test_replacement_when_a_statefulset_gains_volume_claim_templates(
    tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog
) -> None:
    # An NVMe SKU with a weights StorageClass puts the weights on a PVC template.
    new = render(tmp_path, catalog, workspaces(), weights_storage_class="local-nvme")
    chat = by_resource(classify(base_tree, new, catalog), "ml/chat")
    kind, fields = chat["StatefulSet/chat"][0]
    assert kind == "replacement"
    assert "spec.volumeClaimTemplates" in fields


def test_in_place_and_capacity_when_the_node_count_changes(
    tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog
) -> None:
    report = classify(base_tree, render(tmp_path, catalog, workspaces(count=2)), catalog)
    chat = by_resource(report, "ml/chat")
    assert chat["StatefulSet/chat"][0][0] == "in-place"
    assert "spec.replicas" in chat["StatefulSet/chat"][0][1]
    assert chat["NodePool/ml-chat"][0][0] == "capacity"  # its limits follow the node count
    bundle = report.bundles[0]
    assert bundle.capacity_before is not None and bundle.capacity_after is not None
    assert (bundle.capacity_before.node_count, bundle.capacity_after.node_count) == (1, 2)
    sku = catalog.find_sku(BASE_SKU)
    assert sku is not None and sku.price_per_hour is not None
    assert bundle.capacity_after.price_per_hour == 2 * sku.price_per_hour
    assert report.cost_delta() == sku.price_per_hour


def test_tuning_rerun_when_the_job_hash_changes(
    tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog
) -> None:
    new = render(tmp_path, catalog, workspaces(url="https://example.com/b.parquet"))
    report = classify(base_tree, new, catalog)
    assert [b.bundle for b in report.bundles] == ["ml/tune"]
    old_job = next(p for p in base_tree if p.startswith("ml/tune/job-")).split("job-", 1)[1][: -len(".yaml")]
    new_job = next(p for p in new if p.startswith("ml/tune/job-")).split("job-", 1)[1][: -len(".yaml")]
    assert old_job != new_job
    (change,) = report.bundles[0].changes
    assert (change.kind, change.resource) == ("tuning-rerun", f"Job/{new_job}")
    assert old_job in change.summary and new_job in change.summary
    assert any("initContainers" in f for f in change.fields)  # the changed download URL


def test_added_and_removed_bundles(tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog) -> None:
    without_tune = render(tmp_path, catalog, workspaces(tune=False))
    removed = classify(base_tree, without_tune, catalog)
    (bundle,) = removed.bundles
    assert (bundle.bundle, bundle.status) == ("ml/tune", "removed")
    assert {"Job", "NodePool", "ConfigMap"} <= {
        c.resource.split("/")[0] for c in bundle.changes if c.kind == "removed"
    }
    delta = removed.cost_delta()
    assert bundle.capacity_after is None and delta is not None and delta < 0
    added = classify(without_tune, base_tree, catalog)
    assert [(b.bundle, b.status) for b in added.bundles] == [("ml/tune", "added")]
    assert all(c.kind in ("added", "capacity") for c in added.bundles[0].changes)


# --- rules the compiler cannot produce today: table cases over hand-written trees -----------------


def tree(*docs: dict[str, Any]) -> dict[str, str]:
    return {f"ns/b/{d['kind'].lower()}-{d['metadata']['name']}.yaml": yaml.safe_dump(d) for d in docs}


def obj(kind: str, api: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "x", "namespace": "ns"}, **body}


TABLE = [
    ("deployment-selector", obj("Deployment", "apps/v1", spec={"selector": {"a": "1"}}), {"spec": {"selector": {"a": "2"}}}, "replacement"),
    ("deployment-template", obj("Deployment", "apps/v1", spec={"template": {"a": "1"}}), {"spec": {"template": {"a": "2"}}}, "rollout"),
    ("deployment-replicas", obj("Deployment", "apps/v1", spec={"replicas": 1}), {"spec": {"replicas": 3}}, "in-place"),
    ("job-same-name-spec", obj("Job", "batch/v1", spec={"backoffLimit": 1}), {"spec": {"backoffLimit": 2}}, "replacement"),
    ("job-labels-only", obj("Job", "batch/v1", spec={}), {"metadata": {"name": "x", "namespace": "ns", "labels": {"a": "b"}}}, "in-place"),
    ("statefulset-service-name", obj("StatefulSet", "apps/v1", spec={"serviceName": "a"}), {"spec": {"serviceName": "b"}}, "replacement"),
    ("statefulset-selector", obj("StatefulSet", "apps/v1", spec={"selector": {"a": "1"}}), {"spec": {"selector": {"a": "2"}}}, "replacement"),
    ("nodepool-node-class", obj("NodePool", "karpenter.sh/v1", spec={"template": {"spec": {"nodeClassRef": {"name": "a"}}}}),
     {"spec": {"template": {"spec": {"nodeClassRef": {"name": "b"}}}}}, "replacement"),
    ("nodepool-limits", obj("NodePool", "karpenter.sh/v1", spec={"limits": {"nodes": "1"}}), {"spec": {"limits": {"nodes": "2"}}}, "capacity"),
    ("statefulset-replicas", obj("StatefulSet", "apps/v1", spec={"replicas": 1}), {"spec": {"replicas": 3}}, "in-place"),
    ("lws-replicas", obj("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", spec={"replicas": 1}), {"spec": {"replicas": 2}}, "in-place"),
    ("lws-group-template", obj("LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1", spec={"leaderWorkerTemplate": {"size": 2}}),
     {"spec": {"leaderWorkerTemplate": {"size": 3}}}, "rollout"),
    ("configmap-immutable", obj("ConfigMap", "v1", immutable=True, data={"k": "1"}), {"data": {"k": "2"}}, "replacement"),
    ("configmap-mutable", obj("ConfigMap", "v1", data={"k": "1"}), {"data": {"k": "2"}}, "in-place"),
    ("pvc-storage-class", obj("PersistentVolumeClaim", "v1", spec={"storageClassName": "a"}), {"spec": {"storageClassName": "b"}}, "replacement"),
    ("pvc-resize", obj("PersistentVolumeClaim", "v1", spec={"resources": {"requests": {"storage": "1Gi"}}}),
     {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}, "in-place"),
    ("service-port", obj("Service", "v1", spec={"ports": [{"port": 80}]}), {"spec": {"ports": [{"port": 81}]}}, "in-place"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "old", "update", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_update_kind_table(case: str, old: dict[str, Any], update: dict[str, Any], expected: str) -> None:
    new = {**old, **update}
    report = classify(tree(old), tree(new))
    (change,) = report.bundles[0].changes
    assert (change.kind, change.resource) == (expected, f"{old['kind']}/x"), case


def test_unparseable_base_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        classify({"ns/b/a.yaml": "kind: [unclosed"}, {})
    assert "base:ns/b/a.yaml" in str(err.value)
    with pytest.raises(InputError, match=r"no kind or metadata\.name"):
        classify({}, {"ns/b/a.yaml": "just: a map\n"})


def test_long_field_lists_are_trimmed() -> None:
    old = obj("ConfigMap", "v1", data={f"k{i}": "1" for i in range(30)})
    new = obj("ConfigMap", "v1", data={f"k{i}": "2" for i in range(30)})
    (change,) = classify(tree(old), tree(new)).bundles[0].changes
    assert len(change.fields) + change.more_fields == 30 and change.more_fields > 0


def test_renderers(tmp_path: Path, base_tree: dict[str, str], catalog: PresetCatalog) -> None:
    report = classify(base_tree, render(tmp_path, catalog, workspaces(sku=BIG_SKU, tune=False)), catalog)
    markdown = render_markdown(report)
    assert markdown.startswith(COMMENT_MARKER)
    assert "| `ml/chat` | changed | **replacement**" in markdown
    assert "| `ml/tune` | removed |" in markdown
    assert markdown.count("<details>") == markdown.count("</details>") == 2
    payload = json.loads(render_json(report))
    assert payload["changed"] is True
    assert payload["counts"]["replacement"] == 1 and payload["counts"]["tuning-rerun"] == 0
    chat = next(b for b in payload["bundles"] if b["bundle"] == "ml/chat")
    assert chat["capacityAfter"]["instanceType"] == BIG_SKU
    assert Decimal(payload["costDeltaPerHour"]) == report.cost_delta()
    text = render_text(report)
    assert text.splitlines()[0].startswith("~ ml/chat (changed: replacement")
    assert "- ml/tune (removed" in text
