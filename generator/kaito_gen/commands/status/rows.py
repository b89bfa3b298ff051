"""`build_rows(objects, now)`: pure, plain dicts in (as `kubectl get -o json` prints), rows out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from kaito_gen.commands.status.model import (
    ANN_INSTANCE,
    ANN_NODE_COUNT,
    ANN_NODEPOOL,
    ANN_PROVISIONER,
    BENIGN_WAITING,
    JOB_NAME_LABELS,
    MAX_REASONS,
    NODECLAIM_STAGES,
    NODEPOOL_LABEL,
    WORKSPACE_LABEL,
    ClusterObjects,
    Obj,
    Reason,
    StatusRow,
    _clean,
    _cond_text,
    _condition,
    _created_key,
    _Group,
    _Index,
    _int,
    _list,
    _map,
    _name,
    _namespace,
    _str,
    _workspace_of,
    humanize_age,
    parse_time,
)


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
