"""Tuning: a Job named after the hash of its spec, and its default ConfigMap (KAITO.md §6)."""

from __future__ import annotations

import copy
from typing import Any

from kaito_gen.compiler.configmaps import TRAINING_KEY
from kaito_gen.compiler.emit.common import (
    CONFIG_DIR,
    DATA_DIR,
    POD_SECURITY_CONTEXT,
    WEIGHTS_DIR,
    Manifest,
    base_env,
    container,
    docker_config_args,
    docker_config_volume,
    dshm_volume,
    hf_token_env,
    hf_token_storage,
    manifest,
    metadata,
    node_affinity,
    pod_template_hash,
    tmp_volume,
    tolerations,
)
from kaito_gen.compiler.emit.resources import helper_container_resources, server_resources
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.target import Target

SENTINEL = "fine_tuning_completed.txt"


def emit_training_config(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    if plan.training_config_name is None or plan.rw.training_config is None:
        return []
    meta = metadata(plan, plan.training_config_name)
    meta["labels"]["app.kubernetes.io/component"] = "config"
    return [manifest("v1", "ConfigMap", meta, data={TRAINING_KEY: plan.rw.training_config})]


def _input(plan: WorkspacePlan) -> tuple[list[Manifest], list[Manifest]]:
    """(init containers, volumes) that put the dataset under /mnt/data."""
    tuning = plan.rw.workspace.tuning
    assert tuning is not None and tuning.input is not None
    src = tuning.input
    if src.volume_source:
        return [], [{"name": "data-volume", **copy.deepcopy(dict(src.volume_source))}]
    volumes: list[Manifest] = [{"name": "data-volume", "emptyDir": {}}]
    mounts: list[Manifest] = [
        {"name": "data-volume", "mountPath": DATA_DIR},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    env = [{"name": "HOME", "value": "/tmp"}]
    if src.urls:
        args = ["kaito-data", "fetch", *src.urls, "--dest", DATA_DIR]
        downloader = container(
            "data-downloader",
            plan.image,
            args,
            env=env,
            resources=helper_container_resources(plan),
            volumeMounts=mounts,
        )
        return [downloader], volumes
    assert src.image is not None
    args = ["kaito-data", "pull-image", src.image, "--dest", DATA_DIR]
    secrets = tuple(src.image_pull_secrets or ())
    if secrets:
        mount = "/var/run/kaito-gen/docker/input"
        volumes.append(docker_config_volume("docker-config-input", secrets))
        mounts.append({"name": "docker-config-input", "mountPath": mount, "readOnly": True})
        args += docker_config_args(mount, secrets)
    puller = container(
        "data-puller",
        plan.image,
        args,
        env=env,
        resources=helper_container_resources(plan),
        volumeMounts=mounts,
    )
    return [puller], volumes


def emit_tuning(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    rw = plan.rw
    if rw.mode != "tuning" or plan.job_name is None or rw.model is None:
        return []
    tuning = rw.workspace.tuning
    assert tuning is not None and tuning.output is not None
    inits, volumes = _input(plan)
    config_name = rw.config_map.name if rw.config_map is not None else plan.training_config_name
    volumes = [
        dshm_volume(),
        tmp_volume(),
        {"name": "model-weights-volume", "emptyDir": {}},
        {"name": "config-volume", "configMap": {"name": config_name}},
        *volumes,
    ]
    out = tuning.output
    if out.volume_source:
        volumes.append({"name": "results-volume", **copy.deepcopy(dict(out.volume_source))})
    else:
        volumes.append({"name": "results-volume", "emptyDir": {}})
    args = [
        "kaito-tune",
        "--config", f"{CONFIG_DIR}/{TRAINING_KEY}",
        "--data", DATA_DIR,
        "--output", rw.output_dir,
        "--model", rw.model.hf_repo,
        "--revision", rw.model.revision,
        "--method", rw.tuning_method or "qlora",
        "--cache-dir", WEIGHTS_DIR,
    ]  # fmt: skip
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "model-weights-volume", "mountPath": WEIGHTS_DIR},
        {"name": "config-volume", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "data-volume", "mountPath": DATA_DIR, "readOnly": True},
        {"name": "results-volume", "mountPath": rw.output_dir},
    ]
    token_volumes, token_mounts = hf_token_storage(plan)
    volumes += token_volumes
    mounts += token_mounts
    env = [
        *base_env(),
        *hf_token_env(plan),
        {"name": "PYTORCH_CUDA_ALLOC_CONF", "value": "expandable_segments:True"},
    ]
    trainer = container(
        rw.name, plan.image, args, env=env, resources=server_resources(plan), volumeMounts=mounts
    )
    containers: list[Manifest]
    if out.image:
        # Training runs as the last init container and the push is the main container:
        # the adapter is published only after training succeeded, and a failed run
        # fails the Job instead of leaving a sidecar waiting forever (Kaito's pusher does).
        secret = out.image_push_secret or ""
        mount = "/var/run/kaito-gen/docker/push"
        volumes.append(docker_config_volume("docker-config-push", (secret,)))
        push_args = ["kaito-adapter", "push", rw.output_dir, out.image, "--base-model", rw.model.name]
        push_args += docker_config_args(mount, (secret,))
        pusher = container(
            "pusher",
            plan.image,
            push_args,
            env=[{"name": "HOME", "value": "/tmp"}],
            resources=helper_container_resources(plan),
            volumeMounts=[
                {"name": "results-volume", "mountPath": rw.output_dir, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "docker-config-push", "mountPath": mount, "readOnly": True},
            ],
        )
        inits.append(trainer)
        containers = [pusher]
    else:
        containers = [trainer]
    pod_spec: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        # OnFailure restarts the trainer in the same pod, so checkpoints in the results
        # volume survive and kaito-tune resumes from the latest one.
        "restartPolicy": "OnFailure",
        "securityContext": dict(POD_SECURITY_CONTEXT),
        "affinity": node_affinity(plan),
        "tolerations": tolerations(plan, target.cloud),
    }
    if inits:
        pod_spec["initContainers"] = inits
    pod_spec["containers"] = containers
    pod_spec["volumes"] = volumes
    labels = dict(sorted(plan.labels.items()))
    annotations: dict[str, Any] = {
        # Never evict a running fine-tuning job for consolidation or drift.
        "karpenter.sh/do-not-disrupt": "true",
        "kaito-gen.io/pod-template-hash": pod_template_hash(pod_spec, labels),
    }
    spec: Manifest = {
        # No ttlSecondsAfterFinished: GitOps would re-create a Job that deleted itself.
        "backoffLimit": 3,
        "completions": 1,
        "parallelism": 1,
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
    }
    return [
        manifest("batch/v1", "Job", metadata(plan, plan.job_name, annotations=plan.annotations), spec=spec)
    ]
