"""The pipeline: the stages, in order, written down once.

    load → validate → resolve → plan → emit → write

``compile_inputs`` runs the pure part (validate … emit) over loaded inputs;
``load`` and ``write`` are the only stages that touch the filesystem and are
called by the CLI around it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.compiler.digests import check_digests
from kaito_gen.compiler.emit.bundle import Bundle, emit_iter
from kaito_gen.compiler.emit.common import Manifest
from kaito_gen.compiler.emit.gitops import GitopsSettings, decorate, gitops_files
from kaito_gen.compiler.followon import drop_follow_on
from kaito_gen.compiler.load import Inputs
from kaito_gen.compiler.plan import Plan, plan
from kaito_gen.compiler.resolve import Resolved, resolve
from kaito_gen.compiler.setscale import check_sets
from kaito_gen.compiler.validate import validate
from kaito_gen.compiler.write import MARKER, MARKER_TEXT, bundle_files
from kaito_gen.core.errors import Diagnostic, sorted_diagnostics
from kaito_gen.models.target import Target

STAGES = ("load", "validate", "resolve", "plan", "emit", "write")


@dataclass(frozen=True)
class Compiled:
    resolved: Resolved
    plan: Plan | None
    bundles: tuple[Bundle, ...]  # outlines: apiVersion/kind/name/namespace of each manifest
    files: dict[str, str]
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not any(d.is_error for d in self.diagnostics)


def compile_inputs(
    inputs: Inputs, catalog: PresetCatalog, target: Target, gitops: GitopsSettings | None = None
) -> Compiled:
    """Pure: the same inputs give the same files, byte for byte.

    With ``gitops`` (and a flavour other than none) the GitOps layer is applied to the
    bundles — NodePool sync waves, Argo CD / Flux objects under ``_gitops/`` — before
    the files are rendered, once."""
    validated = validate(inputs, target)
    resolved = check_sets(resolve(validated, catalog, target), target)  # InferenceSet scaling
    found = (*resolved.diagnostics, *check_digests(resolved.workspaces, target))
    diagnostics = tuple(sorted_diagnostics(drop_follow_on(inputs, validated, found)))
    if any(d.is_error for d in diagnostics):
        return Compiled(resolved, None, (), {}, diagnostics)
    the_plan = plan(resolved, target)
    layered = gitops is not None and target.gitops.flavour != "none"
    files: dict[str, str] = {MARKER: MARKER_TEXT}
    outlines: list[Bundle] = []
    # Render each bundle as it is emitted and keep only an outline of it: at 10,000
    # Workspaces the full manifest trees would double peak memory.
    for bundle in emit_iter(the_plan, target):
        if layered:
            (bundle,) = decorate(
                (bundle,), target.gitops.flavour, target.gitops.skip_dry_run_on_missing_resource
            )
        files.update(bundle_files(bundle))
        outlines.append(Bundle(bundle.path, bundle.sources, tuple(_outline(m) for m in bundle.manifests)))
    if gitops is not None and layered:
        files.update(gitops_files(gitops, outlines, the_plan))
    return Compiled(resolved, the_plan, tuple(outlines), dict(sorted(files.items())), diagnostics)


def _outline(manifest: Manifest) -> Manifest:
    """apiVersion, kind, name and namespace: what the GitOps layer and reports need."""
    meta = manifest["metadata"]
    return {
        "apiVersion": manifest["apiVersion"],
        "kind": manifest["kind"],
        "metadata": {k: meta[k] for k in ("name", "namespace") if k in meta},
    }
