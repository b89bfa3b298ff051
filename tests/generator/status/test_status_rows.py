"""Table tests for the pure core of `kaito-gen status`: `build_rows(objects, now)` over plain dicts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kaito_gen.commands.status import (
    ClusterObjects,
    Reason,
    StatusRow,
    build_rows,
    humanize_age,
    render_table,
    rows_to_json,
)
from status_apiserver import NOW, RECORDED

# ---------------------------------------------------------------------------------------------
# Builders for synthetic objects, in the JSON shape the API server returns.

CREATED = (NOW - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(name: str, ns: str | None, ws: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "creationTimestamp": CREATED,
        "labels": {"app.kubernetes.io/managed-by": "kaito-gen", "kaito.sh/workspace": ws},
    }
    if ns is not None:
        meta["namespace"] = ns
    if annotations is not None:
        meta["annotations"] = annotations
    return meta


def _ann(ws: str, ns: str = "ml", provisioner: str = "karpenter", count: str = "1") -> dict[str, str]:
    ann = {
        "kaito-gen.io/provisioner": provisioner,
        "kaito-gen.io/node-count": count,
        "kaito-gen.io/instance-type": "Standard_NC24ads_A100_v4",
    }
    if provisioner == "karpenter":
        ann["kaito-gen.io/nodepool"] = f"{ns}-{ws}"
    return ann


def sts(ws: str, *, ready: int, replicas: int = 1, ns: str = "ml", **ann: str) -> dict[str, Any]:
    return {
        "metadata": _meta(ws, ns, ws, _ann(ws, ns, **ann)),
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, **({"readyReplicas": ready} if ready else {})},
    }


def job(name: str, ws: str, *, created: str = CREATED, ns: str = "ml", **status: Any) -> dict[str, Any]:
    obj = {"metadata": _meta(name, ns, ws, _ann(ws, ns)), "spec": {}, "status": status}
    obj["metadata"]["creationTimestamp"] = created
    return obj


def pod(
    name: str,
    ws: str,
    *,
    ns: str = "ml",
    phase: str = "Running",
    node: str | None = "node-a",
    job_name: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    meta = _meta(name, ns, ws)
    if job_name:
        meta["labels"]["batch.kubernetes.io/job-name"] = job_name
    spec: dict[str, Any] = {"containers": [{"name": ws, "image": "x"}]}
    if node:
        spec["nodeName"] = node
    body: dict[str, Any] = {"phase": phase, "conditions": conditions or [], **status}
    if containers is not None:
        body["containerStatuses"] = containers
    return {"metadata": meta, "spec": spec, "status": body}


def cond(ctype: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def nodepool(name: str, ready: str = "True", message: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": name},
        "status": {
            "conditions": [cond("Ready", ready, "Ready" if ready == "True" else "NodeClassNotReady", message)]
        },
    }


def claim(name: str, pool: str, **stages: str) -> dict[str, Any]:
    """stages: Launched/Registered/Initialized/Ready → status (default True)."""
    conditions = [
        cond(stage, stages.get(stage, "True"), "Reason" + stage, "msg " + stage)
        for stage in ("Launched", "Registered", "Initialized", "Ready")
    ]
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {"karpenter.sh/nodepool": pool}},
        "status": {"conditions": conditions},
    }


def node(name: str, ready: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [cond("Ready", ready, "KubeletReady", "kubelet")]},
    }


RUNNING_READY = [cond("PodScheduled", "True"), cond("Ready", "True")]


def running(name: str) -> dict[str, Any]:
    return {"name": name, "ready": True, "restartCount": 0, "state": {"running": {"startedAt": CREATED}}}


def one(objects: ClusterObjects) -> StatusRow:
    rows = build_rows(objects, NOW)
    assert len(rows) == 1, rows
    return rows[0]


def columns(row: StatusRow) -> tuple[str, str, str, str, str]:
    return (row.resource_ready, row.inference_ready, row.job_started, row.workspace_succeeded, row.state)


def reason_names(row: StatusRow) -> list[tuple[str, str]]:
    return [(r.object, r.reason) for r in row.reasons]


# ---------------------------------------------------------------------------------------------
# humanize_age: kubectl's AGE column


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (330, "5m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 600, "5h10m"),
        (8 * 3600 + 600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400 + 3600, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (760 * 86400, "2y30d"),
        (8 * 365 * 86400, "8y"),
    ],
    ids=str,
)
def test_humanize_age_matches_kubectl(seconds: float, expected: str) -> None:
    assert humanize_age(seconds) == expected


# ---------------------------------------------------------------------------------------------
# The three recorded scenarios, read straight from the recordings (no HTTP).


def _items(path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((RECORDED / path).read_text())["items"]
    return items


def _recorded_objects() -> ClusterObjects:
    pools = sorted((RECORDED / "cluster").glob("nodepool-*.json"))
    return ClusterObjects(
        statefulsets=_items("ml/statefulsets.json") + _items("tuning/statefulsets.json"),
        jobs=_items("ml/jobs.json") + _items("tuning/jobs.json"),
        pods=_items("ml/pods.json") + _items("tuning/pods.json"),
        nodepools=[json.loads(Path(p).read_text()) for p in pools],
        nodeclaims=_items("cluster/nodeclaims.json"),
    )


def test_recorded_scenarios_give_the_seed_columns() -> None:
    rows = build_rows(_recorded_objects(), NOW)
    got = [(r.namespace, r.name, r.instance, *columns(r), r.age) for r in rows]
    assert got == [
        ("ml", "mistral-7b", "Standard_NV36ads_A10_v5", "False", "False", "", "False", "Pending", "5m"),
        ("ml", "phi-3-mini", "Standard_NC24ads_A100_v4", "True", "True", "", "True", "Ready", "3h"),
        ("tuning", "phi-3-tune", "Standard_NC24ads_A100_v4", "True", "", "False", "False", "Failed", "120m"),
    ]
    pending, ready, tuning = rows
    assert reason_names(ready) == []
    assert reason_names(pending) == [
        ("nodeclaim/ml-mistral-7b-q7t4z", "NodeClaimNotLaunched"),
        ("pod/mistral-7b-0", "Unschedulable"),
    ]
    assert pending.reasons[0].message.startswith("LaunchFailed: creating instance, insufficient capacity")
    assert pending.reasons[1].message.startswith("0/3 nodes are available: 3 node(s) didn't match")
    assert (pending.ready_node_count, pending.target_node_count) == (0, 1)
    # The newest Job wins; the older, succeeded Job and its pod do not show up.
    assert tuning.workload == {
        "kind": "Job",
        "name": "phi-3-tune-9f8e7d6c5b",
        "active": 0,
        "ready": 0,
        "succeeded": 0,
        "failed": 1,
    }
    assert reason_names(tuning) == [
        ("job/phi-3-tune-9f8e7d6c5b", "JobFailed"),
        ("pod/phi-3-tune-9f8e7d6c5b-7x2kq", "OOMKilled"),
    ]
    assert "exit code 137" in tuning.reasons[1].message


# ---------------------------------------------------------------------------------------------
# Inference readiness


INFERENCE_CASES: list[tuple[str, ClusterObjects, tuple[str, ...], list[tuple[str, str]]]] = [
    (
        "ready",
        ClusterObjects(
            statefulsets=[sts("phi", ready=1)],
            pods=[pod("phi-0", "phi", conditions=RUNNING_READY, containers=[running("phi")])],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[claim("ml-phi-a", "ml-phi")],
        ),
        ("True", "True", "", "True", "Ready"),
        [],
    ),
    (
        "image-pull-backoff",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0)],
            pods=[
                pod(
                    "phi-0",
                    "phi",
                    phase="Pending",
                    conditions=[cond("PodScheduled", "True"), cond("Ready", "False", "ContainersNotReady")],
                    containers=[
                        {
                            "name": "phi",
                            "ready": False,
                            "restartCount": 0,
                            "state": {
                                "waiting": {
                                    "reason": "ImagePullBackOff",
                                    "message": 'Back-off pulling image "ghcr.io/x/y:0.1.0"',
                                }
                            },
                        }
                    ],
                )
            ],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[claim("ml-phi-a", "ml-phi")],
        ),
        ("True", "False", "", "False", "Pending"),
        [("pod/phi-0", "ImagePullBackOff")],
    ),
    (
        "crashloop-after-oom",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0)],
            pods=[
                pod(
                    "phi-0",
                    "phi",
                    conditions=[cond("PodScheduled", "True"), cond("Ready", "False", "ContainersNotReady")],
                    containers=[
                        {
                            "name": "phi",
                            "ready": False,
                            "restartCount": 4,
                            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
                            "lastState": {
                                "terminated": {
                                    "exitCode": 137,
                                    "reason": "OOMKilled",
                                    "finishedAt": "2025-06-01T11:58:00Z",
                                }
                            },
                        }
                    ],
                )
            ],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[claim("ml-phi-a", "ml-phi")],
        ),
        ("True", "False", "", "False", "NotReady"),
        [("pod/phi-0", "CrashLoopBackOff"), ("pod/phi-0", "OOMKilled")],
    ),
    (
        "still-loading",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0)],
            pods=[
                pod(
                    "phi-0",
                    "phi",
                    conditions=[
                        cond("PodScheduled", "True"),
                        cond("Ready", "False", "ContainersNotReady", "containers with unready status: [phi]"),
                    ],
                    containers=[{**running("phi"), "ready": False}],
                )
            ],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[claim("ml-phi-a", "ml-phi")],
        ),
        ("True", "False", "", "False", "Pending"),
        [("pod/phi-0", "ContainersNotReady")],
    ),
    (
        "nodepool-missing",
        ClusterObjects(statefulsets=[sts("phi", ready=0)]),
        ("False", "False", "", "False", "Pending"),
        [("nodepool/ml-phi", "NodePoolNotFound")],
    ),
    (
        "nodepool-not-ready-and-no-claims",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0)],
            nodepools=[nodepool("ml-phi", "False", "NodeClass image-family-ubuntu not found")],
        ),
        ("False", "False", "", "False", "Pending"),
        [("nodepool/ml-phi", "NodePoolNotReady"), ("nodepool/ml-phi", "NodeClaimsMissing")],
    ),
    (
        "claim-launched-not-registered",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0)],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[
                claim("ml-phi-a", "ml-phi", Registered="Unknown", Initialized="Unknown", Ready="Unknown")
            ],
        ),
        ("False", "False", "", "False", "Pending"),
        [("nodeclaim/ml-phi-a", "NodeClaimNotRegistered")],
    ),
    (
        "two-nodes-one-ready",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0, count="2")],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[
                claim("ml-phi-a", "ml-phi"),
                claim("ml-phi-b", "ml-phi", Initialized="False", Ready="False"),
                # A claim being deleted no longer counts, ready or not.
                {
                    **claim("ml-phi-c", "ml-phi"),
                    "metadata": {
                        "name": "ml-phi-c",
                        "deletionTimestamp": CREATED,
                        "labels": {"karpenter.sh/nodepool": "ml-phi"},
                    },
                },
            ],
        ),
        ("False", "False", "", "False", "Pending"),
        [("nodeclaim/ml-phi-b", "NodeClaimNotInitialized")],
    ),
    (
        # Kaito: InferenceReady needs ResourceReady too, even when the pods that exist are ready.
        "pods-ready-but-nodes-short",
        ClusterObjects(
            statefulsets=[sts("phi", ready=1, count="2")],
            pods=[pod("phi-0", "phi", conditions=RUNNING_READY, containers=[running("phi")])],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[claim("ml-phi-a", "ml-phi")],
        ),
        ("False", "False", "", "False", "Pending"),
        [("nodepool/ml-phi", "NodeClaimsMissing")],
    ),
    (
        "nodepools-unreadable-pods-ready",
        ClusterObjects(
            statefulsets=[sts("phi", ready=1)],
            pods=[pod("phi-0", "phi", conditions=RUNNING_READY, containers=[running("phi")])],
            unreadable={"nodepools": "forbidden to read nodepools: no RBAC"},
        ),
        ("Unknown", "True", "", "True", "Ready"),
        [("nodepool/ml-phi", "CannotRead")],
    ),
    (
        "byo-ready",
        ClusterObjects(
            statefulsets=[sts("phi", ready=1, provisioner="byo")],
            pods=[pod("phi-0", "phi", node="gpu-1", conditions=RUNNING_READY, containers=[running("phi")])],
            nodes=[node("gpu-1")],
        ),
        ("True", "True", "", "True", "Ready"),
        [],
    ),
    (
        "byo-node-not-ready",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0, provisioner="byo")],
            pods=[
                pod("phi-0", "phi", node="gpu-1", conditions=[cond("PodScheduled", "True")], containers=[])
            ],
            nodes=[node("gpu-1", "False")],
        ),
        ("False", "False", "", "False", "Pending"),
        [("node/gpu-1", "NodeNotReady")],
    ),
    (
        "byo-unschedulable",
        ClusterObjects(
            statefulsets=[sts("phi", ready=0, provisioner="byo")],
            pods=[
                pod(
                    "phi-0",
                    "phi",
                    phase="Pending",
                    node=None,
                    conditions=[
                        cond("PodScheduled", "False", "Unschedulable", "0/2 nodes have nvidia.com/gpu")
                    ],
                )
            ],
        ),
        ("False", "False", "", "False", "Pending"),
        [("pod/phi-0", "Unschedulable")],
    ),
    (
        "bad-node-count-annotation",
        ClusterObjects(
            statefulsets=[sts("phi", ready=1, count="two")],
            nodepools=[nodepool("ml-phi")],
            nodeclaims=[claim("ml-phi-a", "ml-phi")],
        ),
        ("True", "True", "", "True", "Ready"),
        [("statefulset/phi", "BadAnnotation")],
    ),
    (
        "not-rendered-by-kaito-gen",
        ClusterObjects(statefulsets=[sts("phi", ready=1, provisioner="gpu-provisioner")]),
        ("Unknown", "True", "", "True", "Ready"),
        [("statefulset/phi", "UnknownProvisioner")],
    ),
]


@pytest.mark.parametrize(
    ("objects", "expected", "reasons"),
    [case[1:] for case in INFERENCE_CASES],
    ids=[case[0] for case in INFERENCE_CASES],
)
def test_inference_rows(
    objects: ClusterObjects, expected: tuple[str, ...], reasons: list[tuple[str, str]]
) -> None:
    row = one(objects)
    assert (row.mode, *columns(row)) == ("inference", *expected)
    assert reason_names(row) == reasons


def test_crashloop_message_carries_the_last_exit() -> None:
    row = one(INFERENCE_CASES[2][1])
    crash, oom = row.reasons
    assert crash.message == "container phi: last exit code 137 (OOMKilled); back-off 1m20s"
    assert oom.message == (
        "container phi was killed for exceeding its memory limit "
        "(exit code 137, at 2025-06-01T11:58:00Z, restarts: 4)"
    )


# ---------------------------------------------------------------------------------------------
# Tuning readiness (Kaito workspace_controller.go order: failed, succeeded, started, pending)

OLD = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
TUNING_READY = {"nodepools": [nodepool("ml-tune")], "nodeclaims": [claim("ml-tune-a", "ml-tune")]}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, ("True", "", "False", "False", "Pending")),
        ({"active": 1, "ready": 0}, ("True", "", "True", "False", "Running")),
        ({"ready": 1}, ("True", "", "True", "False", "Running")),
        (
            {"succeeded": 1, "conditions": [cond("Complete", "True")]},
            ("True", "", "True", "True", "Succeeded"),
        ),
        ({"failed": 1}, ("True", "", "False", "False", "Failed")),
        (
            {"conditions": [cond("Failed", "True", "DeadlineExceeded", "too slow")]},
            ("True", "", "False", "False", "Failed"),
        ),
    ],
    ids=["pending", "active", "ready", "succeeded", "failed-count", "failed-condition"],
)
def test_tuning_rows(status: dict[str, Any], expected: tuple[str, ...]) -> None:
    row = one(ClusterObjects(jobs=[job("tune-abc", "tune", **status)], **TUNING_READY))  # type: ignore[arg-type]
    assert (row.mode, *columns(row)) == ("tuning", *expected)


@pytest.mark.parametrize("order", ["newest-last", "newest-first"])
def test_newest_job_wins(order: str) -> None:
    old = job("tune-old0000000", "tune", created=OLD, succeeded=1)
    new = job("tune-new0000000", "tune", active=1)
    jobs = [old, new] if order == "newest-last" else [new, old]
    pods = [
        pod(
            "tune-old-x", "tune", phase="Failed", job_name="tune-old0000000", reason="Evicted", message="disk"
        ),
        pod(
            "tune-new-y",
            "tune",
            job_name="tune-new0000000",
            conditions=RUNNING_READY,
            containers=[running("t")],
        ),
    ]
    row = one(ClusterObjects(jobs=jobs, pods=pods, **TUNING_READY))  # type: ignore[arg-type]
    assert row.workload["name"] == "tune-new0000000"
    assert columns(row)[2:] == ("True", "False", "Running")
    assert row.age == "30m"
    assert reason_names(row) == []  # the old Job's evicted pod is not this workspace's problem any more


def test_finished_job_hides_node_noise() -> None:
    # Karpenter consolidates the node away after the Job ends; that is not a reason to show.
    row = one(ClusterObjects(jobs=[job("tune-abc", "tune", succeeded=1)], nodepools=[nodepool("ml-tune")]))
    assert columns(row) == ("False", "", "True", "True", "Succeeded")
    assert row.reasons == ()


# ---------------------------------------------------------------------------------------------
# Grouping, hygiene, rendering


def test_rows_grouped_per_namespace_and_sorted() -> None:
    objects = ClusterObjects(
        statefulsets=[sts("zeta", ready=0, ns="b"), sts("phi", ready=0, ns="b"), sts("phi", ready=0, ns="a")],
        jobs=[job("alpha-1", "alpha", ns="b")],
    )
    rows = build_rows(objects, NOW)
    assert [(r.namespace, r.name, r.mode) for r in rows] == [
        ("a", "phi", "inference"),
        ("b", "alpha", "tuning"),
        ("b", "phi", "inference"),
        ("b", "zeta", "inference"),
    ]


def test_no_objects_no_rows() -> None:
    assert build_rows(ClusterObjects(), NOW) == []


def test_cluster_text_is_sanitised() -> None:
    nasty = "0/1 nodes\x1b[2J\x1b]0;pwned\x07 are\n\tavailable " + "x" * 2000
    objects = ClusterObjects(
        statefulsets=[sts("phi", ready=0, provisioner="byo")],
        pods=[
            pod("phi-0", "phi", node=None, conditions=[cond("PodScheduled", "False", "Unschedulable", nasty)])
        ],
    )
    message = one(objects).reasons[0].message
    assert "\x1b" not in message and "\x07" not in message and "\n" not in message
    assert message.startswith("0/1 nodes[2J]0;pwned are available xxx")
    assert len(message) == 600 and message.endswith("…")


def test_render_table_columns_and_reasons() -> None:
    row = one(INFERENCE_CASES[1][1])
    text = render_table([row])
    lines = text.splitlines()
    assert lines[0].split() == [
        "NAME",
        "INSTANCE",
        "RESOURCEREADY",
        "INFERENCEREADY",
        "JOBSTARTED",
        "WORKSPACESUCCEEDED",
        "STATE",
        "AGE",
    ]
    assert lines[1].split() == ["phi", "Standard_NC24ads_A100_v4", "True", "False", "False", "Pending", "30m"]
    # Columns line up under their headers (the empty JOBSTARTED cell included).
    assert lines[1].index("Pending") == lines[0].index("STATE")
    assert lines[2:4] == ["", "Waiting reasons:"]
    assert lines[4].split(maxsplit=3) == [
        "phi",
        "pod/phi-0",
        "ImagePullBackOff",
        'container phi: Back-off pulling image "ghcr.io/x/y:0.1.0"',
    ]
    assert "NAMESPACE" in render_table([row], all_namespaces=True).splitlines()[0]


def test_render_table_caps_reasons() -> None:
    reasons = tuple(Reason(f"pod/p-{i}", "Unschedulable", "no") for i in range(9))
    row = one(ClusterObjects(statefulsets=[sts("phi", ready=0)]))
    capped = StatusRow(**{**row.__dict__, "reasons": reasons})
    lines = render_table([capped]).splitlines()
    assert sum("Unschedulable" in line for line in lines) == 6
    assert lines[-1].endswith("… and 3 more (--json lists them all)")
    assert len(rows_to_json([capped])["workspaces"][0]["reasons"]) == 9


def test_colour_only_when_asked() -> None:
    row = one(INFERENCE_CASES[0][1])
    assert "\x1b[" not in render_table([row])
    coloured = render_table([row], colour=True)
    assert "\x1b[32m" in coloured  # True / Ready in green


def test_rows_to_json_nulls_columns_that_do_not_apply() -> None:
    inference = rows_to_json([one(INFERENCE_CASES[0][1])])["workspaces"][0]
    assert inference["jobStarted"] is None and inference["inferenceReady"] == "True"
    tuning = rows_to_json([one(ClusterObjects(jobs=[job("t-1", "t", failed=1)]))])["workspaces"][0]
    assert tuning["inferenceReady"] is None and tuning["jobStarted"] == "False"
    assert json.loads(json.dumps(tuning)) == tuning  # plain JSON types only
