"""``validate`` for InferenceSets: Kaito's admission rules, then the Workspace rules on the template.

Kaito's InferenceSet controller creates ``spec.replicas`` child Workspaces from
``spec.template`` (``resource``, ``inference``) with ``spec.labelSelector`` as their
``resource.labelSelector`` (KAITO.md §11.1), and the Workspace webhook admits each child. This
module does the same at compile time: it checks the set's own fields (Kaito's
``inferenceset_validation.go``: DNS-label name, replicas ≥ 0, MIG-only partitions, the
maintenance window; plus the KEDA annotations of §11.2), then checks a *view* of the document
shaped like that child Workspace with the Workspace rules (``compiler.validate``). The view
maps every field path back to the set's own, so each diagnostic points at the line the user
wrote (``spec.template.inference.preset.name``), and every error is reported at once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from kaito_gen.compiler.partial import parse_partial
from kaito_gen.core.errors import Diagnostic, FieldPath, Severity, SourcePos
from kaito_gen.core.schema_errors import did_you_mean
from kaito_gen.core.yamlsrc import SourceDoc
from kaito_gen.models.inferenceset import INFERENCESET_API_VERSIONS, InferenceSet

SCALER_PREFIX = "scaledobject.kaito.sh/"
AUTO_PROVISION = SCALER_PREFIX + "auto-provision"
MAX_REPLICAS = SCALER_PREFIX + "max-replicas"
THRESHOLD = SCALER_PREFIX + "threshold"
METRIC_NAME = SCALER_PREFIX + "metricName"
SCALER_ANNOTATIONS = (AUTO_PROVISION, MAX_REPLICAS, THRESHOLD, METRIC_NAME)
DEFAULT_METRIC = "vllm:num_requests_waiting"  # keda-kaito-scaler's default
MAX_SCALE = 1000  # max-replicas bound: KEDA's maxReplicaCount is an int32; GPU sets stay far below this
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
NUMBER_RE = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
GO_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")
CRON_FIELD = re.compile(r"^(?:\*|\?|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/[0-9]+)?$")
CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Fields of the document the Workspace view checks: their schema errors are reported once, there.
DELEGATED: tuple[FieldPath, ...] = (
    ("metadata",),
    ("spec", "labelSelector"),
    ("spec", "template", "inference"),
    ("spec", "template", "resource", "instanceType"),
    ("spec", "template", "resource", "partition"),
)


def source_path(path: FieldPath) -> FieldPath:
    """A path in the child-Workspace view → the same field in the InferenceSet."""
    if not path:
        return path
    head = path[0]
    if head == "resource":
        if path[1:2] == ("labelSelector",):
            return ("spec", *path[1:])
        return ("spec", "template", *path)
    if head == "inference":
        return ("spec", "template", *path)
    return path


@dataclasses.dataclass(frozen=True)
class SetView(SourceDoc):
    """The child Workspace an InferenceSet stands for, positioned in the InferenceSet's document."""

    origin: SourceDoc | None = dataclasses.field(default=None, repr=False, compare=False)

    def pos(self, path: FieldPath) -> SourcePos:
        assert self.origin is not None
        return self.origin.pos(source_path(path))


def _delegated(path: FieldPath) -> bool:
    return any(path[: len(p)] == p for p in DELEGATED)


def child_workspace(data: dict[str, Any]) -> dict[str, Any]:
    """The Workspace (v1beta1) Kaito would create for each replica, from the raw document."""
    raw_spec = data.get("spec")
    spec: dict[str, Any] = raw_spec if isinstance(raw_spec, dict) else {}
    raw_template = spec.get("template")
    template: dict[str, Any] = raw_template if isinstance(raw_template, dict) else {}
    raw_resource = template.get("resource")
    resource: dict[str, Any] = {}
    if isinstance(raw_resource, dict):
        resource = {k: raw_resource[k] for k in ("instanceType", "partition") if k in raw_resource}
    # Without a labelSelector the set itself reports it; the view gets a harmless stand-in.
    resource["labelSelector"] = spec.get("labelSelector", {"matchLabels": {"kaito-gen.io/stand-in": "x"}})
    out: dict[str, Any] = {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace", "resource": resource}
    if "metadata" in data:
        out["metadata"] = data["metadata"]
    if "inference" in template:
        out["inference"] = template["inference"]
    return out


def check_inference_set(
    doc: SourceDoc, api_version: str
) -> tuple[InferenceSet | None, SetView | None, tuple[FieldPath, ...], list[Diagnostic]]:
    """(the set, its child-Workspace view, pruned paths, diagnostics about the set's own fields).

    The caller runs the Workspace rules on the view; ``None`` for the set when what parsed is not
    an InferenceSet at all (no ``metadata.name``)."""
    found: list[Diagnostic] = []

    def error(path: FieldPath, message: str, hint: str = "", code: str = "inferenceset") -> None:
        found.append(Diagnostic(doc.pos(path), path, message, hint=hint, code=code))

    def warn(path: FieldPath, message: str, hint: str = "", code: str = "inferenceset") -> None:
        found.append(
            Diagnostic(doc.pos(path), path, message, hint=hint, severity=Severity.WARNING, code=code)
        )

    if api_version not in INFERENCESET_API_VERSIONS:
        error(
            ("apiVersion",),
            f"unsupported InferenceSet apiVersion {api_version!r}",
            hint=f"use one of {', '.join(INFERENCESET_API_VERSIONS)}",
            code="api-version",
        )
        return None, None, (), found
    iset, pruned, schema = parse_partial(doc, InferenceSet)
    found.extend(d for d in schema if not _delegated(d.path))
    if iset is None:
        return None, None, pruned, found
    spec = iset.spec
    if spec is None:
        if not any(p[:1] == ("spec",) for p in pruned):
            error((), "required field 'spec' is missing", hint="add spec.labelSelector and spec.template")
        return iset, None, pruned, found
    if spec.replicas is not None and spec.replicas < 0:
        error(("spec", "replicas"), f"replicas {spec.replicas} must be non-negative")
    if spec.node_count_limit is not None and spec.node_count_limit < 0:
        error(
            ("spec", "nodeCountLimit"),
            f"nodeCountLimit {spec.node_count_limit} must be non-negative",
            hint="0 (or leaving it out) means no limit",
        )
    raw_spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    if isinstance(raw_spec, dict) and "labelSelector" not in raw_spec:
        error(
            ("spec",),
            "required field 'labelSelector' is missing",
            hint="add spec.labelSelector.matchLabels: each replica's Workspace selects its nodes with it",
            code="selector",
        )
    template = spec.template
    if template is None:
        if not any(p[:3] == ("spec", "template") for p in pruned):
            error(
                ("spec",),
                "required field 'template' is missing",
                hint="add spec.template.resource and .inference",
            )
        return iset, None, pruned, found
    if template.inference is None and not _raw_has(doc, ("spec", "template", "inference")):
        error(
            ("spec", "template"),
            "required field 'inference' is missing",
            hint="an InferenceSet serves a model: add spec.template.inference.preset.name",
            code="preset-xor-template",
        )
    if template.cache is not None:
        error(
            ("spec", "template", "cache"),
            "spec.template.cache (distributed caching) is not supported by kaito-gen",
            hint="remove it; weights are cached on each node's weights volume",
        )
    part = template.resource.partition if template.resource else None
    if part is not None and part.mode != "mig":
        error(
            ("spec", "template", "resource", "partition", "mode"),
            f'unsupported partition mode {part.mode!r}, only "mig" is supported for an InferenceSet',
            code="partition",
        )
    if part is not None and template.resource and template.resource.instance_type:
        error(
            ("spec", "template", "resource", "instanceType"),
            "instanceType must be empty when partition is set (BYO scenario)",
            code="partition",
        )
    _auto_upgrade(iset, error, warn)
    found.extend(_annotations(doc, iset))
    view = SetView(
        file=doc.file,
        index=doc.index,
        data=child_workspace(doc.data),
        positions={},
        line=doc.line,
        origin=doc,
    )
    return iset, view, pruned, found


def child_diagnostics(iset: InferenceSet, doc: SourceDoc, found: Iterable[Diagnostic]) -> list[Diagnostic]:
    """The child view's diagnostics with the set's field paths, less those about what the set
    itself already reported missing (inference, labelSelector)."""
    template = iset.spec.template if iset.spec else None
    no_inference = template is not None and template.inference is None
    no_selector = not _raw_has(doc, ("spec", "labelSelector"))
    out = []
    for diag in found:
        path = source_path(diag.path)
        if (no_inference and diag.code == "inference-xor-tuning") or (
            no_selector and path[:2] == ("spec", "labelSelector")
        ):
            continue
        out.append(dataclasses.replace(diag, path=path))
    return out


def _raw_has(doc: SourceDoc, path: FieldPath) -> bool:
    node: Any = doc.data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _auto_upgrade(iset: InferenceSet, error: Any, warn: Any) -> None:
    upgrade = iset.spec.auto_upgrade if iset.spec else None
    if upgrade is None:
        return
    base: FieldPath = ("spec", "autoUpgrade")
    window = upgrade.maintenance_window
    if window is not None:
        wpath: FieldPath = (*base, "maintenanceWindow")
        if not window.schedule:
            error(
                wpath,
                "maintenanceWindow.schedule is required",
                hint='a 5-field cron in UTC, e.g. "0 2 * * 6"',
            )
        elif not cron_ok(window.schedule):
            error(
                (*wpath, "schedule"),
                f"invalid cron expression {window.schedule!r}",
                hint='5 fields (minute hour day-of-month month day-of-week), e.g. "0 2 * * 6"',
            )
        if window.duration is not None and not duration_positive(window.duration):
            error(
                (*wpath, "duration"),
                f"duration {window.duration!r} must be a positive Go duration",
                hint='e.g. "4h" or "90m"',
            )
    if upgrade.enabled:
        warn(
            (*base, "enabled"),
            "autoUpgrade has no effect in kaito-gen: images are pinned in kaito-gen.yaml and change "
            "when the bundle is re-rendered and synced",
            hint="upgrade by changing runtime.images (or runtime.tag) and reviewing `kaito-gen diff`",
        )


def cron_ok(text: str) -> bool:
    """robfig/cron ParseStandard, in outline: 5 fields or a descriptor."""
    text = text.strip()
    if text.startswith("@"):
        if text.startswith("@every "):
            return duration_positive(text[len("@every ") :].strip())
        return text in CRON_DESCRIPTORS
    if text.startswith(("TZ=", "CRON_TZ=")):
        text = text.split(None, 1)[1] if " " in text else ""
    fields = text.split()
    return len(fields) == 5 and all(all(CRON_FIELD.match(p) for p in f.split(",")) for f in fields)


def duration_positive(text: str) -> bool:
    return bool(GO_DURATION.match(text)) and any(ch in "123456789" for ch in text)


def _annotations(doc: SourceDoc, iset: InferenceSet) -> list[Diagnostic]:
    """Kaito's KEDA annotations (KAITO.md §11.2), checked when auto-provision is "true"."""
    ann = dict(iset.metadata.annotations or {})
    out: list[Diagnostic] = []

    def report(key: str, message: str, hint: str = "", warning: bool = False) -> None:
        path: FieldPath = ("metadata", "annotations", key)
        severity = Severity.WARNING if warning else Severity.ERROR
        out.append(Diagnostic(doc.pos(path), path, message, hint=hint, severity=severity, code="keda"))

    for key in sorted(k for k in ann if k.startswith(SCALER_PREFIX) and k not in SCALER_ANNOTATIONS):
        hint = did_you_mean(key, SCALER_ANNOTATIONS) or f"known: {', '.join(SCALER_ANNOTATIONS)}"
        report(key, f"annotation {key} has no meaning", hint, warning=True)
    auto = ann.get(AUTO_PROVISION)
    if auto is None:
        given = [k for k in SCALER_ANNOTATIONS if k in ann]
        if given:
            report(
                given[0],
                f'{given[0]} is ignored without {AUTO_PROVISION}: "true"',
                f'add {AUTO_PROVISION}: "true" to autoscale this set with KEDA',
                warning=True,
            )
        return out
    if auto not in ("true", "false"):
        report(
            AUTO_PROVISION,
            f"annotation {AUTO_PROVISION} has invalid value {auto!r}",
            'allowed: "true", "false"',
        )
        return out
    if auto == "false":
        return out
    threshold = ann.get(THRESHOLD)
    if threshold is None:
        report(
            AUTO_PROVISION,
            f"autoscaling needs annotation {THRESHOLD}",
            f'e.g. {THRESHOLD}: "10" (the average {DEFAULT_METRIC} per replica that triggers a scale-up)',
        )
    elif not NUMBER_RE.match(threshold) or float(threshold) <= 0:
        report(THRESHOLD, f"threshold {threshold!r} must be a positive number", 'e.g. "10"')
    maximum = ann.get(MAX_REPLICAS)
    if maximum is not None and (not maximum.isdigit() or not 1 <= int(maximum) <= MAX_SCALE):
        report(MAX_REPLICAS, f"max-replicas {maximum!r} must be an integer from 1 to {MAX_SCALE}", 'e.g. "5"')
    elif maximum is not None and int(maximum) < iset.replicas:
        report(
            MAX_REPLICAS,
            f"max-replicas {maximum} is below spec.replicas {iset.replicas} (the autoscaler's minimum)",
            "raise max-replicas or lower spec.replicas",
        )
    elif maximum is None and iset.node_count_limit is None:
        report(
            AUTO_PROVISION,
            f"autoscaling needs an upper bound: annotation {MAX_REPLICAS} or spec.nodeCountLimit",
            f'e.g. {MAX_REPLICAS}: "5"; without either, KEDA could buy GPU nodes without limit',
        )
    metric = ann.get(METRIC_NAME)
    if metric is not None and not METRIC_NAME_RE.match(metric):
        report(
            METRIC_NAME,
            f"metricName {metric!r} is not a Prometheus metric name",
            f"e.g. {DEFAULT_METRIC} or vllm:num_requests_running",
        )
    return out


def autoscaled(iset: InferenceSet) -> bool:
    return (iset.metadata.annotations or {}).get(AUTO_PROVISION) == "true"
