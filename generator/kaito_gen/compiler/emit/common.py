"""Pieces every emitter shares: object metadata, scheduling and pod hardening."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaito_gen.catalog.sizing import weights_volume_gib
from kaito_gen.compiler.plan import WorkspacePlan, short_hash
from kaito_gen.models.target import Target

Manifest = dict[str, Any]

# Container paths the runtime images depend on (KAITO.md §10 item 11): keep them 1:1.
WEIGHTS_DIR = "/workspace/weights"
ADAPTER_DIR = "/mnt/adapter"
CONFIG_DIR = "/mnt/config"
DATA_DIR = "/mnt/data"
SERVER_PORT = 5000
SERVICE_PORT = 80
DOCKER_CONFIG_DIR = "/var/run/kaito-gen/docker"
RUNTIME_UID = 1000

# Pod Security "restricted": non-root, no privilege escalation, no capabilities,
# RuntimeDefault seccomp. The runtime writes only to mounted volumes, so the root
# filesystem is read-only as well.
POD_SECURITY_CONTEXT: Manifest = {
    "runAsNonRoot": True,
    "runAsUser": RUNTIME_UID,
    "runAsGroup": RUNTIME_UID,
    "fsGroup": RUNTIME_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: Manifest = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


def metadata(
    plan: WorkspacePlan,
    name: str,
    *,
    namespaced: bool = True,
    extra_labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    meta: Manifest = {"name": name}
    if namespaced:
        meta["namespace"] = plan.rw.namespace
    labels = dict(plan.labels)
    labels.update(extra_labels or {})
    meta["labels"] = dict(sorted(labels.items()))
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return meta


def manifest(api_version: str, kind: str, meta: Manifest, **body: Any) -> Manifest:
    out: Manifest = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    out.update(body)
    return out


def user_match_labels(plan: WorkspacePlan) -> dict[str, str]:
    from kaito_gen.compiler.rules import RESERVED_SELECTOR_KEYS

    res = plan.rw.workspace.resource
    labels = (res.label_selector.match_labels or {}) if res else {}
    return {k: v for k, v in sorted(labels.items()) if k not in RESERVED_SELECTOR_KEYS}


def ownership_labels(plan: WorkspacePlan) -> dict[str, str]:
    """Labels the NodePool stamps on its nodes, so pods land only on their own pool."""
    if plan.nodepool is None:
        return {}
    return {
        "karpenter.kaito.sh/workspace-name": plan.rw.name,
        "karpenter.kaito.sh/workspace-namespace": plan.rw.namespace,
    }


def node_affinity(plan: WorkspacePlan) -> Manifest:
    wanted = {**user_match_labels(plan), **ownership_labels(plan)}
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(wanted.items())]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def tolerations(plan: WorkspacePlan, cloud: str) -> list[Manifest]:
    gpu = plan.rw.sku.gpu_resource if plan.rw.sku else "nvidia.com/gpu"
    out: list[Manifest] = [
        {"key": gpu, "operator": "Exists", "effect": "NoSchedule"},
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
    ]
    mig = plan.rw.partition.toleration_key if plan.rw.partition else None
    if mig:  # Kaito also tolerates the MIG device's own taint key (KAITO.md §5.4)
        out.append({"key": mig, "operator": "Exists", "effect": "NoSchedule"})
    if cloud == "azure":
        out.append(
            {
                "key": "kubernetes.azure.com/scalesetpriority",
                "operator": "Equal",
                "value": "spot",
                "effect": "NoSchedule",
            }
        )
    return out


def gpu_resources(plan: WorkspacePlan, extra: Mapping[str, str] | None = None) -> Manifest:
    """Every GPU of the node (or the partition's MIG slice / GPU count), requests == limits
    (extended resources must match)."""
    resource = plan.rw.gpu_resource
    amount = str(plan.rw.gpus_per_node)
    requests = {resource: amount, **(extra or {})}
    return {"limits": {resource: amount}, "requests": dict(sorted(requests.items()))}


def dshm_volume() -> Manifest:
    # PyTorch uses /dev/shm for inter-process tensors; the default 64 MiB is far too small.
    return {"name": "dshm", "emptyDir": {"medium": "Memory"}}


def tmp_volume() -> Manifest:
    return {"name": "tmp", "emptyDir": {}}


def serving_storage(
    plan: WorkspacePlan, target: Target
) -> tuple[list[Manifest], list[Manifest], list[Manifest]]:
    """(volumes, mounts, volume claim templates) every inference server has: /dev/shm, /tmp and the
    weights volume, a PVC template on NVMe SKUs when a storage class is set, else an emptyDir sized
    for the weights. No claims means the weights live in ephemeral storage."""
    model = plan.rw.model
    assert model is not None
    volumes: list[Manifest] = [dshm_volume(), tmp_volume()]
    mounts: list[Manifest] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "model-weights-volume", "mountPath": WEIGHTS_DIR},
    ]
    claims: list[Manifest] = []
    sku = plan.rw.sku
    if target.weights_storage_class and sku is not None and sku.nvme:
        claims.append(
            {
                "metadata": {"name": "model-weights-volume"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": target.weights_storage_class,
                    "resources": {"requests": {"storage": f"{model.disk_gib}Gi"}},
                },
            }
        )
    else:
        size = weights_volume_gib(model)
        volumes.append({"name": "model-weights-volume", "emptyDir": {"sizeLimit": f"{size}Gi"}})
    return volumes, mounts, claims


def docker_config_volume(name: str, secrets: tuple[str, ...]) -> Manifest:
    """Project each dockerconfigjson Secret as <secret>.json, the form kaito-adapter reads."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {"secret": {"name": s, "items": [{"key": ".dockerconfigjson", "path": f"{s}.json"}]}}
                for s in secrets
            ]
        },
    }


def docker_config_args(mount: str, secrets: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    for s in secrets:
        args += ["--docker-config", f"{mount}/{s}.json"]
    return args


def base_env() -> list[Manifest]:
    return [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": f"{WEIGHTS_DIR}/.hf"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def hf_token_env(plan: WorkspacePlan) -> list[Manifest]:
    ws = plan.rw.workspace
    spec = ws.inference.preset if ws.inference else ws.tuning.preset if ws.tuning else None
    secret = spec.preset_options.model_access_secret if spec and spec.preset_options else None
    if not secret:
        return []
    # Never inlined: the token stays in its Secret. Optional only for public models.
    optional = not (plan.rw.model and plan.rw.model.download_auth_required)
    return [
        {
            "name": "HF_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "HF_TOKEN", "optional": optional}},
        }
    ]


def pod_template_hash(pod_spec: Manifest, labels: Mapping[str, str]) -> str:
    return short_hash({"spec": pod_spec, "labels": dict(labels)}, 16)


def container(name: str, image: str, args: list[str], **extra: Any) -> Manifest:
    out: Manifest = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [args[0]],
        "args": args[1:],
    }
    out.update(extra)
    out["securityContext"] = dict(CONTAINER_SECURITY_CONTEXT)
    return out
