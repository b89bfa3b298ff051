"""Stage 2, ``validate``: schema and Kaito's admission rules, document by document.

Input: :class:`~kaito_gen.compiler.load.Inputs` and the :class:`Target`.
Output: :class:`Validated` — the typed Workspaces, the other documents indexed
by (kind, namespace, name), and every diagnostic found. Nothing here needs the
preset tables; checks against them (preset known, SKU known, GPU memory) are in
``resolve``.

The rules are Kaito's CREATE rules (KAITO.md §1.7) for v1beta1, with the
v1alpha1 differences, plus what a controller cannot check (committed Secrets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kaito_gen.compiler.kinds import is_kaito_group, refusal
from kaito_gen.compiler.load import Inputs
from kaito_gen.compiler.partial import about_pruned, parse_partial
from kaito_gen.compiler.rules import (
    RESERVED_SELECTOR_KEYS,
    dataset_url_problem,
    image_ref_problem,
    is_dns_label,
    is_dns_subdomain,
    label_key_problem,
    label_value_problem,
    strength_problem,
)
from kaito_gen.core.errors import Diagnostic, FieldPath, Severity
from kaito_gen.core.schema_errors import did_you_mean
from kaito_gen.core.yamlsrc import SourceDoc
from kaito_gen.models.inferenceset import InferenceSet
from kaito_gen.models.target import Target
from kaito_gen.models.workspace import KAITO_API_VERSIONS, DataSource, Workspace

MAX_ADAPTERS = 10  # Kaito MaxAdaptersNumber
V1ALPHA1_DEFAULT_INSTANCE_TYPE = "Standard_NC24ads_A100_v4"  # v1alpha1 CRD schema default

ANNOTATION_VALUES: dict[str, tuple[str, ...]] = {
    "kaito.sh/node-image-family": ("ubuntu", "azurelinux"),
    "kaito.sh/performance-mode": ("balanced", "interactivity", "throughput"),
    "kaito.sh/use-local-weights": ("true", "false"),
    "kaito.sh/runtime": ("transformers", "vllm"),
    "kaito.sh/enablelb": ("True", "False", "true", "false"),
    "kaito.sh/disable-benchmark": ("true", "false"),
}


@dataclass(frozen=True)
class WorkspaceInput:
    workspace: Workspace
    doc: SourceDoc
    namespace: str
    # Fields dropped because they failed the schema: rules that need them are skipped.
    pruned: tuple[FieldPath, ...] = field(default=())
    # Set when the input is an InferenceSet: ``workspace`` is then the child Workspace it stands
    # for, and ``doc`` a view that positions child paths in the set's document.
    inference_set: InferenceSet | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.workspace.name)

    @property
    def kind(self) -> str:
        return "Workspace" if self.inference_set is None else "InferenceSet"

    def shown(self, path: FieldPath) -> FieldPath:
        """``path`` (of the Workspace) as the user wrote it: under spec.template for a set."""
        if self.inference_set is None:
            return path
        from kaito_gen.compiler.inferenceset import source_path

        return source_path(path)

    def keep(self, diags: Iterable[Diagnostic]) -> list[Diagnostic]:
        """``diags`` less the follow-on ones about fields that already have a schema error."""
        return [d for d in diags if d.code.startswith("schema-") or not about_pruned(d, self.pruned)]


@dataclass(frozen=True)
class ObjectInput:
    """A non-Workspace document (ConfigMap, PVC, SealedSecret, …)."""

    doc: SourceDoc
    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def data(self) -> Mapping[str, Any]:
        result: Mapping[str, Any] = self.doc.data
        return result


@dataclass(frozen=True)
class Validated:
    workspaces: tuple[WorkspaceInput, ...]
    objects: Mapping[tuple[str, str, str], ObjectInput]  # (kind, namespace, name)
    diagnostics: tuple[Diagnostic, ...]


class _Checker:
    """Collects diagnostics for one document."""

    def __init__(self, doc: SourceDoc) -> None:
        self.doc = doc
        self.found: list[Diagnostic] = []

    def error(self, path: FieldPath, message: str, hint: str = "", code: str = "") -> None:
        self.found.append(Diagnostic(self.doc.pos(path), path, message, hint=hint, code=code))

    def warn(self, path: FieldPath, message: str, hint: str = "", code: str = "") -> None:
        self.found.append(
            Diagnostic(self.doc.pos(path), path, message, hint=hint, severity=Severity.WARNING, code=code)
        )


def validate(inputs: Inputs, target: Target) -> Validated:
    diagnostics: list[Diagnostic] = list(inputs.problems)
    workspaces: list[WorkspaceInput] = []
    objects: dict[tuple[str, str, str], ObjectInput] = {}
    seen_ws: dict[tuple[str, str], SourceDoc] = {}
    for doc in inputs.docs:
        check = _Checker(doc)
        header = _header(check)
        if header is None:
            diagnostics.extend(check.found)
            continue
        api_version, kind = header
        if api_version.startswith("kaito-gen.io/"):
            continue  # kaito-gen's own config or preset tables, not cluster objects
        if kind in ("Workspace", "InferenceSet") and api_version.startswith("kaito.sh/"):
            ws = (
                _workspace(check, api_version, target)
                if kind == "Workspace"
                else _inference_set(check, api_version, target)
            )
            if ws is not None:
                dup = seen_ws.get(ws.key)
                if dup is not None:
                    check.error(
                        ("metadata", "name"),
                        f"{ws.kind} {ws.namespace}/{ws.workspace.name} is defined twice "
                        f"(also at {dup.pos(('metadata', 'name'))})",
                        hint="names must be unique per namespace",
                        code="duplicate-workspace",
                    )
                else:
                    seen_ws[ws.key] = doc
                    workspaces.append(ws)
        elif is_kaito_group(api_version):
            message, hint = refusal(kind)
            check.error(("kind",), message, hint=hint, code="unsupported-kind")
        else:
            obj = _object(check, api_version, kind, target)
            if obj is not None:
                objects.setdefault((obj.kind, obj.namespace, obj.name), obj)
        diagnostics.extend(check.found)
    workspaces.sort(key=lambda w: w.key)
    return Validated(tuple(workspaces), objects, tuple(diagnostics))


def _header(check: _Checker) -> tuple[str, str] | None:
    data = check.doc.data
    if not isinstance(data, dict):
        check.error((), "a document must be a mapping with apiVersion and kind", code="not-an-object")
        return None
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        check.error(
            (),
            "document has no apiVersion/kind",
            hint="every Kubernetes document needs `apiVersion:` and `kind:`",
            code="not-an-object",
        )
        return None
    return api_version, kind


def _object(check: _Checker, api_version: str, kind: str, target: Target) -> ObjectInput | None:
    data = check.doc.data
    meta = data.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        check.error(("metadata", "name"), f"{kind} has no metadata.name", code="no-name")
        return None
    name = meta["name"]
    namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else target.default_namespace
    if kind == "Secret" and api_version == "v1" and (data.get("data") or data.get("stringData")):
        field = "data" if data.get("data") else "stringData"
        message = f"Secret {name!r} carries credentials and would be committed to git with the bundle"
        hint = "commit a SealedSecret or an ExternalSecret instead (or pass --allow-secrets if you really mean it)"
        if target.allow_secrets:
            check.warn((field,), message, hint=hint, code="committed-secret")
        else:
            check.error((field,), message, hint=hint, code="committed-secret")
    return ObjectInput(check.doc, api_version, kind, str(namespace), name)


def _workspace(check: _Checker, api_version: str, target: Target) -> WorkspaceInput | None:
    if api_version not in KAITO_API_VERSIONS:
        check.error(
            ("apiVersion",),
            f"unsupported Workspace apiVersion {api_version!r}",
            hint=f"use one of {', '.join(KAITO_API_VERSIONS)}",
            code="api-version",
        )
        return None
    ws, pruned, schema = parse_partial(check.doc)
    check.found.extend(schema)
    if ws is None:
        return None
    namespace = ws.metadata.namespace or target.default_namespace
    rules_start = len(check.found)
    _metadata(check, ws, namespace)
    _resource(check, ws, target)
    if (ws.inference is None) == (ws.tuning is None):
        which = "neither" if ws.inference is None else "both"
        check.error(
            (),
            f"Either Inference or Tuning must be specified, not {which}",
            hint="a Workspace does one job: add `inference:` to serve a model or `tuning:` to fine-tune one",
            code="inference-xor-tuning",
        )
    if ws.inference is not None:
        _inference(check, ws)
    if ws.tuning is not None:
        _tuning(check, ws)
    wi = WorkspaceInput(ws, check.doc, namespace, pruned)
    check.found[rules_start:] = wi.keep(check.found[rules_start:])
    return wi


def _inference_set(check: _Checker, api_version: str, target: Target) -> WorkspaceInput | None:
    """An InferenceSet: its own rules, then the Workspace rules on the child it stands for."""
    from kaito_gen.compiler import inferenceset as iset_rules

    iset, view, pruned, found = iset_rules.check_inference_set(check.doc, api_version)
    check.found.extend(found)
    if iset is None or view is None:
        return None
    child = _Checker(view)
    wi = _workspace(child, "kaito.sh/v1beta1", target)
    check.found.extend(iset_rules.child_diagnostics(iset, check.doc, child.found))
    if wi is None:
        return None
    moved = tuple(iset_rules.source_path(p) for p in wi.pruned)
    return WorkspaceInput(wi.workspace, view, wi.namespace, (*pruned, *moved), iset)


def _metadata(check: _Checker, ws: Workspace, namespace: str) -> None:
    if not is_dns_label(ws.name):
        check.error(
            ("metadata", "name"),
            f"name {ws.name!r} must be a DNS-1123 label (lowercase alphanumerics and '-', ≤63 characters)",
            hint="Kaito uses the name for Services and pods; e.g. " + _suggest_label(ws.name),
            code="name",
        )
    if not is_dns_label(namespace):
        check.error(
            ("metadata", "namespace"), f"namespace {namespace!r} must be a DNS-1123 label", code="name"
        )
    for key, value in sorted(ws.annotations.items()):
        allowed = ANNOTATION_VALUES.get(key)
        path: FieldPath = ("metadata", "annotations", key)
        if allowed is not None and value not in allowed:
            check.error(
                path,
                f"annotation {key} has invalid value {value!r}",
                hint=f"allowed values: {', '.join(allowed)}",
                code="annotation",
            )
        elif key.startswith("kaito.sh/") and allowed is None and key not in KNOWN_FLAG_ANNOTATIONS:
            hint = did_you_mean(key, [*ANNOTATION_VALUES, *KNOWN_FLAG_ANNOTATIONS])
            check.warn(path, f"annotation {key} has no meaning for kaito-gen", hint=hint, code="annotation")


KNOWN_FLAG_ANNOTATIONS = frozenset({"kaito.sh/bypass-resource-checks", "kaito.sh/node-class-name"})


def _suggest_label(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")[:63].strip("-")
    return repr(cleaned or "my-workspace")


def _resource(check: _Checker, ws: Workspace, target: Target) -> None:
    res = ws.resource
    if res is None:
        check.error(
            (),
            "required field 'resource' is missing",
            hint="add resource.instanceType and resource.labelSelector.matchLabels",
            code="resource",
        )
        return
    byo = target.cloud == "byo"
    if not res.instance_type and not byo and ws.api_version == "kaito.sh/v1beta1":
        check.error(
            ("resource",),
            "resource.instanceType is required when nodes are auto-provisioned",
            hint="name a GPU SKU, e.g. Standard_NC24ads_A100_v4, or set `cloud: byo` for existing nodes",
            code="instance-type",
        )
    selector = res.label_selector
    labels = selector.match_labels or {}
    if selector.match_labels is not None:
        if not labels or all(k in RESERVED_SELECTOR_KEYS for k in labels):
            check.error(
                ("resource", "labelSelector", "matchLabels"),
                "matchLabels must contain at least one non-reserved label",
                hint="add a label of your own, e.g. `apps: my-model`",
                code="selector",
            )
    elif not byo:
        check.error(
            ("resource", "labelSelector"),
            "labelSelector needs matchLabels (Kaito honours only matchLabels downstream)",
            code="selector",
        )
    for key, value in sorted(labels.items()):
        path: FieldPath = ("resource", "labelSelector", "matchLabels", key)
        problem = label_key_problem(key) or label_value_problem(value)
        if problem:
            check.error(path, problem, code="selector")
        elif key in RESERVED_SELECTOR_KEYS:
            check.warn(path, f"reserved label {key} is ignored (Kaito strips it)", code="selector")
    if selector.match_expressions:
        check.warn(
            ("resource", "labelSelector", "matchExpressions"),
            "matchExpressions are ignored; Kaito and kaito-gen honour only matchLabels",
            code="selector",
        )
    if res.preferred_nodes:
        check.warn(
            ("resource", "preferredNodes"),
            "preferredNodes is deprecated and unused by Kaito",
            hint="remove it",
            code="deprecated",
        )
    if res.partition is not None:
        _partition(check, ws, byo)


def _partition(check: _Checker, ws: Workspace, byo: bool) -> None:
    part = ws.resource.partition if ws.resource else None
    assert part is not None
    path: FieldPath = ("resource", "partition")
    if ws.api_version == "kaito.sh/v1alpha1":
        check.error(
            path, "partition is a v1beta1 field", hint="use apiVersion kaito.sh/v1beta1", code="partition"
        )
    if not byo:
        check.error(
            path,
            "GPU partitioning is only supported with BYO nodes",
            hint="set `cloud: byo` in kaito-gen.yaml (or --cloud byo) and pre-partition the nodes",
            code="partition",
        )
    if ws.tuning is not None:
        check.error(path, "tuning does not support GPU partitioning", code="partition")
    if part.mode == "mig":
        if part.count is not None:
            check.error((*path, "count"), "count is only valid with mode accelerator", code="partition")
        if not part.profile:
            check.error((*path, "profile"), "mode mig needs a profile, e.g. 1g.10gb", code="partition")
    else:
        if part.profile is not None:
            check.error((*path, "profile"), "profile is only valid with mode mig", code="partition")
        if part.count is None:
            check.error((*path, "count"), "mode accelerator needs count", code="partition")


def _inference(check: _Checker, ws: Workspace) -> None:
    inf = ws.inference
    assert inf is not None
    if (inf.preset is None) == (inf.template is None):
        check.error(
            ("inference",),
            "Preset or Template must be specified"
            if inf.preset is None
            else "Preset and Template cannot be set at the same time",
            hint="use inference.preset for a catalog model, or inference.template for your own pod",
            code="preset-xor-template",
        )
    if inf.preset is not None:
        _preset_options(check, ws, ("inference", "preset"))
    if inf.template is not None and inf.adapters:
        check.error(
            ("inference", "adapters"), "adapters need a preset model, not a template", code="adapters"
        )
    adapters = inf.adapters or ()
    if len(adapters) > MAX_ADAPTERS:
        check.error(
            ("inference", "adapters"),
            f"{len(adapters)} adapters given; at most {MAX_ADAPTERS} are supported",
            hint="merge adapters offline or split them over Workspaces",
            code="adapters",
        )
    names: dict[str, int] = {}
    for index, adapter in enumerate(adapters):
        path: FieldPath = ("inference", "adapters", index)
        if adapter.source is None:
            check.error(
                path, "adapter needs a source", hint="add source.name and source.image", code="adapters"
            )
            continue
        src = adapter.source
        if not src.name:
            check.error((*path, "source"), "adapter source needs a name", code="adapters")
        elif not is_dns_label(src.name):
            check.error(
                (*path, "source", "name"),
                f"adapter name {src.name!r} must be a DNS-1123 label",
                hint="it names a directory, an init container and an environment variable",
                code="adapters",
            )
        elif src.name in names:
            check.error(
                (*path, "source", "name"),
                f"duplicate adapter name {src.name!r} (also adapters[{names[src.name]}])",
                code="adapters",
            )
        else:
            names[src.name] = index
        if src.urls:
            check.error(
                (*path, "source", "urls"),
                "adapters cannot come from URLs",
                hint="use image or volumeSource",
                code="adapters",
            )
        if (src.image is None) == (src.volume_source is None):
            check.error(
                (*path, "source"),
                "adapter source needs exactly one of image or volumeSource",
                code="adapters",
            )
        if src.image is not None:
            _image(check, (*path, "source", "image"), src.image)
        problem = strength_problem(adapter.strength) if adapter.strength is not None else ""
        if problem:
            check.error(
                (*path, "strength"),
                problem,
                hint='Kaito scales the adapter by strength in [0, 1]; for example strength: "0.5"',
                code="adapters",
            )


def _preset_options(check: _Checker, ws: Workspace, base: FieldPath) -> None:
    spec = (
        ws.inference.preset
        if base[0] == "inference" and ws.inference
        else ws.tuning.preset
        if ws.tuning
        else None
    )
    if spec is None:
        return
    opts = spec.preset_options
    if opts is not None and opts.image is not None:
        _image(check, (*base, "presetOptions", "image"), opts.image)
    if spec.access_mode == "private" and (opts is None or not opts.image):
        check.error(
            (*base, "accessMode"),
            "accessMode private requires presetOptions.image",
            hint="name the private runtime image, with presetOptions.imagePullSecrets",
            code="access-mode",
        )
    if ws.api_version == "kaito.sh/v1beta1" and (
        spec.access_mode is not None or (opts and (opts.image or opts.image_pull_secrets))
    ):
        check.warn(
            base,
            "accessMode, presetOptions.image and presetOptions.imagePullSecrets are deprecated in v1beta1",
            code="deprecated",
        )


def _tuning(check: _Checker, ws: Workspace) -> None:
    tun = ws.tuning
    assert tun is not None
    if ws.resource is not None and (ws.resource.count or 1) > 1:
        check.error(
            ("resource", "count"),
            "Tuning does not currently support multinode configurations; count must be ≤ 1",
            code="tuning-count",
        )
    if tun.preset is None:
        check.error(
            ("tuning",),
            "tuning.preset is required",
            hint="e.g. preset: {name: phi-3-mini-128k-instruct}",
            code="preset",
        )
    if tun.method is None:
        check.error(
            ("tuning",), "tuning.method is required", hint="method: qlora or method: lora", code="method"
        )
    elif tun.method.lower() not in ("lora", "qlora"):
        check.error(
            ("tuning", "method"),
            f"method {tun.method!r} is not supported",
            hint=did_you_mean(tun.method, ["lora", "qlora"]) or "use lora or qlora",
            code="method",
        )
    if tun.input is None:
        check.error(
            ("tuning",),
            "tuning.input is required",
            hint="add input.urls, input.image or input.volumeSource",
            code="input",
        )
    else:
        _tuning_input(check, tun.input)
    out = tun.output
    if out is None:
        check.error(
            ("tuning",),
            "tuning.output is required",
            hint="add output.image with imagePushSecret, or output.volumeSource",
            code="output",
        )
        return
    path: FieldPath = ("tuning", "output")
    if (out.image is None) == (out.volume_source is None):
        check.error(path, "Exactly one of Volume or Image must be specified for the output", code="output")
    if out.image is not None:
        _image(check, (*path, "image"), out.image)
        if not out.image_push_secret:
            check.error(
                path,
                "an output image requires imagePushSecret",
                hint="name a kubernetes.io/dockerconfigjson Secret with push rights to the registry",
                code="output",
            )
    elif out.image_push_secret:
        check.warn(
            (*path, "imagePushSecret"), "imagePushSecret is unused without output.image", code="output"
        )


def _tuning_input(check: _Checker, src: DataSource) -> None:
    path: FieldPath = ("tuning", "input")
    given = [
        k for k, v in (("urls", src.urls), ("image", src.image), ("volumeSource", src.volume_source)) if v
    ]
    if len(given) != 1:
        check.error(
            path,
            "Exactly one of URLs, Volume, or Image must be specified",
            hint=f"found {', '.join(given) if given else 'none'}",
            code="input",
        )
    if src.name is not None and not is_dns_subdomain(src.name):
        check.error((*path, "name"), f"input name {src.name!r} must be a DNS subdomain", code="input")
    for index, url in enumerate(src.urls or ()):
        problem = dataset_url_problem(url)
        if problem:
            check.error(
                (*path, "urls", index),
                f"dataset URL refused: {problem}",
                hint="tuning data must come from a public http(s) host; use input.volumeSource for in-cluster data",
                code="url",
            )
    if src.image is not None:
        _image(check, (*path, "image"), src.image)


def _image(check: _Checker, path: FieldPath, ref: str) -> None:
    problem, fatal = image_ref_problem(ref)
    hint = "e.g. myregistry.azurecr.io/adapters/phi-3-adapter:0.0.1"
    if fatal:
        check.error(path, problem, hint=hint, code="image")
    elif problem:
        check.warn(path, problem, hint=hint, code="image")
