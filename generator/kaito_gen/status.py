"""`kaito-gen status`: the Kaito workspace table, read from live cluster objects.

Kaito users see `kubectl get workspace` columns (Instance, ResourceReady, InferenceReady, JobStarted,
WorkspaceSucceeded, State, Age) computed by the operator. kaito-gen has no operator, so this command
recomputes the same columns from what kaito-gen emitted (CONTRACT.md) and what the cluster made of it:

    NodePool (karpenter.sh/v1) + its NodeClaims  → RESOURCEREADY   (BYO: pods on Ready nodes)
    StatefulSet readyReplicas == replicas        → INFERENCEREADY  (inference workspaces)
    newest Job active/ready/succeeded/failed     → JOBSTARTED      (tuning workspaces)
    pods                                         → the waiting reasons Kaito hides in its controller log
                                                   (Unschedulable, ImagePullBackOff, OOMKilled, ...)

Layers, from the edge inwards:
* `status` (click) owns the clock, the kubeconfig and the exit codes;
* `fetch_objects` is the only code that talks to the API server (official `kubernetes` client, GET only);
* `build_rows(objects, now)` is pure: plain dicts in (the JSON `kubectl get -o json` prints), rows out;
* `render_table` / `rows_to_json` turn rows into text.

Exit codes: 0 when the table (possibly empty) was printed, whatever the workspaces' state — like
`kubectl get`; 2 when the cluster could not be read (bad kubeconfig, unreachable API server, 401/403) or
the command line is wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

__all__ = [
    "ClusterObjects",
    "Reason",
    "StatusError",
    "StatusRow",
    "build_rows",
    "fetch_objects",
    "humanize_age",
    "make_status_command",
    "render_table",
    "rows_to_json",
    "status",
]

Obj = Mapping[str, Any]

# Labels and annotations kaito-gen puts on what it emits (.notes/CONTRACT.md).
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=kaito-gen"
WORKSPACE_LABEL = "kaito.sh/workspace"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
ANN_INSTANCE = "kaito-gen.io/instance-type"
ANN_PROVISIONER = "kaito-gen.io/provisioner"
ANN_NODE_COUNT = "kaito-gen.io/node-count"
ANN_NODEPOOL = "kaito-gen.io/nodepool"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")

KARPENTER = ("karpenter.sh", "v1")

# Waiting reasons that are simply "in progress", not something a user has to act on.
BENIGN_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
# NodeClaim lifecycle (Karpenter v1): a claim is Launched (cloud instance exists), then Registered (the
# Node joined), then Initialized (startup taints gone, resources advertised); Ready summarises them.
NODECLAIM_STAGES = ("Launched", "Registered", "Initialized")

MAX_MESSAGE = 600  # characters kept of one cluster-provided message
MAX_REASONS_TABLE = 6  # reasons shown per workspace under the table; --json shows up to MAX_REASONS
MAX_REASONS = 100
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every API call
MAX_FOLLOW_UPS = 200  # NodePool / Node look-ups per invocation

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True)
class ClusterObjects:
    """What `fetch_objects` read: plain JSON dicts, exactly as the API server returned them.

    `unreadable` maps a resource ("nodepools", "nodeclaims", "nodes") to why it could not be read
    (forbidden, Karpenter not installed); readiness that depends on it becomes "Unknown".
    """

    statefulsets: Sequence[Obj] = ()
    jobs: Sequence[Obj] = ()
    pods: Sequence[Obj] = ()
    nodepools: Sequence[Obj] = ()
    nodeclaims: Sequence[Obj] = ()
    nodes: Sequence[Obj] = ()
    unreadable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """Why something is not ready, pointed at the object that says so (`pod/phi-3-0`)."""

    object: str
    reason: str
    message: str


@dataclass(frozen=True)
class StatusRow:
    """One workspace. Condition columns hold "True" / "False" / "Unknown", or "" where Kaito leaves the
    column empty (JOBSTARTED of an inference workspace, INFERENCEREADY of a tuning one)."""

    namespace: str
    name: str
    mode: str  # "inference" | "tuning"
    instance: str
    resource_ready: str
    inference_ready: str
    job_started: str
    workspace_succeeded: str
    state: str
    age: str
    created: str
    provisioner: str
    node_pool: str
    target_node_count: int
    ready_node_count: int | None
    workload: Mapping[str, str | int]
    reasons: tuple[Reason, ...]


class StatusError(click.ClickException):
    """The cluster could not be read: one line on stderr, exit code 2 (the CLI's "invalid input,
    configuration or usage"). A ClickException, so it renders the same with or without the CLI's guard."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"kaito-gen: {self.format_message()}", file=file, err=file is None)


# --------------------------------------------------------------------------------------------------
# Small typed accessors over untrusted JSON


def _at(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _str(obj: Any, *path: str) -> str:
    value = _at(obj, *path)
    return value if isinstance(value, str) else ""


def _int(obj: Any, *path: str, default: int = 0) -> int:
    value = _at(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _map(obj: Any, *path: str) -> Mapping[str, Any]:
    value = _at(obj, *path)
    return value if isinstance(value, Mapping) else {}


def _list(obj: Any, *path: str) -> list[Mapping[str, Any]]:
    value = _at(obj, *path)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _name(obj: Obj) -> str:
    return _str(obj, "metadata", "name")


def _namespace(obj: Obj) -> str:
    return _str(obj, "metadata", "namespace")


def _condition(obj: Obj, ctype: str) -> Mapping[str, Any]:
    for cond in _list(obj, "status", "conditions"):
        if cond.get("type") == ctype:
            return cond
    return {}


def _clean(text: str) -> str:
    """Cluster messages go to a terminal: drop control characters (no escape-sequence injection), fold
    whitespace onto one line and bound the length."""
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _cond_text(cond: Mapping[str, Any]) -> str:
    reason, message = _str(cond, "reason"), _str(cond, "message")
    return ": ".join(part for part in (reason, message) if part)


def parse_time(value: str) -> datetime | None:
    """RFC 3339 timestamp from the API server (`2025-06-01T09:00:00Z`), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def humanize_age(seconds: float) -> str:
    """kubectl's AGE column (apimachinery `duration.HumanDuration`): 45s, 5m30s, 42m, 5h10m, 20h, 3d4h,
    120d, 2y30d. More precision while an object is young, less as it ages."""
    secs = int(seconds)  # truncates towards zero, like Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


# --------------------------------------------------------------------------------------------------
# The pure core


@dataclass
class _Group:
    statefulsets: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class _Index:
    nodepools: Mapping[str, Obj]
    claims_by_pool: Mapping[str, Sequence[Obj]]
    nodes: Mapping[str, Obj]
    pods_by_workspace: Mapping[tuple[str, str], Sequence[Obj]]
    unreadable: Mapping[str, str]


def _workspace_of(obj: Obj) -> str:
    labels = _map(obj, "metadata", "labels")
    for key in (WORKSPACE_LABEL, "app.kubernetes.io/instance"):
        value = labels.get(key)
        if isinstance(value, str) and value:
            return value
    return _name(obj)


def _created_key(obj: Obj) -> tuple[datetime, str]:
    created = parse_time(_str(obj, "metadata", "creationTimestamp"))
    return (created or datetime.min.replace(tzinfo=UTC), _name(obj))


def build_rows(objects: ClusterObjects, now: datetime) -> list[StatusRow]:
    """One row per kaito-gen workspace (StatefulSet or Jobs grouped by namespace and `kaito.sh/workspace`),
    sorted by namespace and name. Pure: `now` is the only clock, `objects` the only input."""
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
    for sts in objects.statefulsets:
        groups[(_namespace(sts), _workspace_of(sts))].statefulsets.append(sts)
    for job in objects.jobs:
        groups[(_namespace(job), _workspace_of(job))].jobs.append(job)

    claims: dict[str, list[Obj]] = defaultdict(list)
    for claim in objects.nodeclaims:
        claims[_str(claim, "metadata", "labels", NODEPOOL_LABEL)].append(claim)
    pods: dict[tuple[str, str], list[Obj]] = defaultdict(list)
    for pod in objects.pods:
        workspace = _str(pod, "metadata", "labels", WORKSPACE_LABEL)
        if workspace:
            pods[(_namespace(pod), workspace)].append(pod)
    index = _Index(
        nodepools={_name(np): np for np in objects.nodepools},
        claims_by_pool=claims,
        nodes={_name(node): node for node in objects.nodes},
        pods_by_workspace=pods,
        unreadable=objects.unreadable,
    )
    return [_row(ns, ws, groups[(ns, ws)], index, now) for ns, ws in sorted(groups)]


def _owned_by(pod: Obj, kind: str, name: str) -> bool:
    return any(
        ref.get("kind") == kind and ref.get("name") == name
        for ref in _list(pod, "metadata", "ownerReferences")
    )


def _job_of(pod: Obj) -> str:
    labels = _map(pod, "metadata", "labels")
    for key in JOB_NAME_LABELS:
        value = labels.get(key)
        if isinstance(value, str) and value:
            return value
    for ref in _list(pod, "metadata", "ownerReferences"):
        if ref.get("kind") == "Job":
            return _str(ref, "name")
    return ""


def _row(namespace: str, workspace: str, group: _Group, index: _Index, now: datetime) -> StatusRow:
    all_pods = index.pods_by_workspace.get((namespace, workspace), ())
    sts = max(group.statefulsets, key=_created_key) if group.statefulsets else None
    # A workspace whose tuning spec changed has one Job per spec hash; only the newest one matters.
    job = max(group.jobs, key=_created_key) if group.jobs else None
    workload = sts if sts is not None else job
    if workload is None:  # groups are only created from a StatefulSet or a Job
        raise AssertionError(f"workspace {namespace}/{workspace} has no workload")
    if sts is not None:
        pods = [p for p in all_pods if not _job_of(p) or _owned_by(p, "StatefulSet", _name(sts))]
    else:
        pods = [p for p in all_pods if _job_of(p) == _name(workload)]
    live_pods = [p for p in pods if not _str(p, "metadata", "deletionTimestamp")]

    # List items from the API server carry no `kind`, so name the workload from what we know.
    workload_ref = f"{'statefulset' if sts is not None else 'job'}/{_name(workload)}"
    annotations = _map(workload, "metadata", "annotations")
    provisioner = str(annotations.get(ANN_PROVISIONER) or "")
    node_pool = str(annotations.get(ANN_NODEPOOL) or "")
    target, target_note = _target_count(annotations)

    node_reasons: list[Reason] = []
    if target_note:
        node_reasons.append(Reason(workload_ref, "BadAnnotation", target_note))
    if provisioner == "karpenter":
        resource, ready_nodes = _karpenter_ready(node_pool, target, index, node_reasons)
    elif provisioner == "byo":
        resource, ready_nodes = _byo_ready(target, live_pods, index, node_reasons)
    else:
        resource, ready_nodes = "Unknown", None
        node_reasons.append(
            Reason(
                workload_ref,
                "UnknownProvisioner",
                f"annotation {ANN_PROVISIONER} is {provisioner or 'missing'!r}; expected karpenter or byo "
                "(was this object rendered by kaito-gen?)",
            )
        )
    pod_reasons = [reason for pod in live_pods for reason in _pod_reasons(pod)]

    if sts is not None:
        mode, job_started = "inference", ""
        inference = succeeded = _inference_ready(sts, resource)
        state = "Ready" if succeeded == "True" else ("NotReady" if _has_run(live_pods) else "Pending")
        counts: dict[str, str | int] = {
            "kind": "StatefulSet",
            "name": _name(sts),
            "replicas": _int(sts, "spec", "replicas", default=1),
            "readyReplicas": _int(sts, "status", "readyReplicas"),
        }
        reasons = node_reasons + pod_reasons
        if succeeded != "True" and not reasons:
            reasons.append(
                Reason(
                    f"statefulset/{_name(sts)}",
                    "ReplicasNotReady",
                    f"{counts['readyReplicas']}/{counts['replicas']} replicas ready",
                )
            )
    else:
        mode, inference = "tuning", ""
        job_started, succeeded, state, job_reasons = _tuning_columns(workload)
        counts = {"kind": "Job", "name": _name(workload)}
        for key in ("active", "ready", "succeeded", "failed"):
            counts[key] = _int(workload, "status", key)
        # Once the Job finished Karpenter may already have consolidated its node away; node-level
        # complaints about a finished Job would only be noise.
        finished = state in ("Succeeded", "Failed")
        reasons = (job_reasons + pod_reasons) if finished else (node_reasons + job_reasons + pod_reasons)

    created = _str(workload, "metadata", "creationTimestamp")
    created_at = parse_time(created)
    return StatusRow(
        namespace=namespace,
        name=workspace,
        mode=mode,
        instance=str(annotations.get(ANN_INSTANCE) or ""),
        resource_ready=resource,
        inference_ready=inference,
        job_started=job_started,
        workspace_succeeded=succeeded,
        state=state,
        age=humanize_age((now - created_at).total_seconds()) if created_at else "<unknown>",
        created=created,
        provisioner=provisioner,
        node_pool=node_pool,
        target_node_count=target,
        ready_node_count=ready_nodes,
        workload=counts,
        reasons=tuple(_dedupe(reasons))[:MAX_REASONS],
    )


def _dedupe(reasons: Iterable[Reason]) -> list[Reason]:
    seen: set[Reason] = set()
    out = []
    for reason in reasons:
        if reason not in seen:
            seen.add(reason)
            out.append(reason)
    return out


def _target_count(annotations: Mapping[str, Any]) -> tuple[int, str]:
    raw = annotations.get(ANN_NODE_COUNT)
    if raw is None:
        return 1, ""
    try:
        count = int(str(raw))
    except ValueError:
        count = 0
    if count < 1:
        return 1, f"annotation {ANN_NODE_COUNT} is {_clean(str(raw))!r}, not a positive integer; assuming 1"
    return count, ""


def _karpenter_ready(pool: str, target: int, index: _Index, reasons: list[Reason]) -> tuple[str, int | None]:
    """Kaito's NodeClaimReady: Ready NodeClaims of the workspace's NodePool ≥ the target node count."""
    if not pool:
        reasons.append(Reason("nodepool/?", "NodePoolUnknown", f"annotation {ANN_NODEPOOL} is missing"))
        return "Unknown", None
    if "nodepools" in index.unreadable:
        reasons.append(Reason(f"nodepool/{pool}", "CannotRead", index.unreadable["nodepools"]))
        return "Unknown", None
    nodepool = index.nodepools.get(pool)
    if nodepool is None:
        reasons.append(
            Reason(
                f"nodepool/{pool}",
                "NodePoolNotFound",
                f"NodePool {pool} does not exist: apply nodepool-{pool}.yaml from the bundle "
                "(and check that Karpenter's karpenter.sh/v1 API is installed)",
            )
        )
        return "False", 0
    pool_ready = _condition(nodepool, "Ready")
    if pool_ready.get("status") == "False":
        reasons.append(Reason(f"nodepool/{pool}", "NodePoolNotReady", _clean(_cond_text(pool_ready))))
    if "nodeclaims" in index.unreadable:
        reasons.append(Reason(f"nodepool/{pool}", "CannotRead", index.unreadable["nodeclaims"]))
        return "Unknown", None

    claims = sorted(
        (c for c in index.claims_by_pool.get(pool, ()) if not _str(c, "metadata", "deletionTimestamp")),
        key=_name,
    )
    ready = 0
    for claim in claims:
        if _condition(claim, "Ready").get("status") == "True":
            ready += 1
            continue
        reasons.append(_claim_reason(claim))
    if ready < target and len(claims) < target:
        reasons.append(
            Reason(
                f"nodepool/{pool}",
                "NodeClaimsMissing",
                f"{len(claims)}/{target} NodeClaims exist; Karpenter creates them for the workspace's "
                "pending pods",
            )
        )
    return ("True" if ready >= target else "False"), ready


def _claim_reason(claim: Obj) -> Reason:
    obj = f"nodeclaim/{_name(claim)}"
    for stage in NODECLAIM_STAGES:
        cond = _condition(claim, stage)
        if cond.get("status") != "True":
            detail = _cond_text(cond) or f"no {stage} condition yet"
            return Reason(obj, f"NodeClaimNot{stage}", _clean(detail))
    return Reason(obj, "NodeClaimNotReady", _clean(_cond_text(_condition(claim, "Ready")) or "not Ready"))


def _byo_ready(
    target: int, pods: Sequence[Obj], index: _Index, reasons: list[Reason]
) -> tuple[str, int | None]:
    """Bring-your-own nodes: no NodePool to look at, so resources are ready once the workspace's pods sit
    on at least `target` distinct Ready nodes."""
    if "nodes" in index.unreadable:
        reasons.append(Reason("nodes", "CannotRead", index.unreadable["nodes"]))
        return "Unknown", None
    node_names = sorted({_str(p, "spec", "nodeName") for p in pods} - {""})
    ready = 0
    for node_name in node_names:
        node = index.nodes.get(node_name)
        if node is None:
            reasons.append(Reason(f"node/{node_name}", "NodeNotFound", "the pod's node no longer exists"))
            continue
        cond = _condition(node, "Ready")
        if cond.get("status") == "True":
            ready += 1
        else:
            reasons.append(
                Reason(f"node/{node_name}", "NodeNotReady", _clean(_cond_text(cond) or "not Ready"))
            )
    if not pods:
        reasons.append(Reason("pods", "NoPods", "no pod of the workspace exists yet"))
    return ("True" if ready >= target else "False"), ready


def _inference_ready(sts: Obj, resource: str) -> str:
    """Kaito: InferenceReady iff StatefulSet readyReplicas == replicas and ResourceReady (an Unknown
    ResourceReady, i.e. NodePools we may not read, does not veto pods that are demonstrably ready)."""
    replicas = _int(sts, "spec", "replicas", default=1)
    ready = _int(sts, "status", "readyReplicas")
    return "True" if ready >= replicas and resource != "False" else "False"


def _tuning_columns(job: Obj) -> tuple[str, str, str, list[Reason]]:
    """Kaito (workspace_controller.go): failed > 0 → JobStarted False, state Failed; succeeded → Succeeded;
    active or ready pods → Running; otherwise Pending."""
    obj = f"job/{_name(job)}"
    failed_cond = _condition(job, "Failed")
    if _int(job, "status", "failed") > 0 or failed_cond.get("status") == "True":
        detail = _cond_text(failed_cond) if failed_cond.get("status") == "True" else ""
        message = detail or f"{_int(job, 'status', 'failed')} pod(s) failed"
        return "False", "False", "Failed", [Reason(obj, "JobFailed", _clean(message))]
    if _int(job, "status", "succeeded") > 0 or _condition(job, "Complete").get("status") == "True":
        return "True", "True", "Succeeded", []
    if _int(job, "status", "active") > 0 or _int(job, "status", "ready") > 0:
        return "True", "False", "Running", []
    return "False", "False", "Pending", []


def _container_statuses(pod: Obj) -> list[Mapping[str, Any]]:
    return _list(pod, "status", "initContainerStatuses") + _list(pod, "status", "containerStatuses")


def _has_run(pods: Sequence[Obj]) -> bool:
    """Kaito's Pending means "never ready before", NotReady "was up, is not now". Without the operator's
    memory, a container that restarted, terminated or was evicted is the evidence that it ran."""
    for pod in pods:
        if _str(pod, "status", "phase") == "Failed" or _str(pod, "status", "reason") == "Evicted":
            return True
        for cs in _list(pod, "status", "containerStatuses"):
            if (
                _int(cs, "restartCount") > 0
                or _map(cs, "lastState", "terminated")
                or _map(cs, "state", "terminated")
            ):
                return True
    return False


def _pod_reasons(pod: Obj) -> list[Reason]:
    """What `kubectl describe pod` would make a user scroll for, as one line each."""
    obj = f"pod/{_name(pod)}"
    out: list[Reason] = []
    if _str(pod, "status", "reason"):  # Evicted, NodeLost, DeadlineExceeded, ...
        out.append(Reason(obj, _str(pod, "status", "reason"), _clean(_str(pod, "status", "message"))))
    scheduled = _condition(pod, "PodScheduled")
    if scheduled.get("status") == "False":
        out.append(
            Reason(obj, _str(scheduled, "reason") or "Unschedulable", _clean(_str(scheduled, "message")))
        )
    for cs in _container_statuses(pod):
        out += _container_reasons(obj, cs)
    if not out and _str(pod, "status", "phase") == "Running":
        ready = _condition(pod, "Ready")
        if ready.get("status") == "False":
            out.append(
                Reason(
                    obj,
                    _str(ready, "reason") or "NotReady",
                    _clean(_str(ready, "message") or "not ready yet"),
                )
            )
    return out


def _container_reasons(obj: str, cs: Mapping[str, Any]) -> list[Reason]:
    container = _str(cs, "name")
    waiting = _map(cs, "state", "waiting")
    terminated = _map(cs, "state", "terminated")
    last = _map(cs, "lastState", "terminated")
    out: list[Reason] = []
    if waiting and _str(waiting, "reason") not in BENIGN_WAITING:
        message = _str(waiting, "message")
        if _str(waiting, "reason") == "CrashLoopBackOff" and last:
            # The back-off message hides why the container died; the last termination says it.
            message = (
                f"last exit code {_int(last, 'exitCode')} ({_str(last, 'reason') or 'Error'}); {message}"
            )
        detail = f"container {container}: {message}"
        out.append(Reason(obj, _str(waiting, "reason") or "Waiting", _clean(detail)))
    # restartPolicy Never (Jobs) leaves an OOM kill in state.terminated; Always (StatefulSets) moves it to
    # lastState.terminated once the container restarted.
    oom = next((t for t in (terminated, last) if _str(t, "reason") == "OOMKilled"), None)
    if oom is not None:
        finished = _str(oom, "finishedAt") or "unknown time"
        detail = (
            f"container {container} was killed for exceeding its memory limit (exit code "
            f"{_int(oom, 'exitCode', default=137)}, at {finished}, restarts: {_int(cs, 'restartCount')})"
        )
        out.append(Reason(obj, "OOMKilled", _clean(detail)))
    elif terminated and _int(terminated, "exitCode") != 0:
        detail = f"container {container} exited with code {_int(terminated, 'exitCode')}"
        if _str(terminated, "message"):
            detail += f": {_str(terminated, 'message')}"
        out.append(Reason(obj, _str(terminated, "reason") or "Error", _clean(detail)))
    return out


# --------------------------------------------------------------------------------------------------
# Rendering

COLUMNS = (
    "NAME",
    "INSTANCE",
    "RESOURCEREADY",
    "INFERENCEREADY",
    "JOBSTARTED",
    "WORKSPACESUCCEEDED",
    "STATE",
    "AGE",
)
_GOOD = frozenset({"True", "Ready", "Succeeded", "Running"})
_BAD = frozenset({"False", "NotReady", "Failed"})


def _cells(row: StatusRow, all_namespaces: bool) -> list[str]:
    cells = [
        row.name,
        row.instance,
        row.resource_ready,
        row.inference_ready,
        row.job_started,
        row.workspace_succeeded,
        row.state,
        row.age,
    ]
    return [_clean(cell) for cell in ([row.namespace] if all_namespaces else []) + cells]


def _paint(cell: str, width: int, colour: bool) -> str:
    padded = cell.ljust(width)
    if not colour:
        return padded
    if cell in _GOOD:
        return click.style(padded, fg="green")
    if cell in _BAD:
        return click.style(padded, fg="red")
    if cell in ("Pending", "Unknown"):
        return click.style(padded, fg="yellow")
    return padded


def render_table(rows: Sequence[StatusRow], *, all_namespaces: bool = False, colour: bool = False) -> str:
    """kubectl-style columns (3 spaces apart), then the waiting reasons per workspace."""
    header = (["NAMESPACE"] if all_namespaces else []) + list(COLUMNS)
    body = [_cells(row, all_namespaces) for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = []
    for line in [header, *body]:
        painted = [_paint(cell, widths[i], colour and line is not header) for i, cell in enumerate(line)]
        lines.append("   ".join(painted).rstrip())

    reason_lines: list[tuple[str, ...]] = []
    for row in rows:
        label = _clean(f"{row.namespace}/{row.name}" if all_namespaces else row.name)
        reason_lines += [
            (label, _clean(r.object), _clean(r.reason), r.message) for r in row.reasons[:MAX_REASONS_TABLE]
        ]
        hidden = len(row.reasons) - MAX_REASONS_TABLE
        if hidden > 0:
            reason_lines.append((label, "", "", f"… and {hidden} more (--json lists them all)"))
    if reason_lines:
        reason_widths = [max(len(entry[i]) for entry in reason_lines) for i in range(3)]
        lines += ["", "Waiting reasons:"]
        for entry in reason_lines:
            cells = [cell.ljust(reason_widths[i]) for i, cell in enumerate(entry[:3])] + [entry[3]]
            lines.append(("  " + "   ".join(cells)).rstrip())
    return "\n".join(lines) + "\n"


def rows_to_json(rows: Sequence[StatusRow]) -> dict[str, Any]:
    """The `--json` document. Condition values are "True"/"False"/"Unknown", or null where the column does not
    apply to the workspace's mode."""

    def cond(value: str) -> str | None:
        return value or None

    return {
        "workspaces": [
            {
                "namespace": row.namespace,
                "name": row.name,
                "mode": row.mode,
                "instance": row.instance or None,
                "resourceReady": cond(row.resource_ready),
                "inferenceReady": cond(row.inference_ready),
                "jobStarted": cond(row.job_started),
                "workspaceSucceeded": cond(row.workspace_succeeded),
                "state": row.state,
                "age": row.age,
                "creationTimestamp": row.created or None,
                "provisioner": row.provisioner or None,
                "nodePool": row.node_pool or None,
                "targetNodeCount": row.target_node_count,
                "readyNodeCount": row.ready_node_count,
                "workload": dict(row.workload),
                "reasons": [
                    {"object": r.object, "reason": r.reason, "message": r.message} for r in row.reasons
                ],
            }
            for row in rows
        ]
    }


# --------------------------------------------------------------------------------------------------
# The cluster edge


def _selector(workspace: str | None) -> str:
    return f"{MANAGED_BY_SELECTOR},{WORKSPACE_LABEL}={workspace}" if workspace else MANAGED_BY_SELECTOR


def _api_message(exc: Any) -> str:
    """The `message` of the Kubernetes Status body, else the HTTP reason."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        if isinstance(message, str) and message:
            return _clean(message)
    return _clean(str(getattr(exc, "reason", "") or "no details"))


class _Reader:
    """GETs through the official client, returning the raw JSON: `_preload_content=False` skips the client's
    model classes, so the core sees the same dicts as `kubectl get -o json` (and the recorded fixtures)."""

    def __init__(self, api_client: Any, host: str) -> None:
        from kubernetes import client

        self.host = host
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def get(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            response = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            try:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
            finally:
                response.release_conn()
        except ApiException as exc:
            raise _ApiFailure(int(exc.status or 0), what, _api_message(exc)) from None
        except urllib3.exceptions.HTTPError as exc:
            cause = getattr(exc, "reason", None) or exc
            raise StatusError(
                f"cannot reach the Kubernetes API server at {self.host}: {_clean(str(cause))} "
                "(check --kubeconfig / --context and that the cluster is up)"
            ) from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise StatusError(f"the API server's answer for {what} is larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError:
            raise StatusError(
                f"the API server at {self.host} answered {what} with something that is not JSON"
            ) from None
        if not isinstance(data, dict):
            raise StatusError(f"the API server at {self.host} answered {what} with unexpected JSON")
        return data


class _ApiFailure(Exception):
    def __init__(self, code: int, what: str, message: str) -> None:
        super().__init__(message)
        self.code, self.what, self.message = code, what, message

    def as_error(self, host: str) -> StatusError:
        if self.code == 401:
            return StatusError(
                f"the API server at {host} rejected the credentials (401 Unauthorized) while reading "
                f"{self.what}: {self.message}"
            )
        if self.code == 403:
            return StatusError(f"forbidden (403) to read {self.what}: {self.message}")
        if self.code == 0:  # the client folds TLS failures into status 0
            return StatusError(f"cannot talk to the API server at {host}: {self.message}")
        return StatusError(f"the API server at {host} answered {self.code} for {self.what}: {self.message}")


def fetch_objects(api_client: Any, host: str, namespace: str | None, workspace: str | None) -> ClusterObjects:
    """Read everything `build_rows` needs, GET only. `namespace=None` means all namespaces.

    Workloads and pods must be readable (else StatusError). NodePools, NodeClaims and Nodes are
    cluster-scoped and often not readable by namespace users: then the readiness that depends on them is
    reported as Unknown, with the reason, instead of failing the whole command.
    """
    reader = _Reader(api_client, host)
    selector = _selector(workspace)
    pod_selector = f"{WORKSPACE_LABEL}={workspace}" if workspace else WORKSPACE_LABEL
    where = f"namespace {namespace}" if namespace else "all namespaces"
    try:
        if namespace is None:
            statefulsets = reader.get(
                f"statefulsets in {where}",
                reader.apps.list_stateful_set_for_all_namespaces,
                label_selector=selector,
            )
            jobs = reader.get(
                f"jobs in {where}", reader.batch.list_job_for_all_namespaces, label_selector=selector
            )
        else:
            statefulsets = reader.get(
                f"statefulsets in {where}",
                reader.apps.list_namespaced_stateful_set,
                namespace,
                label_selector=selector,
            )
            jobs = reader.get(
                f"jobs in {where}", reader.batch.list_namespaced_job, namespace, label_selector=selector
            )
        workloads = _list(statefulsets, "items") + _list(jobs, "items")
        if not workloads:
            return ClusterObjects()
        if namespace is None:
            pods = reader.get(
                f"pods in {where}", reader.core.list_pod_for_all_namespaces, label_selector=pod_selector
            )
        else:
            pods = reader.get(
                f"pods in {where}", reader.core.list_namespaced_pod, namespace, label_selector=pod_selector
            )
    except _ApiFailure as failure:
        raise failure.as_error(host) from None

    unreadable: dict[str, str] = {}
    pools = sorted(
        {
            str(_map(w, "metadata", "annotations").get(ANN_NODEPOOL))
            for w in workloads
            if _map(w, "metadata", "annotations").get(ANN_PROVISIONER) == "karpenter"
            and _map(w, "metadata", "annotations").get(ANN_NODEPOOL)
        }
    )[:MAX_FOLLOW_UPS]
    nodepools: list[Obj] = []
    nodeclaims: list[Obj] = []
    for pool in pools:
        found = _optional(
            reader,
            unreadable,
            "nodepools",
            f"NodePool {pool}",
            reader.custom.get_cluster_custom_object,
            *KARPENTER,
            "nodepools",
            pool,
        )
        if found is not None:
            nodepools.append(found)
        if "nodepools" in unreadable:  # readiness is Unknown without the NodePool; skip its claims
            continue
        claims = _optional(
            reader,
            unreadable,
            "nodeclaims",
            f"NodeClaims of NodePool {pool}",
            reader.custom.list_cluster_custom_object,
            *KARPENTER,
            "nodeclaims",
            label_selector=f"{NODEPOOL_LABEL}={pool}",
        )
        nodeclaims += _list(claims, "items")

    byo_workspaces = {
        (_namespace(w), _workspace_of(w))
        for w in workloads
        if _map(w, "metadata", "annotations").get(ANN_PROVISIONER) == "byo"
    }
    node_names = sorted(
        {
            _str(p, "spec", "nodeName")
            for p in _list(pods, "items")
            if (_namespace(p), _str(p, "metadata", "labels", WORKSPACE_LABEL)) in byo_workspaces
        }
        - {""}
    )[:MAX_FOLLOW_UPS]
    nodes: list[Obj] = []
    for node_name in node_names:
        node = _optional(reader, unreadable, "nodes", f"Node {node_name}", reader.core.read_node, node_name)
        if node is not None:
            nodes.append(node)

    return ClusterObjects(
        statefulsets=_list(statefulsets, "items"),
        jobs=_list(jobs, "items"),
        pods=_list(pods, "items"),
        nodepools=nodepools,
        nodeclaims=nodeclaims,
        nodes=nodes,
        unreadable=unreadable,
    )


def _optional(
    reader: _Reader,
    unreadable: dict[str, str],
    resource: str,
    what: str,
    call: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """A cluster-scoped read that may legitimately fail: 404 → None (absent), 403 → note it as unreadable."""
    if resource in unreadable:
        return None
    try:
        return reader.get(what, call, *args, **kwargs)
    except _ApiFailure as failure:
        if failure.code == 404:
            if resource == "nodeclaims":  # a list answers 404 only when the API itself is not served
                unreadable[resource] = f"the cluster does not serve {resource} (is Karpenter installed?)"
            return None
        if failure.code == 403:
            unreadable[resource] = (
                f"forbidden (403) to read {resource}; the API server said: {failure.message}"
            )
            return None
        raise failure.as_error(reader.host) from None


def connect(kubeconfig: Path | None, context: str | None) -> tuple[Any, str, str]:
    """Load the kubeconfig like kubectl does (--kubeconfig, else $KUBECONFIG, else ~/.kube/config).
    Returns (ApiClient, the context's namespace or "default", the server URL)."""
    from kubernetes import client, config

    source = str(kubeconfig) if kubeconfig else "$KUBECONFIG or ~/.kube/config"
    config_file = str(kubeconfig) if kubeconfig else None
    configuration = client.Configuration()
    try:
        # The kubernetes package ships partial annotations; these two loaders are unannotated.
        contexts, current = config.list_kube_config_contexts(config_file)  # type: ignore[no-untyped-call]
        chosen = current if context is None else next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
            raise StatusError(f"context {context!r} is not in the kubeconfig ({source}); contexts: {names}")
        namespace = str(_map(chosen, "context").get("namespace") or "default")
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=context, client_configuration=configuration, persist_config=False
        )
    except StatusError:
        raise
    except Exception as exc:  # the loader raises ConfigException, YAML errors and KeyError/TypeError alike
        raise StatusError(
            f"cannot use the kubeconfig ({source}): {_clean(str(exc)) or type(exc).__name__}"
        ) from None
    # One retry on a dropped connection, not urllib3's three: an unreachable server fails fast.
    configuration.retries = 1
    return client.ApiClient(configuration), namespace, str(configuration.host)


# --------------------------------------------------------------------------------------------------
# The command


def _dns_label(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _DNS_LABEL.match(value):
        raise click.BadParameter(f"{value!r} is not a valid Kubernetes name (lowercase DNS-1123 label)")
    return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_status_command(clock: Callable[[], datetime] = _utc_now) -> click.Command:
    """The `status` command with an injected clock (tests pass a fixed one; the CLI uses the real time)."""

    @click.command("status")
    @click.option(
        "-n",
        "--namespace",
        callback=_dns_label,
        help="Namespace to read (default: the kubeconfig context's).",
    )
    @click.option("-A", "--all-namespaces", is_flag=True, help="Read every namespace.")
    @click.option(
        "--kubeconfig",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
    )
    @click.option("--context", help="Kubeconfig context (default: current-context).")
    @click.option("-w", "--workspace", callback=_dns_label, help="Only this workspace.")
    @click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (every reason, counts) instead of the table."
    )
    def status(
        *,
        namespace: str | None,
        all_namespaces: bool,
        kubeconfig: Path | None,
        context: str | None,
        workspace: str | None,
        as_json: bool,
    ) -> None:
        """Show kaito-gen workspaces as Kaito's `kubectl get workspace` table, read-only.

        Readiness comes from the NodePool and its NodeClaims (BYO: the pods' nodes), the StatefulSet,
        the newest Job and the pods; reasons such as Unschedulable, ImagePullBackOff, CrashLoopBackOff,
        OOMKilled and NodeClaims that never launched are listed under the table.

        Exit codes: 0 table printed (also when nothing is ready, or nothing found); 2 the cluster could
        not be read (kubeconfig, connection, 401/403) or bad options.
        """
        if namespace and all_namespaces:
            raise click.UsageError("--namespace and --all-namespaces exclude each other")
        api_client, context_namespace, host = connect(kubeconfig, context)
        target = None if all_namespaces else (namespace or context_namespace)
        try:
            objects = fetch_objects(api_client, host, target, workspace)
        finally:
            api_client.close()
        rows = build_rows(objects, clock())
        if as_json:
            click.echo(json.dumps(rows_to_json(rows), indent=2))
            return
        if not rows:
            scope = "any namespace" if target is None else f"namespace {target}"
            what = f"workspace {workspace}" if workspace else "kaito-gen workspaces"
            click.echo(
                f"No {what} found in {scope} "
                f"(looked for StatefulSets and Jobs labelled {MANAGED_BY_SELECTOR}).",
                err=True,
            )
            return
        colour = "NO_COLOR" not in os.environ  # click.echo strips the styling anyway when not on a TTY
        click.echo(render_table(rows, all_namespaces=target is None, colour=colour), nl=False)

    return status


status = make_status_command()
