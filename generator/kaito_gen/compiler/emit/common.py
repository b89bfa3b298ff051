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
HF_TOKEN_DIR = "/var/run/secrets/kaito-gen/hf-token"
# Both runtime images run as 65532 (gpu-runtime/Dockerfile, Dockerfile.vllm): a high UID (>= 10000)
# that maps to no user on the host.
RUNTIME_UID = 65532

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


def _hf_token_secret(plan: WorkspacePlan) -> str | None:
    ws = plan.rw.workspace
    spec = ws.inference.preset if ws.inference else ws.tuning.preset if ws.tuning else None
    return spec.preset_options.model_access_secret if spec and spec.preset_options else None


def hf_token_env(plan: WorkspacePlan) -> list[Manifest]:
    """HF_TOKEN_PATH names the mounted token file; huggingface_hub (used by kaito-serve, kaito-tune and
    vLLM alike) reads the token from it. The token is never an env value (checkov CKV_K8S_35)."""
    if not _hf_token_secret(plan):
        return []
    return [{"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/token"}]


def hf_token_storage(plan: WorkspacePlan) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, mounts) that put the Secret's HF_TOKEN key at HF_TOKEN_DIR/token, read-only."""
    secret = _hf_token_secret(plan)
    if not secret:
        return [], []
    # Optional only for public models: a gated one must not start without its token.
    optional = not (plan.rw.model and plan.rw.model.download_auth_required)
    volume: Manifest = {
        "name": "hf-token",
        "secret": {
            "secretName": secret,
            "items": [{"key": "HF_TOKEN", "path": "token"}],
            "optional": optional,
            "defaultMode": 0o440,
        },
    }
    return [volume], [{"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True}]


def pod_template_hash(pod_spec: Manifest, labels: Mapping[str, str]) -> str:
    return short_hash({"spec": pod_spec, "labels": dict(labels)}, 16)


def pull_policy(image: str) -> str:
    """IfNotPresent for an image pinned by digest (the bytes cannot change), Always for a tag (a moved
    tag is picked up and the pull secret is checked on every start; checkov CKV_K8S_15)."""
    return "IfNotPresent" if "@sha256:" in image else "Always"


def container(name: str, image: str, args: list[str], **extra: Any) -> Manifest:
    out: Manifest = {
        "name": name,
        "image": image,
        "imagePullPolicy": pull_policy(image),
        "command": [args[0]],
        "args": args[1:],
    }
    out.update(extra)
    out["securityContext"] = dict(CONTAINER_SECURITY_CONTEXT)
    return out
