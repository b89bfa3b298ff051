"""Argo CD / Flux objects: valid against the CRDs, every output directory builds with
`kubectl kustomize`, NodePools ordered first, nothing Argo CD owns is written."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops_support import BASE_CONFIG, Invoke
from support.manifests import ValidatorFactory

ARGO = """\
gitops:
  flavour: argocd
  argocd:
    repoURL: https://git.example.com/platform.git
    targetRevision: main
    mode: {mode}
    createNamespace: {create}
"""
FLUX = """\
gitops:
  flavour: flux
  flux:
    sourceRef:
      name: platform
"""
TRACKING = ("argocd.argoproj.io/tracking-id", "argocd.argoproj.io/instance")


def _render(repo: Path, invoke: Invoke, gitops: str, *args: str) -> Path:
    (repo / "kaito-gen.yaml").write_text(BASE_CONFIG + gitops)
    result = invoke("render", "-q", *args)
    assert result.exit_code == 0, result.stderr
    return repo / "rendered"


def _docs(root: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            out[path.relative_to(root).as_posix()] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def _build(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{directory}: {result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("kustomization.yaml"))


def _assert_clean_dirs(root: Path) -> None:
    """Rendered-manifests layout: each dir holds kustomization.yaml plus the manifests it lists."""
    for directory in _dirs(root):
        listed = set(yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"])
        files = {p.name for p in directory.iterdir() if p.is_file() and p.name != "kustomization.yaml"}
        assert files <= listed, f"{directory}: stray files {sorted(files - listed)}"


@pytest.mark.parametrize(("mode", "create"), [("applicationset", "false"), ("applications", "true")])
def test_argocd(
    repo: Path,
    invoke: Invoke,
    kubectl: str,
    manifest_validator_factory: ValidatorFactory,
    mode: str,
    create: str,
) -> None:
    out = _render(repo, invoke, ARGO.format(mode=mode, create=create))
    docs = _docs(out)
    gitops = {p: d for p, d in docs.items() if p.startswith("_gitops/")}
    kinds = sorted(d["kind"] for ds in gitops.values() for d in ds)
    bundles = sorted(p.parent.relative_to(out).as_posix() for p in out.glob("*/*/kustomization.yaml"))
    bundles = [b for b in bundles if not b.startswith("_gitops")]
    if mode == "applicationset":
        assert kinds == ["AppProject", "ApplicationSet"]
    else:
        assert kinds == ["AppProject"] + ["Application"] * len(bundles)
        paths = sorted(
            d["spec"]["source"]["path"] for ds in gitops.values() for d in ds if d["kind"] == "Application"
        )
        assert paths == [f"rendered/{b}" for b in bundles]
    validator = manifest_validator_factory("azure")
    # Every bundle and every Argo CD object, the AppProject included, validates against its CRD.
    all_docs = [d for ds in docs.values() for d in ds]
    validator.assert_valid(all_docs, context=f"argocd {mode}")
    (project,) = [d for ds in gitops.values() for d in ds if d["kind"] == "AppProject"]
    spec = project["spec"]
    assert set(spec) == {
        "description",
        "sourceRepos",
        "destinations",
        "clusterResourceWhitelist",
        "namespaceResourceWhitelist",
    }
    assert spec["sourceRepos"] == ["https://git.example.com/platform.git"]
    assert {"group": "karpenter.sh", "kind": "NodePool"} in spec["clusterResourceWhitelist"]
    assert ({"group": "", "kind": "Namespace"} in spec["clusterResourceWhitelist"]) == (create == "true")
    allowed = {(k["group"], k["kind"]) for k in spec["namespaceResourceWhitelist"]}
    for path, ds in docs.items():
        for d in ds:
            if not path.startswith("_gitops/") and d["kind"] != "NodePool":
                assert (d["apiVersion"].rpartition("/")[0], d["kind"]) in allowed, d["kind"]
    # Sync order and ownership
    for path, ds in docs.items():
        for d in ds:
            annotations = d["metadata"].get("annotations", {})
            labels = d["metadata"].get("labels", {})
            assert not any(t in annotations or t in labels for t in TRACKING), path
            if d["kind"] == "NodePool":
                assert annotations["argocd.argoproj.io/sync-wave"] == "-1"
                assert annotations["argocd.argoproj.io/sync-options"] == "SkipDryRunOnMissingResource=true"
            else:
                assert "argocd.argoproj.io/sync-wave" not in annotations, path
    for ds in gitops.values():
        for d in ds:
            policy = (
                d["spec"].get("template", d)["spec"].get("syncPolicy") if d["kind"] != "AppProject" else None
            )
            if policy is not None:
                assert policy["automated"]["prune"] is True
    _assert_clean_dirs(out)
    for directory in _dirs(out):
        assert _build(kubectl, directory)


def test_applicationset_generator_covers_bundles_only(repo: Path, invoke: Invoke) -> None:
    out = _render(repo, invoke, ARGO.format(mode="applicationset", create="false"))
    (appset,) = yaml.safe_load_all((out / "_gitops/applicationset-kaito-gen.yaml").read_text())
    directories = appset["spec"]["generators"][0]["git"]["directories"]
    assert directories == [{"path": "rendered/*/*"}, {"path": "rendered/_gitops/*", "exclude": True}]
    template = appset["spec"]["template"]
    assert template["spec"]["destination"]["namespace"] == "{{index .path.segments 1}}"
    assert template["spec"]["source"]["path"] == "{{.path.path}}"


def test_flux(repo: Path, invoke: Invoke, kubectl: str, manifest_validator_factory: ValidatorFactory) -> None:
    out = _render(repo, invoke, FLUX)
    docs = _docs(out)
    validator = manifest_validator_factory("azure")
    validator.assert_valid([d for ds in docs.values() for d in ds], context="flux")
    flux = {
        d["metadata"]["name"]: d
        for ds in docs.values()
        for d in ds
        if d["apiVersion"].startswith("kustomize.toolkit")
    }
    assert sorted(flux) == ["kaito-gen-apps", "kaito-gen-infra"]
    infra, apps = flux["kaito-gen-infra"]["spec"], flux["kaito-gen-apps"]["spec"]
    assert infra["path"] == "./rendered/_gitops/infra" and apps["path"] == "./rendered/_gitops/apps"
    assert infra["prune"] is apps["prune"] is True and infra["wait"] is True
    assert apps["dependsOn"] == [{"name": "kaito-gen-infra"}]
    assert infra["sourceRef"] == apps["sourceRef"] == {"kind": "GitRepository", "name": "platform"}
    # Long enough for a GPU node plus the model's startup budget (Flux's default is 3m).
    assert apps["timeout"] == "45m"
    checks = {(c["kind"], c["name"]) for c in apps["healthChecks"]}
    assert checks == {
        ("StatefulSet", "workspace-phi-3-mini"),
        ("StatefulSet", "workspace-phi-3-mini-adapter"),
    }
    _assert_clean_dirs(out)
    built = {d.relative_to(out).as_posix(): _build(kubectl, d) for d in _dirs(out)}
    bundle_objects = sorted(
        (d["kind"], d["metadata"]["name"])
        for path, ds in built.items()
        if not path.startswith("_gitops")
        for d in ds
    )
    infra_objects = sorted((d["kind"], d["metadata"]["name"]) for d in built["_gitops/infra"])
    apps_objects = sorted((d["kind"], d["metadata"]["name"]) for d in built["_gitops/apps"])
    assert {k for k, _ in infra_objects} == {"NodePool"}
    assert "NodePool" not in {k for k, _ in apps_objects}
    # Each bundle object is applied by exactly one Flux Kustomization.
    assert sorted(infra_objects + apps_objects) == bundle_objects
    assert sorted(d["kind"] for d in built["_gitops"]) == ["Kustomization", "Kustomization"]


def test_flux_timeout_override_and_byo_without_infra(repo: Path, invoke: Invoke) -> None:
    gitops = FLUX + "    timeout: 2h\n"
    out = _render(repo, invoke, gitops, "--cloud", "byo")
    assert not (out / "_gitops/infra").exists()
    (apps,) = yaml.safe_load_all((out / "_gitops/kustomization-kaito-gen-apps.yaml").read_text())
    assert apps["spec"]["timeout"] == "2h" and "dependsOn" not in apps["spec"]
    assert "patches" not in yaml.safe_load((out / "_gitops/apps/kustomization.yaml").read_text())


def test_no_flavour_adds_nothing(repo: Path, invoke: Invoke) -> None:
    plain = _render(repo, invoke, "")
    tree = {p.relative_to(plain).as_posix(): p.read_text() for p in plain.rglob("*") if p.is_file()}
    assert not any(p.startswith("_gitops") for p in tree)
    assert not any("argocd.argoproj.io" in text for text in tree.values())
    result = invoke("render", "-q", "workspaces", "-o", "direct")
    assert result.exit_code == 0, result.stderr
    direct = {
        p.relative_to(repo / "direct").as_posix(): p.read_text()
        for p in (repo / "direct").rglob("*")
        if p.is_file()
    }
    assert direct == tree


def test_gitops_flag_overrides_and_needs_a_path(repo: Path, invoke: Invoke) -> None:
    out = _render(repo, invoke, ARGO.format(mode="applicationset", create="false"), "--gitops", "none")
    assert not (out / "_gitops").exists()
    result = invoke("render", "-q", "-o", "/tmp/outside-the-repo-kaito-gen-test")
    assert result.exit_code == 2
    assert "set gitops.path" in result.stderr
    (repo / "kaito-gen.yaml").write_text(BASE_CONFIG + FLUX + "  path: ../escape\n")
    result = invoke("render", "-q")
    assert result.exit_code == 2 and "stay inside it" in result.stderr
