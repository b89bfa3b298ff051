"""A pass after ``resolve`` for InferenceSets: replicas, the node budget and KEDA autoscaling.

Input: :class:`~kaito_gen.compiler.resolve.Resolved` and the :class:`Target`.
Output: the same, with the diagnostics of each set's scaling added and the sets with errors
left out. :func:`set_scaling` is pure and is called again by ``emit`` and ``explain``.

Kaito (KAITO.md §11) creates ``spec.replicas`` child Workspaces, each on its own nodes
(``node_count`` of them, the estimator's answer for one replica), and keeps the set's GPU nodes
under ``spec.nodeCountLimit``. Its keda-kaito-scaler reads the ``scaledobject.kaito.sh/*``
annotations and scales between ``spec.replicas`` and ``max-replicas``. kaito-gen compiles the
same into one workload with ``replicas``, a NodePool whose ``limits`` Karpenter enforces, and a
KEDA ScaledObject.
"""

from __future__ import annotations

from kaito_gen.compiler.inferenceset import (
    AUTO_PROVISION,
    DEFAULT_METRIC,
    MAX_REPLICAS,
    METRIC_NAME,
    THRESHOLD,
)
from kaito_gen.compiler.resolve import Resolved, ResolvedWorkspace
from kaito_gen.core.errors import Diagnostic, FieldPath, Severity
from kaito_gen.models.inferenceset import Autoscale, SetScaling
from kaito_gen.models.target import Target

# prometheus-operator's Service for a Prometheus named `prometheus-operated`, kube-prometheus'
# usual namespace: what most clusters with the operator answer on.
DEFAULT_PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
# The keda-kaito-scaler chart's gRPC Service (namespace kaito-workspace, port 10450).
DEFAULT_KAITO_SCALER = "keda-kaito-scaler-svc.kaito-workspace.svc.cluster.local:10450"
PROMETHEUS_KEY = "autoscaling.prometheusAddress"


def set_scaling(rw: ResolvedWorkspace, target: Target) -> SetScaling | None:
    """The scaling of an InferenceSet's workload; None for a plain Workspace."""
    iset = rw.input.inference_set
    if iset is None:
        return None
    per = max(rw.node_count, 1)
    limit = iset.node_count_limit
    replicas = iset.replicas
    ann = iset.metadata.annotations or {}
    auto: Autoscale | None = None
    if ann.get(AUTO_PROVISION) == "true":
        given = ann.get(MAX_REPLICAS, "")
        maximum = int(given) if given.isdigit() else (limit or 0) // per
        if limit is not None:
            maximum = min(maximum, limit // per)
        cfg = target.autoscaling
        address = (
            cfg.prometheus_address or DEFAULT_PROMETHEUS
            if cfg.scaler == "prometheus"
            else cfg.kaito_scaler_address or DEFAULT_KAITO_SCALER
        )
        auto = Autoscale(
            min_replicas=replicas,
            max_replicas=maximum,
            metric=ann.get(METRIC_NAME, DEFAULT_METRIC),
            threshold=ann.get(THRESHOLD, "1"),
            scaler=cfg.scaler,
            server_address=address,
        )
    top = auto.max_replicas if auto else replicas
    max_nodes = limit if limit is not None else top * per
    return SetScaling(replicas, per, limit, max_nodes, auto)


def check_sets(resolved: Resolved, target: Target) -> Resolved:
    """Resolved, with each set's scaling checked; a set with an error is not compiled."""
    found: list[Diagnostic] = []
    keep: list[ResolvedWorkspace] = []
    warned_address = False
    for rw in resolved.workspaces:
        scaling = set_scaling(rw, target)
        if scaling is None:
            keep.append(rw)
            continue
        mine = _check(rw, scaling, target)
        auto = scaling.autoscale
        if (
            auto
            and auto.scaler == "prometheus"
            and not target.autoscaling.prometheus_address
            and not warned_address
        ):
            warned_address = True
            mine.append(
                _diag(
                    rw,
                    ("metadata", "annotations", AUTO_PROVISION),
                    f"KEDA will query Prometheus at {DEFAULT_PROMETHEUS} (the prometheus-operator's usual "
                    "address); no address is configured",
                    hint=f"set {PROMETHEUS_KEY} in kaito-gen.yaml to your Prometheus server's URL",
                    warning=True,
                )
            )
        found.extend(mine)
        if not any(d.is_error for d in mine):
            keep.append(rw)
    return Resolved(tuple(keep), resolved.objects, (*resolved.diagnostics, *found))


def _diag(
    rw: ResolvedWorkspace, path: FieldPath, message: str, hint: str = "", warning: bool = False
) -> Diagnostic:
    severity = Severity.WARNING if warning else Severity.ERROR
    # The set's own fields (spec.*, metadata.*) sit at the same path in the child view.
    return Diagnostic(
        rw.input.doc.pos(path), path, message, hint=hint, severity=severity, code="inferenceset"
    )


def _check(rw: ResolvedWorkspace, s: SetScaling, target: Target) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    per, limit = s.nodes_per_replica, s.node_limit
    each = f"{per} node{'s' if per != 1 else ''} per replica ({rw.node_count_reason})"
    if s.autoscale is None:
        if limit is not None and s.nodes > limit:
            out.append(
                _diag(
                    rw,
                    ("spec", "replicas"),
                    f"{s.replicas} replicas need {s.nodes} GPU nodes, over spec.nodeCountLimit {limit}; {each}",
                    hint=f"lower spec.replicas to {limit // per} or raise spec.nodeCountLimit to {s.nodes}",
                )
            )
        return out
    auto = s.autoscale
    ann = rw.input.inference_set.metadata.annotations if rw.input.inference_set else None
    given = (ann or {}).get(MAX_REPLICAS, "")
    if limit is not None and given.isdigit() and int(given) * per > limit:
        out.append(
            _diag(
                rw,
                ("metadata", "annotations", MAX_REPLICAS),
                f"max-replicas {given} would need {int(given) * per} GPU nodes, over spec.nodeCountLimit "
                f"{limit}: KEDA scales to at most {auto.max_replicas}; {each}",
                hint="lower max-replicas or raise spec.nodeCountLimit",
                warning=True,
            )
        )
    if auto.max_replicas < max(auto.min_replicas, 1):
        out.append(
            _diag(
                rw,
                ("spec", "nodeCountLimit"),
                f"spec.nodeCountLimit {limit} leaves room for {auto.max_replicas} replicas, fewer than "
                f"{max(auto.min_replicas, 1)}; {each}",
                hint=f"raise spec.nodeCountLimit to at least {max(auto.min_replicas, 1) * per}",
            )
        )
    if auto.metric.startswith("vllm:") and rw.engine != "vllm":
        out.append(
            _diag(
                rw,
                ("metadata", "annotations", METRIC_NAME if ann and METRIC_NAME in ann else AUTO_PROVISION),
                f"metric {auto.metric} comes from vLLM, but this set is served by {rw.engine} ({rw.engine_reason})",
                hint='annotate kaito.sh/runtime: "vllm" or name a metric the server exports',
                warning=True,
            )
        )
    if auto.scaler == "kaito":
        out.append(
            _diag(
                rw,
                ("metadata", "annotations", AUTO_PROVISION),
                "keda-kaito-scaler looks up the InferenceSet named in its trigger to find the pods; kaito-gen "
                "compiles the set into a workload and emits no InferenceSet object",
                hint="use autoscaling.scaler: prometheus in kaito-gen.yaml unless your scaler finds pods by label",
                warning=True,
            )
        )
    if target.features.nodepool_replicas:
        out.append(
            _diag(
                rw,
                ("metadata", "annotations", AUTO_PROVISION),
                "the NodePool of an autoscaled set is dynamic (limits only): static capacity "
                "(features.nodepoolReplicas) would hold GPU nodes for replicas KEDA has removed",
                warning=True,
            )
        )
    return out
