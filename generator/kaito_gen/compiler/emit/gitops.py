"""GitOps delivery objects for the rendered tree: Argo CD or Flux (GITOPS.md §3).

Layout (rendered-manifests pattern; every directory holds only manifests plus
its ``kustomization.yaml``, so Argo CD and Flux never meet stray YAML)::

    OUT/<namespace>/<workspace>/   one bundle (unchanged by the flavour)
    OUT/_gitops/                   the Argo CD or Flux objects + kustomization.yaml
    OUT/_gitops/infra/             flux: every bundle, NodePools only
    OUT/_gitops/apps/              flux: every bundle, everything but NodePools

``_gitops`` cannot clash with a bundle: namespaces are DNS labels (no ``_``).
Bundles stay whole in every flavour; Flux's infra/apps split is two kustomize
views over them that drop resources by the ``app.kubernetes.io/component``
label, so every bundle still builds on its own and no object is owned twice.

Argo CD: one AppProject plus either an ApplicationSet with a git directory
generator over ``<path>/*/*`` (default: a new Workspace needs no new object)
or one Application per bundle. NodePools get sync wave -1 and, optionally,
``SkipDryRunOnMissingResource=true``; Argo's tracking label/annotation is
never written (Argo CD owns it).

Pure: same bundles and settings give the same files, byte for byte.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import PurePosixPath
from typing import Any

from kaito_gen import __version__
from kaito_gen.catalog.sizing import startup_budget_seconds
from kaito_gen.compiler.emit.bundle import KUSTOMIZATION, Bundle, resource_filename
from kaito_gen.compiler.plan import SHARED_BUNDLE, Plan
from kaito_gen.config import ArgoCdConfig, FluxConfig, GitopsConfig
from kaito_gen.core.errors import UsageError
from kaito_gen.core.yamlout import dump

GITOPS_DIR = "_gitops"
INFRA_DIR = f"{GITOPS_DIR}/infra"
APPS_DIR = f"{GITOPS_DIR}/apps"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
SYNC_OPTIONS = "argocd.argoproj.io/sync-options"
NODEPOOL_WAVE = "-1"
# Scrape objects after the workloads they watch (GITOPS.md §3.5: monitoring/scaling in wave 1).
MONITOR_WAVE = "1"
MONITOR_KINDS = frozenset({"ServiceMonitor", "PodMonitor"})
COMPONENT = "app.kubernetes.io/component"
# Karpenter needs a few minutes to launch a GPU node and the GPU driver/device plugin to come
# up before the pod can even start pulling; the pod's own startup budget comes on top.
NODE_PROVISION_SECONDS = 15 * 60
MIN_APPS_TIMEOUT_SECONDS = 30 * 60
ARGO_API = "argoproj.io/v1alpha1"
FLUX_API = "kustomize.toolkit.fluxcd.io/v1"
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"
# Namespaced kinds the emitters can produce; the AppProject allows these plus whatever
# (user pass-through) kinds the current render contains.
BASE_NAMESPACED_KINDS: tuple[tuple[str, str], ...] = (
    ("", "ConfigMap"),
    ("", "Service"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("batch", "Job"),
    ("policy", "PodDisruptionBudget"),
)
LABELS = {"app.kubernetes.io/managed-by": "kaito-gen", "app.kubernetes.io/part-of": "kaito"}
Manifest = dict[str, Any]


@dataclass(frozen=True)
class GitopsSettings:
    config: GitopsConfig
    repo_path: str  # the output directory inside the Git repository, POSIX, "." for the root


def repo_path(text: str) -> str:
    """Normalise a repository-relative path ("./rendered/" → "rendered"); refuse escapes."""
    path = PurePosixPath(text.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise UsageError(
            f"gitops path {text!r} must be relative to the Git repository root and stay inside it "
            "(set gitops.path in kaito-gen.yaml)"
        )
    return path.as_posix() or "."


# --- the bundle side: annotations the emitters' NodePools need ----------------------------------


def decorate(bundles: Sequence[Bundle], flavour: str, skip_dry_run: bool) -> tuple[Bundle, ...]:
    """NodePools sync first under Argo CD (wave -1); workloads keep the default wave 0."""
    if flavour != "argocd":
        return tuple(bundles)
    extra = {SYNC_WAVE: NODEPOOL_WAVE}
    if skip_dry_run:
        extra[SYNC_OPTIONS] = "SkipDryRunOnMissingResource=true"
    out: list[Bundle] = []
    for bundle in bundles:
        manifests: list[Manifest] = []
        for m in bundle.manifests:
            if m.get("kind") == "NodePool" and str(m.get("apiVersion", "")).startswith("karpenter.sh/"):
                m = copy.deepcopy(m)
                meta = m.setdefault("metadata", {})
                meta["annotations"] = dict(sorted({**meta.get("annotations", {}), **extra}.items()))
            elif m.get("kind") in MONITOR_KINDS and str(m.get("apiVersion", "")).startswith(
                "monitoring.coreos.com/"
            ):
                m = copy.deepcopy(m)
                meta = m.setdefault("metadata", {})
                meta["annotations"] = dict(
                    sorted({**meta.get("annotations", {}), SYNC_WAVE: MONITOR_WAVE}.items())
                )
            manifests.append(m)
        out.append(Bundle(bundle.path, bundle.sources, tuple(manifests)))
    return tuple(out)


# --- the delivery objects ------------------------------------------------------------------------


def _header(flavour: str) -> str:
    return (
        f"# Generated by kaito-gen {__version__}: {flavour} objects for the rendered tree.\n"
        "# Do not edit: change kaito-gen.yaml and run `kaito-gen render`.\n"
    )


def _kustomization(resources: Iterable[str], **extra: Any) -> Manifest:
    body: Manifest = {"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": list(resources)}
    body.update(extra)
    return body


def _meta(name: str, namespace: str) -> Manifest:
    return {"name": name, "namespace": namespace, "labels": dict(LABELS)}


def _has_nodepool(bundle: Bundle) -> bool:
    return any(m.get("kind") == "NodePool" for m in bundle.manifests)


def _namespace(bundle: Bundle) -> str:
    return bundle.path.split("/", 1)[0]


def _sub(base: str, rel: str) -> str:
    return rel if base == "." else f"{base}/{rel}"


def _project(argo: ArgoCdConfig, bundles: Sequence[Bundle]) -> Manifest:
    kinds = set(BASE_NAMESPACED_KINDS)
    for bundle in bundles:
        for m in bundle.manifests:
            if m.get("kind") == "NodePool":
                continue
            group = str(m.get("apiVersion", "")).rpartition("/")[0]
            kinds.add((group, str(m.get("kind"))))
    namespaces = sorted({_namespace(b) for b in bundles})
    # Cluster-scoped kinds are allow-listed: only the Karpenter NodePools we emit, plus
    # Namespace when Applications create their namespace (Argo CD checks it against the
    # project: argoproj/argo-cd#20233).
    cluster_kinds = [{"group": "karpenter.sh", "kind": "NodePool"}]
    if argo.create_namespace:
        cluster_kinds.insert(0, {"group": "", "kind": "Namespace"})
    return {
        "apiVersion": ARGO_API,
        "kind": "AppProject",
        "metadata": _meta(argo.project, argo.namespace),
        "spec": {
            "description": "Kaito Workspaces rendered by kaito-gen",
            "sourceRepos": [argo.repo_url],
            "destinations": [{"server": argo.destination_server, "namespace": ns} for ns in namespaces],
            "clusterResourceWhitelist": cluster_kinds,
            "namespaceResourceWhitelist": [{"group": g, "kind": k} for g, k in sorted(kinds)],
        },
    }


def _sync_policy(argo: ArgoCdConfig) -> Manifest:
    options = ["CreateNamespace=true"] if argo.create_namespace else []
    policy: Manifest = {
        "automated": {"prune": True, "selfHeal": True},
        # NodePools may be rejected until Karpenter's CRDs exist; retry instead of failing the sync.
        "retry": {"limit": 5, "backoff": {"duration": "30s", "factor": 2, "maxDuration": "10m"}},
    }
    if options:
        policy["syncOptions"] = options
    return policy


def application_name(bundle_path: str) -> str:
    """``kaito.<namespace>.<workspace>`` (``kaito.<namespace>`` for the shared bundle).
    Dots cannot occur in namespaces or Workspace names (DNS labels), so names never collide."""
    namespace, name = bundle_path.split("/", 1)
    return f"kaito.{namespace}" if name == SHARED_BUNDLE else f"kaito.{namespace}.{name}"


def _applications(argo: ArgoCdConfig, settings: GitopsSettings, bundles: Sequence[Bundle]) -> list[Manifest]:
    apps: list[Manifest] = []
    for bundle in bundles:
        apps.append(
            {
                "apiVersion": ARGO_API,
                "kind": "Application",
                "metadata": _meta(application_name(bundle.path), argo.namespace),
                "spec": {
                    "project": argo.project,
                    "source": {
                        "repoURL": argo.repo_url,
                        "targetRevision": argo.target_revision,
                        "path": _sub(settings.repo_path, bundle.path),
                    },
                    "destination": {"server": argo.destination_server, "namespace": _namespace(bundle)},
                    "syncPolicy": _sync_policy(argo),
                },
            }
        )
    return apps


def _application_set(argo: ArgoCdConfig, settings: GitopsSettings) -> Manifest:
    depth = 0 if settings.repo_path == "." else len(PurePosixPath(settings.repo_path).parts)
    ns = f"{{{{index .path.segments {depth}}}}}"
    name = f'kaito.{ns}{{{{if ne .path.basename "{SHARED_BUNDLE}"}}}}.{{{{.path.basename}}}}{{{{end}}}}'
    return {
        "apiVersion": ARGO_API,
        "kind": "ApplicationSet",
        "metadata": _meta(argo.project, argo.namespace),
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [
                {
                    "git": {
                        "repoURL": argo.repo_url,
                        "revision": argo.target_revision,
                        "directories": [
                            {"path": _sub(settings.repo_path, "*/*")},
                            {"path": _sub(settings.repo_path, f"{GITOPS_DIR}/*"), "exclude": True},
                        ],
                    }
                }
            ],
            "template": {
                "metadata": {"name": name, "labels": dict(LABELS)},
                "spec": {
                    "project": argo.project,
                    "source": {
                        "repoURL": argo.repo_url,
                        "targetRevision": argo.target_revision,
                        "path": "{{.path.path}}",
                    },
                    "destination": {"server": argo.destination_server, "namespace": ns},
                    "syncPolicy": _sync_policy(argo),
                },
            },
        },
    }


def argocd_objects(settings: GitopsSettings, bundles: Sequence[Bundle]) -> list[Manifest]:
    argo = settings.config.argocd
    if argo is None:
        raise UsageError("gitops flavour argocd needs gitops.argocd.repoURL in kaito-gen.yaml")
    objects = [_project(argo, bundles)]
    if argo.mode == "applicationset":
        objects.append(_application_set(argo, settings))
    else:
        objects.extend(_applications(argo, settings, bundles))
    return objects


def _duration(seconds: int) -> str:
    minutes = int((Decimal(seconds) / 60).to_integral_value(rounding=ROUND_CEILING))
    return f"{minutes // 60}h{minutes % 60}m" if minutes >= 60 else f"{minutes}m"


def apps_timeout_seconds(plan: Plan | None) -> int:
    """Node provisioning plus the slowest inference workspace's startup budget, at least 30 min."""
    slowest = 0
    for wp in plan.workspaces if plan else ():
        if wp.rw.mode == "inference" and wp.rw.model is not None:
            slowest = max(slowest, startup_budget_seconds(wp.rw.model))
    return max(MIN_APPS_TIMEOUT_SECONDS, NODE_PROVISION_SECONDS + slowest)


def _drop(selector: str) -> Manifest:
    # A strategic-merge delete patch applied to every resource the selector matches.
    patch = "$patch: delete\napiVersion: v1\nkind: Any\nmetadata:\n  name: any\n"
    return {"target": {"labelSelector": selector}, "patch": patch}


def _flux_kustomization(flux: FluxConfig, name: str, path: str, timeout: str, **spec: Any) -> Manifest:
    source: Manifest = {"kind": flux.source_ref.kind, "name": flux.source_ref.name}
    if flux.source_ref.namespace:
        source["namespace"] = flux.source_ref.namespace
    body: Manifest = {
        "interval": flux.interval,
        "retryInterval": flux.retry_interval,
        "path": f"./{path}",
        "prune": True,
        "sourceRef": source,
        "timeout": timeout,
    }
    body.update(spec)
    return {
        "apiVersion": FLUX_API,
        "kind": "Kustomization",
        "metadata": _meta(name, flux.namespace),
        "spec": body,
    }


def _health_checks(bundles: Sequence[Bundle]) -> list[Manifest]:
    # Inference workloads only: a tuning Job may run for hours, and Flux would count
    # a running Job as not ready and fail the apps Kustomization on timeout.
    checks: list[Manifest] = []
    for bundle in bundles:
        for m in bundle.manifests:
            if m.get("kind") in ("StatefulSet", "Deployment"):
                meta = m["metadata"]
                checks.append(
                    {
                        "apiVersion": m["apiVersion"],
                        "kind": m["kind"],
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                    }
                )
    return checks


def flux_files(settings: GitopsSettings, bundles: Sequence[Bundle], plan: Plan | None) -> dict[str, str]:
    flux = settings.config.flux
    head = _header("flux")
    infra_bundles = [b for b in bundles if _has_nodepool(b)]
    files: dict[str, str] = {}
    objects: list[Manifest] = []
    apps_spec: Manifest = {}
    if infra_bundles:
        refs = [f"../../{b.path}" for b in infra_bundles]
        files[f"{INFRA_DIR}/{KUSTOMIZATION}"] = head + dump(
            _kustomization(refs, patches=[_drop(f"{COMPONENT}!=nodepool")])
        )
        infra_name = "kaito-gen-infra"
        objects.append(
            _flux_kustomization(
                flux, infra_name, _sub(settings.repo_path, INFRA_DIR), flux.infra_timeout, wait=True
            )
        )
        apps_spec["dependsOn"] = [{"name": infra_name}]
    app_patches = {"patches": [_drop(f"{COMPONENT}=nodepool")]} if infra_bundles else {}
    files[f"{APPS_DIR}/{KUSTOMIZATION}"] = head + dump(
        _kustomization([f"../../{b.path}" for b in bundles], **app_patches)
    )
    checks = _health_checks(bundles)
    if checks:
        apps_spec["healthChecks"] = checks
    timeout = flux.timeout or _duration(apps_timeout_seconds(plan))
    objects.append(
        _flux_kustomization(flux, "kaito-gen-apps", _sub(settings.repo_path, APPS_DIR), timeout, **apps_spec)
    )
    files.update(_object_files(objects, head))
    return files


def _object_files(objects: Sequence[Manifest], head: str) -> dict[str, str]:
    files: dict[str, str] = {}
    names: list[str] = []
    for obj in objects:
        name = resource_filename(obj)
        files[f"{GITOPS_DIR}/{name}"] = head + dump(obj)
        names.append(name)
    files[f"{GITOPS_DIR}/{KUSTOMIZATION}"] = head + dump(_kustomization(names))
    return files


def gitops_files(settings: GitopsSettings, bundles: Sequence[Bundle], plan: Plan | None) -> dict[str, str]:
    """``{relative path: text}`` of the delivery objects, for ``write.render_files(extra=...)``."""
    flavour = settings.config.flavour
    if flavour == "none" or not bundles:
        return {}
    if flavour == "argocd":
        return _object_files(argocd_objects(settings, bundles), _header("argocd"))
    return flux_files(settings, bundles, plan)
