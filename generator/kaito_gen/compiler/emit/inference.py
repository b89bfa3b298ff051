"""Inference: StatefulSet (or Deployment), Services and PodDisruptionBudget (KAITO.md §5)."""

from __future__ import annotations

import copy
from typing import Any

from kaito_gen.catalog.sizing import startup_budget_seconds, weights_volume_gib
from kaito_gen.compiler.emit.common import (
    ADAPTER_DIR,
    CONFIG_DIR,
    POD_SECURITY_CONTEXT,
    SERVER_PORT,
    SERVICE_PORT,
    WEIGHTS_DIR,
    Manifest,
    base_env,
    container,
    docker_config_args,
    docker_config_volume,
    hf_token_env,
    hf_token_storage,
    manifest,
    metadata,
    node_affinity,
    pod_template_hash,
    serving_storage,
    tolerations,
)
from kaito_gen.compiler.emit.resources import helper_container_resources, server_resources
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.target import Target

PROBE_PERIOD = 10


def _server_args(plan: WorkspacePlan) -> list[str]:
    rw = plan.rw
    model = rw.model
    assert model is not None
    args = [
        "kaito-serve",
        "--model", model.hf_repo,
        *(("--revision", model.revision) if model.pinned_revision else ()),
        # Kaito: an InferenceSet's replicas serve under the set's name (KAITO.md §11.1).
        "--served-model-name", rw.name if rw.input.inference_set is not None else model.name,
        "--cache-dir", WEIGHTS_DIR,
        "--host", "0.0.0.0",
        "--port", str(SERVER_PORT),
        "--dtype", rw.dtype,
    ]  # fmt: skip
    if model.runtime.trust_remote_code:
        args.append("--trust-remote-code")
    if rw.max_model_len:
        args += ["--max-model-len", str(rw.max_model_len)]
    if rw.adapters:
        args += ["--adapters-dir", ADAPTER_DIR]
    if rw.config_map is not None:
        args += ["--config", f"{CONFIG_DIR}/inference_config.yaml"]
    return args


def _probes(plan: WorkspacePlan) -> Manifest:
    assert plan.rw.model is not None
    budget = startup_budget_seconds(plan.rw.model)
    http = {"path": "/health", "port": "http"}
    return {
        # Kaito's budget: clamp(15 min + weights GiB × 18 s, 30 min, 180 min), polled every 10 s.
        "startupProbe": {
            "httpGet": http,
            "periodSeconds": PROBE_PERIOD,
            "failureThreshold": -(-budget // PROBE_PERIOD),
        },
        "livenessProbe": {
            "httpGet": http,
            "periodSeconds": PROBE_PERIOD,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "readinessProbe": {
            "httpGet": http,
            "periodSeconds": PROBE_PERIOD,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
    }


def _adapter_parts(
    plan: WorkspacePlan,
) -> tuple[list[Manifest], list[Manifest], list[Manifest], list[Manifest]]:
    """(init containers, volumes, server volume mounts, strength env) for the adapters."""
    inits: list[Manifest] = []
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    env: list[Manifest] = []
    if any(a.image for a in plan.rw.adapters):
        volumes.append({"name": "adapter-volume", "emptyDir": {}})
        mounts.append({"name": "adapter-volume", "mountPath": ADAPTER_DIR, "readOnly": True})
    for adapter in plan.rw.adapters:
        # Kaito passes each adapter's strength in an environment variable named after it.
        env.append({"name": adapter.name, "value": adapter.strength})
        if adapter.image:
            args = ["kaito-adapter", "pull", adapter.image, f"{ADAPTER_DIR}/{adapter.name}"]
            puller_mounts: list[Manifest] = [
                {"name": "adapter-volume", "mountPath": ADAPTER_DIR},
                {"name": "tmp", "mountPath": "/tmp"},
            ]
            if adapter.pull_secrets:
                volume = f"docker-config-{adapter.name}"
                mount = f"/var/run/kaito-gen/docker/{adapter.name}"
                volumes.append(docker_config_volume(volume, adapter.pull_secrets))
                puller_mounts.append({"name": volume, "mountPath": mount, "readOnly": True})
                args += docker_config_args(mount, adapter.pull_secrets)
            inits.append(
                container(
                    f"puller-{adapter.name}",
                    plan.image,
                    args,
                    env=[{"name": "HOME", "value": "/tmp"}],
                    resources=helper_container_resources(plan),
                    volumeMounts=puller_mounts,
                )
            )
        elif adapter.volume_source:
            volume = f"adapter-volume-{adapter.name}"
            volumes.append({"name": volume, **copy.deepcopy(dict(adapter.volume_source))})
            mounts.append({"name": volume, "mountPath": f"{ADAPTER_DIR}/{adapter.name}", "readOnly": True})
    return inits, volumes, mounts, env


def _pod_spec(plan: WorkspacePlan, target: Target) -> tuple[Manifest, list[Manifest]]:
    rw = plan.rw
    assert rw.model is not None
    inits, adapter_volumes, adapter_mounts, strength_env = _adapter_parts(plan)
    weights_gib = weights_volume_gib(rw.model)
    volumes, mounts, claims = serving_storage(plan, target)
    use_pvc = bool(claims)
    if rw.config_map is not None:
        volumes.append({"name": "config-volume", "configMap": {"name": rw.config_map.name}})
        mounts.append({"name": "config-volume", "mountPath": CONFIG_DIR, "readOnly": True})
    token_volumes, token_mounts = hf_token_storage(plan)
    volumes += token_volumes + adapter_volumes
    mounts += token_mounts + adapter_mounts
    # Weights land on node-local disk: ask the scheduler (and Karpenter) for room.
    resources = server_resources(plan, {"ephemeral-storage": f"{weights_gib}Gi"} if not use_pvc else None)
    server = container(
        rw.name,
        plan.image,
        _server_args(plan),
        env=[*base_env(), *hf_token_env(plan), *strength_env],
        ports=[{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        resources=resources,
        volumeMounts=mounts,
        **_probes(plan),
    )
    pull_secrets = _pull_secrets(plan)
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": dict(POD_SECURITY_CONTEXT),
        "affinity": node_affinity(plan),
        "tolerations": tolerations(plan, target.cloud),
        # kaito-serve drains in-flight requests on SIGTERM; give it time.
        "terminationGracePeriodSeconds": 60,
    }
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    if inits:
        spec["initContainers"] = inits
    spec["containers"] = [server]
    spec["volumes"] = volumes
    return spec, claims


def _pull_secrets(plan: WorkspacePlan) -> list[str]:
    ws = plan.rw.workspace
    spec = ws.inference.preset if ws.inference else None
    opts = spec.preset_options if spec else None
    return sorted(set(opts.image_pull_secrets or ())) if opts else []


def _template_pod_spec(plan: WorkspacePlan, target: Target) -> Manifest:
    """A user template: kept as written, with Kaito's scheduling added (KAITO.md §5.1)."""
    template = plan.rw.workspace.inference.template if plan.rw.workspace.inference else None
    assert template is not None
    spec: Manifest = copy.deepcopy(dict(template.get("spec") or {}))
    spec["affinity"] = node_affinity(plan)  # Kaito overwrites affinity, too
    spec["tolerations"] = [*spec.get("tolerations", []), *tolerations(plan, target.cloud)]
    return spec


def emit_inference(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    rw = plan.rw
    if rw.mode != "inference":
        return []
    if rw.engine == "vllm" and rw.model is not None:
        return []  # compiler.emit.vllm
    name = rw.name
    if rw.model is not None:
        pod_spec, claims = _pod_spec(plan, target)
    else:
        pod_spec, claims = _template_pod_spec(plan, target), []
    pod_labels = dict(sorted(plan.labels.items()))
    template_meta: dict[str, Any] = {
        "labels": pod_labels,
        "annotations": {"kaito-gen.io/pod-template-hash": pod_template_hash(pod_spec, pod_labels)},
    }
    template = {"metadata": template_meta, "spec": pod_spec}
    selector = {"matchLabels": dict(plan.selector)}
    out: list[Manifest] = []
    if target.features.single_node_deployment and rw.node_count == 1:
        spec: Manifest = {
            "replicas": 1,
            # Two pods cannot share one node's GPUs: stop the old one first.
            "strategy": {"type": "Recreate"},
            "selector": selector,
            "template": template,
        }
        out.append(
            manifest("apps/v1", "Deployment", metadata(plan, name, annotations=plan.annotations), spec=spec)
        )
    else:
        spec = {
            "replicas": rw.node_count,
            "podManagementPolicy": "Parallel",
            "serviceName": f"{name}-headless",
            "selector": selector,
            "template": template,
        }
        if claims:
            spec["volumeClaimTemplates"] = claims
            spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete", "whenScaled": "Retain"}
        out.append(
            manifest("apps/v1", "StatefulSet", metadata(plan, name, annotations=plan.annotations), spec=spec)
        )
    out += _services(plan)
    out += _pdb(plan)
    return out


def _pdb(plan: WorkspacePlan) -> list[Manifest]:
    if plan.rw.node_count <= 1:
        return []
    pdb_spec = {"maxUnavailable": 1, "selector": {"matchLabels": dict(plan.selector)}}
    return [manifest("policy/v1", "PodDisruptionBudget", metadata(plan, plan.rw.name), spec=pdb_spec)]


def _services(plan: WorkspacePlan) -> list[Manifest]:
    rw = plan.rw
    lb = rw.workspace.annotations.get("kaito.sh/enablelb", "").lower() == "true"
    # Port 80 → 5000 is the contract the seeds' `curl http://$CLUSTERIP/chat` relies on.
    # Unlike Kaito (leader pod only), every replica here is a full model server, so the
    # Service balances over all ready pods.
    main_spec: Manifest = {
        "type": "LoadBalancer" if lb else "ClusterIP",
        "selector": dict(plan.selector),
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    headless_spec: Manifest = {
        "clusterIP": "None",
        "selector": dict(plan.selector),
        "publishNotReadyAddresses": True,
        "ports": [{"name": "http", "port": SERVER_PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    return [
        manifest("v1", "Service", metadata(plan, rw.name), spec=main_spec),
        manifest("v1", "Service", metadata(plan, f"{rw.name}-headless"), spec=headless_spec),
    ]
