"""The vLLM inference workload, flag for flag with Kaito (KAITO.md §5.3-5.5).

One node: a StatefulSet, as Kaito. More nodes: a LeaderWorkerSet (``leaderworkerset.x-k8s.io/v1``)
of ``size = nodes``; the leader starts the Ray head and vLLM with pipeline parallelism across the
nodes, the workers join the head at ``$(LWS_LEADER_ADDRESS)``, and the whole group is recreated
when one pod restarts (a Ray cluster does not survive losing a host). Kaito emits its flags from
a Go map, in random order; here the order is fixed (:func:`serve_args`).

The image contract (gpu-runtime ``kaito_runtime.vllm``): ``kaito-vllm <serve flags>``,
``kaito-vllm ray-leader --ray-cluster-size=N --ray-port=6379 -- <serve flags>``,
``kaito-vllm ray-worker --ray-address=HOST --ray-port=6379``; UID 65532; the Hugging Face
token is read from the file named by ``HF_TOKEN_PATH`` (a mounted Secret, never an env value).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kaito_gen.catalog.sizing import startup_budget_seconds, weights_volume_gib
from kaito_gen.catalog.vllmparams import vllm_params
from kaito_gen.compiler.emit.common import (
    ADAPTER_DIR,
    CONFIG_DIR,
    SERVER_PORT,
    SERVICE_PORT,
    WEIGHTS_DIR,
    Manifest,
    base_env,
    container,
    manifest,
    metadata,
    node_affinity,
    pod_template_hash,
    serving_storage,
    tolerations,
)
from kaito_gen.compiler.emit.inference import _adapter_parts, _pdb, _pull_secrets, _services
from kaito_gen.compiler.emit.resources import server_resources
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.presets import GpuSku, ModelPreset
from kaito_gen.models.target import Target

VLLM_UID = 65532
RAY_PORT = 6379
PROBE_PERIOD = 10
HF_TOKEN_DIR = "/var/run/secrets/kaito-gen/hf-token"
LWS_API = "leaderworkerset.x-k8s.io/v1"
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
# Kaito: 0.84, except 0.82 on NVIDIA A10 (24 GiB; less headroom for the CUDA context).
GPU_MEMORY_UTILIZATION: dict[str, str] = {"NVIDIA A10": "0.82"}
DEFAULT_GPU_MEMORY_UTILIZATION = "0.84"
KV_EVENTS_CONFIG = '{"enable_kv_cache_events":true}'
PERFORMANCE_MODE = "kaito.sh/performance-mode"

POD_SECURITY_CONTEXT: Manifest = {
    "runAsNonRoot": True,
    "runAsUser": VLLM_UID,
    "runAsGroup": VLLM_UID,
    "fsGroup": VLLM_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def gpu_memory_utilization(sku: GpuSku | None) -> str:
    if sku is None:
        return DEFAULT_GPU_MEMORY_UTILIZATION
    return GPU_MEMORY_UTILIZATION.get(sku.gpu_model, DEFAULT_GPU_MEMORY_UTILIZATION)


def parallelism(model: ModelPreset, gpus_per_node: int, per_gpu_gib: Decimal, nodes: int) -> list[str]:
    """Kaito's rules (§5.3): PP across nodes with TP inside each; on one node DP when the
    weights take under half of one GPU and there are several GPUs, TP otherwise."""
    if nodes > 1:
        return [
            f"--tensor-parallel-size={gpus_per_node}",
            f"--pipeline-parallel-size={nodes}",
            "--distributed-executor-backend=ray",
        ]
    if gpus_per_node > 1 and model.weights_gib < per_gpu_gib / 2:
        return [f"--data-parallel-size={gpus_per_node}", "--tensor-parallel-size=1"]
    return [f"--tensor-parallel-size={gpus_per_node}"]


def serve_args(plan: WorkspacePlan, served_name: str | None = None) -> list[str]:
    """The serve flags after ``kaito-vllm``, in a fixed order."""
    rw = plan.rw
    model = rw.model
    assert model is not None
    params = vllm_params(model)
    args = [f"--model={model.hf_repo.lower()}"]
    revision = getattr(model, "revision", None)
    if isinstance(revision, str) and len(revision) == 40:
        args.append(f"--revision={revision}")
    args += [
        f"--served-model-name={served_name or model.name}",
        "--host=0.0.0.0",
        f"--port={SERVER_PORT}",
        f"--load_format={params.load_format}",
        f"--config_format={params.config_format}",
        f"--tokenizer_mode={params.tokenizer_mode}",
        "--trust-remote-code",
        f"--dtype={_dtype(params.dtype, rw.sku)}",
    ]
    if params.tool_call_parser:
        args += [f"--tool-call-parser={params.tool_call_parser}", "--enable-auto-tool-choice"]
    if params.chat_template:
        args.append(f"--chat-template={params.chat_template}")
    if params.reasoning_parser:
        args.append(f"--reasoning-parser={params.reasoning_parser}")
    args += [f"--{flag}={value}" if value else f"--{flag}" for flag, value in params.extra]
    args += [
        f"--max-model-len={rw.max_model_len or 'auto'}",
        f"--gpu-memory-utilization={gpu_memory_utilization(rw.sku)}",
        f"--kv-events-config={KV_EVENTS_CONFIG}",
        "--compilation-config.pass_config.fuse_allreduce_rms=False",
        f"--download-dir={WEIGHTS_DIR}",
    ]
    per_gpu = rw.sku.gpu_memory_gib if rw.sku else Decimal(0)
    par = parallelism(model, rw.gpus_per_node, per_gpu, rw.node_count)
    args += par
    mode = rw.workspace.annotations.get(PERFORMANCE_MODE)
    if mode:
        args.append(f"--performance-mode={mode}")
    mig = rw.partition is not None and rw.partition.mode == "mig"
    if params.no_lmcache or mig or rw.node_count > 1 or par[0].startswith("--data-parallel"):
        args.append("--kaito-kv-cache-cpu-memory-utilization=0")
    if rw.adapters:
        args += ["--enable-lora", f"--kaito-adapters-dir={ADAPTER_DIR}"]
    if rw.config_map is not None:
        args.append(f"--kaito-config-file={CONFIG_DIR}/inference_config.yaml")
    return args


def _dtype(dtype: str, sku: GpuSku | None) -> str:
    if dtype == "bfloat16" and sku is not None and not sku.supports_bf16:
        return "float16"  # pre-Ampere GPUs have no bf16
    return dtype


def _env(plan: WorkspacePlan) -> list[Manifest]:
    assert plan.rw.model is not None
    deep_gemm = "1" if vllm_params(plan.rw.model).deep_gemm else "0"
    env = [
        *base_env(),
        {"name": "VLLM_USE_FLASHINFER_SAMPLER", "value": "0"},
        {"name": "VLLM_USE_DEEP_GEMM", "value": deep_gemm},
    ]
    if _token_secret(plan):
        env.append({"name": "HF_TOKEN_PATH", "value": f"{HF_TOKEN_DIR}/token"})
    return env


def _token_secret(plan: WorkspacePlan) -> str | None:
    ws = plan.rw.workspace
    spec = ws.inference.preset if ws.inference else None
    opts = spec.preset_options if spec else None
    return opts.model_access_secret if opts else None


def _probes(plan: WorkspacePlan) -> Manifest:
    assert plan.rw.model is not None
    budget = startup_budget_seconds(plan.rw.model)
    http = {"path": "/health", "port": "http"}
    return {
        # Kaito: startup budget clamp(15 min + GiB x 18 s, 30 min, 180 min) polled every 10 s.
        "startupProbe": {
            "httpGet": http,
            "periodSeconds": PROBE_PERIOD,
            "failureThreshold": -(-budget // 10),
        },
        "livenessProbe": {"httpGet": http, "periodSeconds": PROBE_PERIOD, "failureThreshold": 3},
        "readinessProbe": {"httpGet": http, "initialDelaySeconds": 30, "periodSeconds": PROBE_PERIOD},
    }


def _volumes(plan: WorkspacePlan, target: Target) -> tuple[list[Manifest], list[Manifest], list[Manifest]]:
    """(volumes, mounts, volume claim templates) of the serving container."""
    rw = plan.rw
    assert rw.model is not None
    volumes, mounts, claims = serving_storage(plan, target)
    if rw.config_map is not None:
        volumes.append({"name": "config-volume", "configMap": {"name": rw.config_map.name}})
        mounts.append({"name": "config-volume", "mountPath": CONFIG_DIR, "readOnly": True})
    secret = _token_secret(plan)
    if secret:
        optional = not rw.model.download_auth_required
        volumes.append(
            {
                "name": "hf-token",
                "secret": {
                    "secretName": secret,
                    "items": [{"key": "HF_TOKEN", "path": "token"}],
                    "optional": optional,
                    "defaultMode": 0o440,
                },
            }
        )
        mounts.append({"name": "hf-token", "mountPath": HF_TOKEN_DIR, "readOnly": True})
    _, adapter_volumes, adapter_mounts, _ = _adapter_parts(plan)
    return volumes + adapter_volumes, mounts + adapter_mounts, claims


def _pod(
    plan: WorkspacePlan, target: Target, image: str, args: list[str], role: str
) -> tuple[Manifest, list[Manifest]]:
    rw = plan.rw
    volumes, mounts, claims = _volumes(plan, target)
    ports = [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}]
    if rw.node_count > 1:
        ports.append({"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"})
    extra: dict[str, Any] = {}
    if role != "worker":
        extra.update(_probes(plan))
    storage = (
        None if claims else {"ephemeral-storage": f"{weights_volume_gib(rw.model)}Gi"} if rw.model else None
    )
    server = container(
        rw.name,
        image,
        args,
        env=_env(plan),
        ports=ports,
        resources=server_resources(plan, storage),
        volumeMounts=mounts,
        **extra,
    )
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": dict(POD_SECURITY_CONTEXT),
        "affinity": node_affinity(plan),
        "tolerations": tolerations(plan, target.cloud),
        "terminationGracePeriodSeconds": 60,
    }
    pull = _pull_secrets(plan)
    if pull:
        spec["imagePullSecrets"] = [{"name": s} for s in pull]
    inits, _, _, _ = _adapter_parts(plan)
    if inits and role != "worker":
        spec["initContainers"] = inits
    spec["containers"] = [server]
    spec["volumes"] = volumes
    return spec, claims


def vllm_image(plan: WorkspacePlan, target: Target) -> str:
    ws = plan.rw.workspace
    spec = ws.inference.preset if ws.inference else None
    if spec is not None and spec.preset_options is not None and spec.preset_options.image:
        return spec.preset_options.image
    return target.vllm_runtime_image


def _template(plan: WorkspacePlan, spec: Manifest, role: str | None = None) -> Manifest:
    labels = dict(sorted(plan.labels.items()))
    annotations = {"kaito-gen.io/pod-template-hash": pod_template_hash(spec, labels)}
    if role:
        annotations["kaito-gen.io/role"] = role
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def emit_vllm_workload(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    """The bundle emitter: vLLM inference Workspaces only."""
    if plan.rw.mode != "inference" or plan.rw.engine != "vllm" or plan.rw.model is None:
        return []
    # Kaito: an InferenceSet's replicas serve under the set's name (KAITO.md §11.1).
    served = plan.rw.name if plan.rw.input.inference_set is not None else None
    return [*emit_vllm(plan, target, served), *_pdb(plan)]


def emit_vllm(plan: WorkspacePlan, target: Target, served_name: str | None = None) -> list[Manifest]:
    rw = plan.rw
    image = vllm_image(plan, target)
    serve = serve_args(plan, served_name)
    name = rw.name
    meta = metadata(plan, name, annotations={**plan.annotations, "kaito-gen.io/engine": "vllm"})
    if rw.node_count <= 1:
        pod, claims = _pod(plan, target, image, ["kaito-vllm", *serve], "server")
        sts: Manifest = {
            "replicas": 1,
            "podManagementPolicy": "Parallel",
            "serviceName": f"{name}-headless",
            "selector": {"matchLabels": dict(plan.selector)},
            "template": _template(plan, pod),
        }
        if claims:
            sts["volumeClaimTemplates"] = claims
            sts["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
        return [manifest("apps/v1", "StatefulSet", meta, spec=sts), *_services(plan)]
    nodes = rw.node_count
    leader_args = [
        "kaito-vllm",
        "ray-leader",
        f"--ray-cluster-size={nodes}",
        f"--ray-port={RAY_PORT}",
        "--",
        *serve,
    ]
    worker_args = [
        "kaito-vllm",
        "ray-worker",
        "--ray-address=$(LWS_LEADER_ADDRESS)",
        f"--ray-port={RAY_PORT}",
    ]
    leader, claims = _pod(plan, target, image, leader_args, "leader")
    worker, _ = _pod(plan, target, image, worker_args, "worker")
    group: Manifest = {
        "size": nodes,
        # One host lost = the Ray cluster and the pipeline are gone: restart the group.
        "restartPolicy": "RecreateGroupOnPodRestart",
        "leaderTemplate": _template(plan, leader, "leader"),
        "workerTemplate": _template(plan, worker, "worker"),
    }
    if claims:
        group["volumeClaimTemplates"] = claims
    lws: Manifest = {
        "replicas": 1,
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0},
        },
        "leaderWorkerTemplate": group,
    }
    return [manifest(LWS_API, "LeaderWorkerSet", meta, spec=lws), _leader_service(plan)]


def _leader_service(plan: WorkspacePlan) -> Manifest:
    """Requests go to the leaders only: the workers hold pipeline stages, not an API server."""
    rw = plan.rw
    lb = rw.workspace.annotations.get("kaito.sh/enablelb", "").lower() == "true"
    spec: Manifest = {
        "type": "LoadBalancer" if lb else "ClusterIP",
        "selector": {**plan.selector, LWS_WORKER_INDEX: "0"},
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    return manifest("v1", "Service", metadata(plan, rw.name), spec=spec)
