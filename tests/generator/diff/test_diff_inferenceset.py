"""Golden diffs of InferenceSet edits, compiled by the real pipeline (issue 9): a replica change is
in-place scaling, a node-count or nodeCountLimit change is capacity, and autoscaling's bounds move
the ScaledObject in place.

Regenerate after an intended change: UPDATE_GOLDEN=1 pytest tests/generator/diff/test_diff_inferenceset.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.compiler.load import load, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.models.target import Target
from kaito_gen.review.diff import classify
from kaito_gen.review.diffrender import render_markdown, render_text

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
BASE = """\
apiVersion: kaito.sh/v1beta1
kind: InferenceSet
metadata:
  name: phi-4
  namespace: ml
spec:
  replicas: 2
  nodeCountLimit: 4
  labelSelector:
    matchLabels:
      apps: phi-4
  template:
    resource:
      instanceType: Standard_NC24ads_A100_v4
    inference:
      preset:
        name: phi-4-mini-instruct
"""
KEDA = BASE.replace(
    "  namespace: ml\n",
    '  namespace: ml\n  annotations:\n    scaledobject.kaito.sh/auto-provision: "true"\n'
    '    scaledobject.kaito.sh/threshold: "10"\n    scaledobject.kaito.sh/max-replicas: "3"\n',
)
CASES = {
    "set-replicas": (BASE, BASE.replace("replicas: 2", "replicas: 3")),
    "set-node-limit": (BASE, BASE.replace("nodeCountLimit: 4", "nodeCountLimit: 6")),
    "set-max-replicas": (KEDA, KEDA.replace('max-replicas: "3"', 'max-replicas: "4"')),
    "set-autoscaling-on": (BASE, KEDA),
}
TARGET = Target(autoscaling={"prometheus_address": "http://prometheus.monitoring.svc:9090"})


@pytest.fixture(scope="module")
def catalog() -> PresetCatalog:
    return load_presets()


def render(folder: Path, catalog: PresetCatalog, text: str) -> dict[str, str]:
    folder.mkdir()
    (folder / "set.yaml").write_text(text)
    compiled = compile_inputs(load([folder], base=folder), catalog, TARGET)
    assert compiled.ok, compiled.diagnostics
    return compiled.files


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_inferenceset_diff(case: str, tmp_path: Path, catalog: PresetCatalog) -> None:
    old, new = CASES[case]
    report = classify(render(tmp_path / "a", catalog, old), render(tmp_path / "b", catalog, new), catalog)
    outputs = {"txt": render_text(report), "md": render_markdown(report)}
    for ext, text in outputs.items():
        path = GOLDEN / f"{case}.{ext}"
        if UPDATE:
            path.write_text(text)
        assert path.read_text() == text, f"{path.name} differs (UPDATE_GOLDEN=1 to regenerate)"


def test_replica_change_is_in_place_scaling_and_limit_change_is_capacity(
    tmp_path: Path, catalog: PresetCatalog
) -> None:
    def kinds(case: str) -> dict[str, str]:
        old, new = CASES[case]
        report = classify(
            render(tmp_path / f"{case}-a", catalog, old),
            render(tmp_path / f"{case}-b", catalog, new),
            catalog,
        )
        (bundle,) = report.bundles
        return {c.resource: c.kind for c in bundle.changes}

    scaled = kinds("set-replicas")
    assert scaled["StatefulSet/phi-4"] == "in-place"
    assert scaled[""] == "capacity"  # 2 → 3 nodes, priced
    limited = kinds("set-node-limit")
    assert limited == {"NodePool/ml-phi-4": "capacity"}
    bounds = kinds("set-max-replicas")
    assert bounds["ScaledObject/phi-4"] == "in-place"
    switched = kinds("set-autoscaling-on")
    assert switched["ScaledObject/phi-4"] == "added"
