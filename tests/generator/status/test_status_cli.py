"""`kaito-gen status` end to end: the official kubernetes client against recorded API responses served
over real HTTP on 127.0.0.1 (status_apiserver.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from kaito_gen.commands.status import make_status_command
from status_apiserver import NOW, RECORDED, RecordedApiServer, RunStatus, write_kubeconfig

ML_TABLE = """\
NAME         INSTANCE                   RESOURCEREADY   INFERENCEREADY   JOBSTARTED   WORKSPACESUCCEEDED   \
STATE     AGE
mistral-7b   Standard_NV36ads_A10_v5    False           False                         False                \
Pending   5m
phi-3-mini   Standard_NC24ads_A100_v4   True            True                          True                 \
Ready     3h

Waiting reasons:
  mistral-7b   nodeclaim/ml-mistral-7b-q7t4z   NodeClaimNotLaunched   LaunchFailed: creating instance, \
insufficient capacity, all requested instance types were unavailable during launch
  mistral-7b   pod/mistral-7b-0                Unschedulable          0/3 nodes are available: 3 node(s) \
didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful \
for scheduling.
"""


def test_ready_and_pending_inference_table(run_status: RunStatus, apiserver: RecordedApiServer) -> None:
    result = run_status("--namespace", "ml")
    assert result.exit_code == 0, result.output
    assert result.stdout == ML_TABLE
    assert result.stderr == ""
    paths = list(apiserver.paths())
    assert paths[:3] == [
        "/apis/apps/v1/namespaces/ml/statefulsets?labelSelector=app.kubernetes.io/managed-by%3Dkaito-gen",
        "/apis/batch/v1/namespaces/ml/jobs?labelSelector=app.kubernetes.io/managed-by%3Dkaito-gen",
        "/api/v1/namespaces/ml/pods?labelSelector=kaito.sh/workspace",
    ]
    assert "/apis/karpenter.sh/v1/nodepools/ml-phi-3-mini" in paths
    assert "/apis/karpenter.sh/v1/nodeclaims?labelSelector=karpenter.sh/nodepool%3Dml-mistral-7b" in paths


def test_namespace_defaults_to_the_context(run_status: RunStatus) -> None:
    assert run_status().stdout == ML_TABLE  # the current context's namespace is ml
    tuning = run_status("--context", "tuning")
    assert tuning.exit_code == 0, tuning.output
    assert tuning.stdout.splitlines()[1].split() == [
        "phi-3-tune",
        "Standard_NC24ads_A100_v4",
        "True",
        "False",
        "False",
        "Failed",
        "120m",
    ]


def test_failed_tuning_job_shows_oomkilled(run_status: RunStatus) -> None:
    result = run_status("-n", "tuning")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = lines[0]
    row = lines[1]
    assert row[: header.index("INSTANCE")].strip() == "phi-3-tune"
    assert row[header.index("INFERENCEREADY") : header.index("JOBSTARTED")].strip() == ""
    assert row[header.index("JOBSTARTED") : header.index("WORKSPACESUCCEEDED")].strip() == "False"
    assert row[header.index("STATE") : header.index("AGE")].strip() == "Failed"
    assert lines[3:] == [
        "Waiting reasons:",
        "  phi-3-tune   job/phi-3-tune-9f8e7d6c5b         JobFailed   "
        "BackoffLimitExceeded: Job has reached the specified backoff limit",
        "  phi-3-tune   pod/phi-3-tune-9f8e7d6c5b-7x2kq   OOMKilled   container phi-3-tune was killed for "
        "exceeding its memory limit (exit code 137, at 2025-06-01T10:31:07Z, restarts: 0)",
    ]
    assert "1a2b3c4d5e" not in result.stdout  # the older Job of the previous tuning spec


def test_all_namespaces(run_status: RunStatus) -> None:
    result = run_status("--all-namespaces")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in lines[1:4]] == [
        ["ml", "mistral-7b"],
        ["ml", "phi-3-mini"],
        ["tuning", "phi-3-tune"],
    ]
    assert lines[4:6] == ["", "Waiting reasons:"]
    assert [line.split()[0] for line in lines[6:]] == ["ml/mistral-7b"] * 2 + ["tuning/phi-3-tune"] * 2


def test_workspace_filter_is_sent_as_a_selector(run_status: RunStatus, apiserver: RecordedApiServer) -> None:
    result = run_status("-n", "ml", "--workspace", "mistral-7b")
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.stdout.splitlines()[:2]] == ["NAME", "mistral-7b"]
    assert "phi-3-mini" not in result.stdout
    paths = list(apiserver.paths())
    assert paths[0].endswith(
        "labelSelector=app.kubernetes.io/managed-by%3Dkaito-gen%2Ckaito.sh/workspace%3Dmistral-7b"
    )
    assert paths[2] == "/api/v1/namespaces/ml/pods?labelSelector=kaito.sh/workspace%3Dmistral-7b"
    assert not any("ml-phi-3-mini" in path for path in paths)  # no look-ups for other workspaces


def test_json_output(run_status: RunStatus) -> None:
    result = run_status("-A", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == ["workspaces"]
    by_name = {ws["name"]: ws for ws in doc["workspaces"]}
    assert list(by_name) == ["mistral-7b", "phi-3-mini", "phi-3-tune"]
    assert by_name["phi-3-mini"] == {
        "namespace": "ml",
        "name": "phi-3-mini",
        "mode": "inference",
        "instance": "Standard_NC24ads_A100_v4",
        "resourceReady": "True",
        "inferenceReady": "True",
        "jobStarted": None,
        "workspaceSucceeded": "True",
        "state": "Ready",
        "age": "3h",
        "creationTimestamp": "2025-06-01T09:00:00Z",
        "provisioner": "karpenter",
        "nodePool": "ml-phi-3-mini",
        "targetNodeCount": 1,
        "readyNodeCount": 1,
        "workload": {"kind": "StatefulSet", "name": "phi-3-mini", "replicas": 1, "readyReplicas": 1},
        "reasons": [],
    }
    pending = by_name["mistral-7b"]
    assert (pending["resourceReady"], pending["state"], pending["readyNodeCount"]) == ("False", "Pending", 0)
    assert [r["reason"] for r in pending["reasons"]] == ["NodeClaimNotLaunched", "Unschedulable"]
    assert pending["reasons"][1]["object"] == "pod/mistral-7b-0"
    assert pending["reasons"][1]["message"].startswith("0/3 nodes are available")
    tuning = by_name["phi-3-tune"]
    assert (tuning["mode"], tuning["inferenceReady"], tuning["jobStarted"], tuning["state"]) == (
        "tuning",
        None,
        "False",
        "Failed",
    )
    assert tuning["workload"]["failed"] == 1
    assert [r["reason"] for r in tuning["reasons"]] == ["JobFailed", "OOMKilled"]


def test_empty_namespace_is_friendly(run_status: RunStatus) -> None:
    result = run_status("-n", "default")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.startswith("No kaito-gen workspaces found in namespace default")
    as_json = run_status("-n", "default", "--json")
    assert (as_json.exit_code, json.loads(as_json.stdout)) == (0, {"workspaces": []})


def test_status_is_read_only(run_status: RunStatus, apiserver: RecordedApiServer) -> None:
    for args in (["-A"], ["-n", "ml"], ["-n", "tuning", "--json"]):
        assert run_status(*args).exit_code == 0
    methods = {method for method, _ in apiserver.requests}
    assert methods == {"GET"}


def test_forbidden_namespace_is_one_line_exit_2(run_status: RunStatus) -> None:
    result = run_status("-n", "restricted")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "kaito-gen: forbidden (403) to read statefulsets in namespace restricted: "
        'statefulsets.apps is forbidden: User "dev@example.com" cannot list resource "statefulsets" '
        'in API group "apps" in the namespace "restricted"\n'
    )


def test_wrong_token_is_unauthorized(
    apiserver: RecordedApiServer, tmp_path: Path, run_status: RunStatus
) -> None:
    config = write_kubeconfig(tmp_path / "stale", apiserver.url, token="expired")
    result = run_status("-n", "ml", config=config)
    assert result.exit_code == 2
    assert "rejected the credentials (401 Unauthorized)" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_unreadable_nodepools_degrade_to_unknown(tmp_path: Path) -> None:
    with RecordedApiServer(forbidden_prefixes=("/apis/karpenter.sh/",)) as server:
        config = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        result = CliRunner().invoke(
            make_status_command(lambda: NOW), ["--kubeconfig", str(config), "-n", "ml"]
        )
        nodepool_requests = [path for path in server.paths() if "karpenter.sh" in path]
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[1:3]]
    assert rows == [
        ["mistral-7b", "Standard_NV36ads_A10_v5", "Unknown", "False", "False", "Pending", "5m"],
        ["phi-3-mini", "Standard_NC24ads_A100_v4", "Unknown", "True", "True", "Ready", "3h"],
    ]
    reasons = [line.split(maxsplit=3) for line in result.stdout.splitlines()[5:]]
    assert [reason[:3] for reason in reasons] == [
        ["mistral-7b", "nodepool/ml-mistral-7b", "CannotRead"],
        ["mistral-7b", "pod/mistral-7b-0", "Unschedulable"],
        ["phi-3-mini", "nodepool/ml-phi-3-mini", "CannotRead"],
    ]
    assert reasons[2][3] == (
        "forbidden (403) to read nodepools; the API server said: "
        'nodepools.karpenter.sh "ml-mistral-7b" is forbidden: User "dev@example.com" cannot get resource '
        '"nodepools" in API group "karpenter.sh" at the cluster scope'
    )
    assert len(nodepool_requests) == 1  # the first 403 stops further cluster-scoped look-ups


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        ("a: [b\n", [], "kaito-gen: cannot use the kubeconfig ("),
        ("", [], "kaito-gen: cannot use the kubeconfig ("),
        (None, ["--context", "prod"], "kaito-gen: context 'prod' is not in the kubeconfig"),
    ],
    ids=["broken-yaml", "empty", "unknown-context"],
)
def test_bad_kubeconfig_exit_2(
    content: str | None,
    args: list[str],
    expected: str,
    kubeconfig: Path,
    tmp_path: Path,
    run_status: RunStatus,
) -> None:
    config = kubeconfig
    if content is not None:
        config = tmp_path / "bad-kubeconfig"
        config.write_text(content)
    result = run_status(*args, config=config)
    assert result.exit_code == 2
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["-n", "ml", "-A"],
        ["-n", "Not_A_Namespace"],
        ["--workspace", "x" * 64],
        ["--kubeconfig", "/nonexistent/kubeconfig"],
    ],
    ids=["namespace-and-all", "bad-namespace", "long-workspace", "missing-kubeconfig"],
)
def test_usage_errors_exit_2(args: list[str], run_status: RunStatus) -> None:
    result = run_status(*args, config=None)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_server_real_process(tmp_path: Path) -> None:
    """A real interpreter, real stderr: one error line, exit 2, no traceback."""
    url = f"http://127.0.0.1:{_closed_port()}"
    config = write_kubeconfig(tmp_path / "kubeconfig", url)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "KUBECONFIG"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from kaito_gen.commands.status import status; status()",
            "--kubeconfig",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"kaito-gen: cannot reach the Kubernetes API server at {url}: ")
    assert "Connection refused" in lines[0]


# ---------------------------------------------------------------------------------------------
# The recordings themselves must be objects a real cluster could have returned.

LIST_KINDS = {
    "StatefulSetList": ("apps/v1", "StatefulSet"),
    "JobList": ("batch/v1", "Job"),
    "PodList": ("v1", "Pod"),
}


def _strict(schema: Any) -> Any:
    """CRD schemas prune unknown fields; for a recording an unknown field is a typo, so refuse it."""
    if isinstance(schema, dict):
        open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
        for value in schema.values():
            _strict(value)
    elif isinstance(schema, list):
        for value in schema:
            _strict(value)
    return schema


def _crd_schema(crd_root: Path, name: str) -> dict[str, Any]:
    crd = yaml.safe_load((crd_root / "kubernetes-sigs-karpenter" / name).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
    return schema


def test_recordings_are_valid_kubernetes_objects(crd_root: Path) -> None:
    checked = 0
    for path in sorted(RECORDED.glob("*/*.json")):
        body = json.loads(path.read_text())
        if body.get("kind") not in LIST_KINDS:
            continue
        api_version, kind = LIST_KINDS[body["kind"]]
        for item in body["items"]:
            # List items come without apiVersion/kind from the API server; the validator needs them.
            kubernetes_validate.validate(
                {"apiVersion": api_version, "kind": kind, **item}, "1.32", strict=True
            )
            checked += 1
    nodepool = jsonschema.Draft7Validator(_crd_schema(crd_root, "karpenter.sh_nodepools.yaml"))
    nodeclaim = jsonschema.Draft7Validator(_crd_schema(crd_root, "karpenter.sh_nodeclaims.yaml"))
    for path in sorted((RECORDED / "cluster").glob("nodepool-*.json")):
        assert [e.message for e in nodepool.iter_errors(json.loads(path.read_text()))] == [], path
        checked += 1
    for item in json.loads((RECORDED / "cluster" / "nodeclaims.json").read_text())["items"]:
        assert [e.message for e in nodeclaim.iter_errors(item)] == [], item["metadata"]["name"]
        checked += 1
    assert checked == 15
