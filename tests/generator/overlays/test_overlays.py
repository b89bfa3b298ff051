"""overlays/: every overlay builds with the real `kubectl kustomize`, validates against its provider's
CRD copies, and shows the transformation it exists for (kustomize silently skips patches and image
overrides that match nothing, so each one is asserted in the output)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from kaito_gen.cli import cli
from kaito_gen.commands import register
from support.manifests import Provider, ValidatorFactory

REPO = Path(__file__).resolve().parents[3]
OVERLAYS = REPO / "overlays"
NOT_OVERLAYS = {"components", "rendered", "workspaces"}
# The committed rendered bases and the commands that make them (overlays/README.md).
RENDERS = {
    "azure": ["examples/workspaces", "-o", "overlays/rendered/azure"],
    "aws": ["overlays/workspaces/aws", "-o", "overlays/rendered/aws", "--cloud", "aws"],
}
PROVIDER: dict[str, Provider] = {
    "azure": "azure",
    "aws": "aws",
    "byo": "core",
    "dev": "azure",
    "prod": "azure",
}
RUNTIME_IMAGE = "ghcr.io/kaito-gen/kaito-runtime"

register(cli)


@pytest.fixture(scope="module")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        reason = "kubectl not found: the overlay builds are SKIPPED"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def kustomize(kubectl: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def built(kubectl: str) -> Callable[[str], list[dict[str, Any]]]:
    cache: dict[str, list[dict[str, Any]]] = {}

    def build(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            done = kustomize(kubectl, OVERLAYS / name)
            assert done.returncode == 0, done.stderr
            cache[name] = [d for d in yaml.safe_load_all(done.stdout) if d]
        return cache[name]

    return build


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_overlay_is_covered() -> None:
    found = {p.name for p in OVERLAYS.iterdir() if p.is_dir() and p.name not in NOT_OVERLAYS}
    assert found == set(PROVIDER)


@pytest.mark.parametrize("cloud", sorted(RENDERS))
def test_rendered_bases_are_current(cloud: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(cli, ["render", *RENDERS[cloud], "--check", "-q"])
    command = "kaito-gen render " + " ".join(RENDERS[cloud])
    assert result.exit_code == 0, f"overlays/rendered/{cloud} is stale: run `{command}`\n{result.output}"


@pytest.mark.parametrize("name", sorted(PROVIDER))
def test_overlay_validates_against_its_provider(
    name: str, built: Callable[[str], list[dict[str, Any]]], manifest_validator_factory: ValidatorFactory
) -> None:
    manifest_validator_factory(PROVIDER[name]).assert_valid(built(name), f"overlays/{name}")


def test_azure_adds_the_aks_node_class(built: Callable[[str], list[dict[str, Any]]]) -> None:
    docs = built("azure")
    (node_class,) = of_kind(docs, "AKSNodeClass")
    assert node_class["apiVersion"] == "karpenter.azure.com/v1beta1"
    assert node_class["spec"]["imageFamily"] == "Ubuntu2204" and node_class["spec"]["osDiskSizeGB"] == 300
    pools = of_kind(docs, "NodePool")
    assert len(pools) == 3
    for pool in pools:
        spec = pool["spec"]["template"]["spec"]
        assert spec["nodeClassRef"] == {
            "group": "karpenter.azure.com",
            "kind": "AKSNodeClass",
            "name": node_class["metadata"]["name"],
        }
        assert {
            "key": "karpenter.azure.com/placement-scope",
            "operator": "In",
            "values": ["regional"],
        } in spec["requirements"]


def test_aws_fills_the_ec2_node_class_parameters(built: Callable[[str], list[dict[str, Any]]]) -> None:
    docs = built("aws")
    params = yaml.safe_load((OVERLAYS / "aws" / "params.yaml").read_text())["data"]
    assert not [d for d in docs if d["metadata"]["name"] == "kaito-aws-params"], "local-config leaked"
    (node_class,) = of_kind(docs, "EC2NodeClass")
    spec = node_class["spec"]
    assert node_class["apiVersion"] == "karpenter.k8s.aws/v1"
    assert spec["role"] == params["role"]
    for terms in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
        assert spec[terms] == [{"tags": {"karpenter.sh/discovery": params["discoveryTag"]}}]
    assert spec["amiSelectorTerms"] == [{"alias": params["amiAlias"]}]
    assert "PARAMETER" not in yaml.safe_dump(node_class)
    (pool,) = of_kind(docs, "NodePool")
    assert pool["spec"]["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": node_class["metadata"]["name"],
    }


def test_byo_has_no_nodepool_and_selects_nodes_by_label(built: Callable[[str], list[dict[str, Any]]]) -> None:
    docs = built("byo")
    assert not of_kind(docs, "NodePool")
    (sts,) = of_kind(docs, "StatefulSet")
    terms = sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    # Only the Workspace's labelSelector remains (from the seed input: apps=phi-3).
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "apps", "operator": "In", "values": ["phi-3"]}]}
    ]
    annotations = sts["metadata"]["annotations"]
    assert annotations["kaito-gen.io/provisioner"] == "byo" and "kaito-gen.io/nodepool" not in annotations


def test_dev_and_prod(built: Callable[[str], list[dict[str, Any]]]) -> None:
    dev, prod = built("dev"), built("prod")
    (dev_sts,) = of_kind(dev, "StatefulSet")
    (prod_sts,) = of_kind(prod, "StatefulSet")
    assert dev_sts["spec"]["replicas"] == 1 and prod_sts["spec"]["replicas"] == 2
    dev_images = {c["image"] for c in containers(dev_sts)}
    prod_images = {c["image"] for c in containers(prod_sts)}
    assert dev_images == {f"{RUNTIME_IMAGE}:0.1.0-dev"}
    (pinned,) = prod_images
    assert pinned.startswith(f"{RUNTIME_IMAGE}@sha256:")
    (pool,) = of_kind(prod, "NodePool")
    assert pool["spec"]["limits"]["nodes"] == "2"  # room for the second replica's GPU node
    assert pool["metadata"]["annotations"]["kaito-gen.io/node-count"] == "2"


def test_components_fail_loudly_on_the_wrong_base(kubectl: str, tmp_path: Path) -> None:
    """The `test` operations turn a mismatched base into a build error instead of a silent no-op."""
    copy = tmp_path / "overlays"
    shutil.copytree(OVERLAYS, copy)
    kustomization = copy / "aws" / "kustomization.yaml"
    original = kustomization.read_text()
    kustomization.write_text(original.replace("../rendered/aws/", "../rendered/azure/"))
    done = kustomize(kubectl, copy / "aws")
    assert done.returncode != 0 and "test failed" in done.stderr
    kustomization.write_text(original.replace("  - params.yaml\n", ""))
    done = kustomize(kubectl, copy / "aws")
    assert done.returncode != 0 and "kaito-aws-params" in done.stderr  # parameters missing
