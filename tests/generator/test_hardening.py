"""Hardened output (issue 12 item 4): allocatable CPU/memory per SKU, resources on every container,
pull policy by digest, --require-digests, NetworkPolicies and the HF token as a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kaito_gen.catalog.allocatable import allocatable, workload_resources
from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.compiler.load import load, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.config import parse_config
from kaito_gen.models.target import Target

WORKSPACE = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {{name: {name}, namespace: ml}}
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector: {{matchLabels: {{apps: x}}}}
{body}
"""
INFERENCE = """\
inference:
  preset:
    name: phi-3-mini-4k-instruct
    presetOptions: {modelAccessSecret: hf-token}
"""
TUNING = """\
tuning:
  preset: {name: phi-3-mini-4k-instruct}
  method: qlora
  input: {urls: ["https://example.com/data.parquet"]}
  output: {image: "myregistry.azurecr.io/adapters/x:1", imagePushSecret: push}
"""


@pytest.fixture(scope="module")
def catalog() -> PresetCatalog:
    return load_presets()


@pytest.mark.parametrize(
    ("sku", "cpu_millis", "memory_mib"),
    [
        # AKS: 24 cores take the 32-core row (420m); memory min(20*250+50, 25 %) + 100 MiB eviction.
        ("Standard_NC24ads_A100_v4", 24_000 - 420, 220 * 1024 - 5050 - 100),
        # AKS on a small node: 25 % of 8 GiB caps kube-reserved memory.
        ("Standard_NC4_A2", 4_000 - 140, 8 * 1024 - 2048 - 100),
        # EKS: 60 + 10 + 2 x 5 + 4 x 2.5 = 90m; 11 x 110 + 255 MiB + 100 MiB.
        ("g5.2xlarge", 8_000 - 90, 32 * 1024 - 1465 - 100),
        # EKS from 30 vCPUs: maxPods 250; 60 + 10 + 10 + 188 x 2.5 = 550m.
        ("p5.48xlarge", 192_000 - 550, 2048 * 1024 - 3005 - 100),
    ],
    ids=lambda v: str(v),
)
def test_allocatable_follows_the_documented_rule(
    catalog: PresetCatalog, sku: str, cpu_millis: int, memory_mib: int
) -> None:
    found = allocatable(catalog.skus[sku.lower()])
    assert found is not None and (found.cpu_millis, found.memory_mib) == (cpu_millis, memory_mib)


def test_every_builtin_sku_has_a_size_and_positive_allocatable(catalog: PresetCatalog) -> None:
    for sku in catalog.skus.values():
        found = allocatable(sku)
        assert found is not None, sku.name
        assert found.cpu_millis > 0 and found.memory_mib > 0, sku.name
        sized = workload_resources(sku, sku.gpu_count)
        assert sized.limits is not None and sized.requests[0] < sized.limits[0], sku.name


def _render(tmp_path: Path, catalog: PresetCatalog, text: str, target: Target) -> dict[str, Any]:
    (tmp_path / "ws.yaml").write_text(text)
    compiled = compile_inputs(load([tmp_path], base=tmp_path), catalog, target)
    assert compiled.ok, compiled.diagnostics
    return {name: yaml.safe_load(body) for name, body in compiled.files.items() if name.endswith(".yaml")}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("body", [INFERENCE, TUNING], ids=["inference", "tuning"])
def test_every_container_has_cpu_and_memory_and_a_pull_policy(
    tmp_path: Path, catalog: PresetCatalog, body: str
) -> None:
    files = _render(tmp_path, catalog, WORKSPACE.format(name="w", body=body), Target())
    workloads = [d for d in files.values() if d["kind"] in ("StatefulSet", "Job")]
    assert workloads
    for doc in workloads:
        for c in _containers(doc):
            for key in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][key]), (c["name"], key)
            assert c["imagePullPolicy"] == "Always"  # tags
            assert not any("valueFrom" in e for e in c.get("env", [])), "no Secret in env"
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] >= 10000
    policies = [d for d in files.values() if d["kind"] == "NetworkPolicy"]
    assert len(policies) == 1
    if body is TUNING:
        assert policies[0]["spec"]["ingress"] == []
    else:
        (rule,) = policies[0]["spec"]["ingress"]
        assert rule == {"from": [{"podSelector": {}}], "ports": [{"port": 5000, "protocol": "TCP"}]}
        server = _containers(next(d for d in files.values() if d["kind"] == "StatefulSet"))[-1]
        assert {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/kaito-gen/hf-token/token"} in server[
            "env"
        ]


def test_digest_images_are_if_not_present_and_require_digests_refuses_tags(
    tmp_path: Path, catalog: PresetCatalog
) -> None:
    pinned = "ghcr.io/kaito-gen/kaito-runtime@sha256:" + "a" * 64
    text = WORKSPACE.format(name="w", body=INFERENCE)
    (tmp_path / "a").mkdir()
    files = _render(tmp_path / "a", catalog, text, Target(transformers_image=pinned, require_digests=True))
    sts = next(d for d in files.values() if d["kind"] == "StatefulSet")
    assert [(c["image"], c["imagePullPolicy"]) for c in _containers(sts)] == [(pinned, "IfNotPresent")]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ws.yaml").write_text(text)
    compiled = compile_inputs(
        load([tmp_path / "b"], base=tmp_path / "b"), catalog, Target(require_digests=True)
    )
    (diag,) = [d for d in compiled.diagnostics if d.code == "image-digest"]
    assert diag.pos.line == 3 and "runtime.images.transformers" in diag.hint


def test_config_keys_reach_the_target(tmp_path: Path) -> None:
    loaded = parse_config(
        "kaito-gen.yaml",
        "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\nrequireDigests: true\n"
        "networkPolicy:\n  enabled: false\n",
        tmp_path,
    )
    target = loaded.target()
    assert target.require_digests and not target.network_policy.enabled
