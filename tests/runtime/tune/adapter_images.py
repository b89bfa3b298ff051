"""Adapter directories and Kaito-built adapter images for the adapter tests.

`write_adapter_dir` writes a small but real PEFT adapter: a LoRA-shaped safetensors file and an
adapter_config.json. `push_kaito_style_image` builds an image the way Kaito's `pusher.sh` does (a tar of
`data/` gzipped, a config that holds only `rootfs.diff_ids`) and publishes it with skopeo, a client
independent of ours, so pulling it tests that adapters Kaito produces are usable here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def write_adapter_dir(path: Path, *, seed: int = 0, sentinel: bool = True, base: str = "tiny-llama") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {
        f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_{ab}.weight": rng.standard_normal(
            (8, 64) if ab == "A" else (64, 8)
        ).astype(np.float32)
        for i in range(2)
        for ab in "AB"
    }
    save_file(tensors, str(path / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": 8,
        "lora_alpha": 16,
        "target_modules": ["q_proj"],
    }
    (path / "adapter_config.json").write_text(json.dumps(config))
    if sentinel:
        (path / "fine_tuning_completed.txt").write_text("done\n")
    return path


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def push_kaito_style_image(
    layout: Path,
    files: dict[str, bytes],
    ref: str,
    docker_config: Path,
    model: str = "phi-3-mini-128k-instruct",
) -> str:
    """Publish `files` (tar paths -> bytes) as Kaito's pusher would, using skopeo; return the manifest digest."""
    layout.mkdir(parents=True)
    tar = tar_of(files)
    layer = gzip.compress(tar, compresslevel=9, mtime=0)
    config = json.dumps({"rootfs": {"diff_ids": [sha256(tar)]}}).encode()  # Kaito's minimal config
    for blob in (layer, config):
        (layout / sha256(blob).removeprefix("sha256:")).write_bytes(blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
            "annotations": {"sh.kaito.model.name": model},
        }
    ).encode()
    (layout / "manifest.json").write_bytes(manifest)
    (layout / "version").write_text("Directory Transport Version: 1.1\n")
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--dest-tls-verify=false",
            "--dest-authfile",
            str(docker_config),
            f"dir:{layout}",
            f"docker://{ref}",
        ],
        check=True,
        capture_output=True,
    )
    return sha256(manifest)
