"""The only code that talks to the API server (official `kubernetes` client, GET only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kaito_gen.commands.status.model import (
    ANN_NODEPOOL,
    ANN_PROVISIONER,
    KARPENTER,
    MANAGED_BY_SELECTOR,
    MAX_FOLLOW_UPS,
    MAX_RESPONSE_BYTES,
    NODEPOOL_LABEL,
    REQUEST_TIMEOUT,
    WORKSPACE_LABEL,
    ClusterObjects,
    Obj,
    StatusError,
    _clean,
    _list,
    _map,
    _namespace,
    _str,
    _workspace_of,
)


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
