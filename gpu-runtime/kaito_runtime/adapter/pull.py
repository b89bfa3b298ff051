"""`kaito-adapter pull`: fetch an adapter image into a directory, verifying every digest, atomically.

This is what the inference pod's adapter init container runs. The result directory appears only once
complete: blobs are downloaded and unpacked in a hidden sibling directory and renamed into place, so
kaito-serve never sees half an adapter. Verified: the manifest against the pinned digest and the
registry's `Docker-Content-Digest`, each blob against its descriptor (digest and size), each layer's
uncompressed tar against the config's `rootfs.diff_ids`, and finally the adapter files themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaito_runtime.adapter.errors import AdapterDirError, IntegrityError, RegistryError
from kaito_runtime.adapter.layout import (
    ADAPTER_FILES,
    CONFIG_FILE,
    DATA_DIR,
    GZIP_LAYERS,
    INDEX_TYPES,
    MANIFEST_TYPES,
    TAR_LAYERS,
    WEIGHTS_FILE,
    check_safetensors,
    extract_layer,
    install_dir,
    read_adapter_config,
    sha256_digest,
)
from kaito_runtime.adapter.registry import Logger, RegistrySession, raise_for_response

MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 4 << 20
MAX_LAYERS = 128
_CHUNK = 1 << 20
_ORAS_ARTIFACT_CONFIG = "application/vnd.unknown.config.v1+json"


@dataclass(frozen=True)
class PullResult:
    image: str
    digest: str
    path: Path
    files: list[str]
    base_model: str | None


def pull_adapter(
    session: RegistrySession, dest: Path, max_bytes: int, log: Logger, *, require_adapter: bool = True
) -> PullResult:
    """Pull the image's /data into ``dest``. ``require_adapter=False`` accepts any non-empty /data:
    Kaito's dataset images (tuning input.image) use the same layout with other files."""
    ref = session.ref
    manifest, digest = _fetch_manifest(session, ref.reference, ref.digest)
    dest = dest.absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.pull-", dir=dest.parent))
    try:
        config = _fetch_config(session, manifest, staging)
        layers = manifest["layers"]
        diff_ids = _diff_ids(config, len(layers))
        rootfs = staging / "rootfs"
        rootfs.mkdir()
        budget = [max_bytes]
        for index, layer in enumerate(layers):
            media_type = str(layer.get("mediaType"))
            if media_type not in GZIP_LAYERS | TAR_LAYERS:
                raise IntegrityError(f"layer {index} has media type {media_type!r}; expected tar or tar+gzip")
            blob = _download_blob(session, layer, staging / f"layer-{index}", max_bytes)
            extract_layer(blob, media_type, rootfs, diff_ids[index] if diff_ids else None, budget)
            blob.unlink()
        data = rootfs / DATA_DIR
        if require_adapter:
            _check_adapter(data, str(ref))
        else:
            _check_data(data, str(ref))
        base_model = _annotation(manifest)
        install_dir(data, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"pulled {ref} ({digest}) into {dest}")
    files = sorted(p.name for p in dest.iterdir())
    return PullResult(image=str(ref), digest=digest, path=dest, files=files, base_model=base_model)


def _fetch_manifest(
    session: RegistrySession, reference: str, pinned: str | None, *, allow_index: bool = True
) -> tuple[dict[str, Any], str]:
    """GET a manifest (following one level of index), verify its digest, return (manifest, digest)."""
    accept = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
    response = session.client.do_request(session.manifest_url(reference), "GET", headers={"Accept": accept})
    if response.status_code != 200:
        raise_for_response(response, "reading the manifest", session.ref)
    body = response.content
    if len(body) > MAX_MANIFEST_BYTES:
        raise IntegrityError(
            f"manifest of {session.ref} is {len(body)} bytes; refusing more than {MAX_MANIFEST_BYTES}"
        )
    digest = sha256_digest(body)
    if pinned and digest != pinned:
        raise IntegrityError(f"manifest digest {digest} does not match the pinned {pinned}")
    answered = response.headers.get("Docker-Content-Digest")
    if answered and answered != digest:
        raise IntegrityError(f"registry says the manifest is {answered} but its bytes hash to {digest}")
    try:
        manifest = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IntegrityError(f"manifest of {session.ref} is not JSON") from None
    if not isinstance(manifest, dict):
        raise IntegrityError(f"manifest of {session.ref} is not a JSON object")
    media_type = manifest.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0]
    if media_type in INDEX_TYPES or "manifests" in manifest:
        if not allow_index:
            raise IntegrityError(f"{session.ref}: an image index points at another index")
        chosen = _choose_platform(manifest, session)
        return _fetch_manifest(session, chosen, chosen, allow_index=False)
    if manifest.get("schemaVersion") != 2 or not isinstance(manifest.get("layers"), list):
        raise IntegrityError(f"{session.ref} is not an OCI/docker v2 image manifest")
    if not manifest["layers"] or len(manifest["layers"]) > MAX_LAYERS:
        raise IntegrityError(
            f"{session.ref} has {len(manifest['layers'])} layers; expected 1 to {MAX_LAYERS}"
        )
    config_type = (manifest.get("config") or {}).get("mediaType")
    if config_type == _ORAS_ARTIFACT_CONFIG:
        raise AdapterDirError(
            f"{session.ref} is an ORAS artifact, not an image: Kaito's adapter puller cannot read it either",
            "push adapters with `kaito-adapter push` (OCI image form)",
        )
    return manifest, digest


def _choose_platform(index: dict[str, Any], session: RegistrySession) -> str:
    entries = [m for m in index.get("manifests", []) if isinstance(m, dict) and m.get("digest")]
    for entry in entries:
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return str(entry["digest"])
    if len(entries) == 1:
        return str(entries[0]["digest"])
    raise IntegrityError(f"{session.ref} is an image index without a linux/amd64 entry")


def _fetch_config(session: RegistrySession, manifest: dict[str, Any], staging: Path) -> dict[str, Any]:
    descriptor = manifest.get("config")
    if not isinstance(descriptor, dict):
        raise IntegrityError(f"manifest of {session.ref} has no config descriptor")
    path = _download_blob(session, descriptor, staging / "config.json", MAX_CONFIG_BYTES)
    try:
        config = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise IntegrityError(f"image config of {session.ref} is not JSON") from None
    return config if isinstance(config, dict) else {}


def _diff_ids(config: dict[str, Any], layer_count: int) -> list[str] | None:
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if diff_ids is None:
        return None  # nothing to check against; the compressed digests were still verified
    if not isinstance(diff_ids, list) or len(diff_ids) != layer_count:
        raise IntegrityError(f"image config lists {len(diff_ids or [])} diff_ids for {layer_count} layers")
    return [str(d) for d in diff_ids]


def _download_blob(session: RegistrySession, descriptor: dict[str, Any], path: Path, max_bytes: int) -> Path:
    """Stream a blob to `path`, checking its size and sha256 digest against the descriptor."""
    digest = str(descriptor.get("digest", ""))
    size = descriptor.get("size")
    if not digest.startswith("sha256:") or not isinstance(size, int) or size < 0:
        raise IntegrityError(f"descriptor {descriptor} lacks a sha256 digest or a size")
    if size > max_bytes:
        raise IntegrityError(f"blob {digest} is {size} bytes, over --max-bytes {max_bytes}")
    response = session.client.get_blob(session.container(), digest, stream=True)
    with response:
        if response.status_code != 200:
            raise_for_response(response, f"downloading blob {digest}", session.ref)
        hasher = hashlib.sha256()
        received = 0
        with path.open("wb") as out:
            try:
                for chunk in response.iter_content(chunk_size=_CHUNK):
                    received += len(chunk)
                    if received > size:
                        raise IntegrityError(f"blob {digest} is longer than its descriptor's {size} bytes")
                    hasher.update(chunk)
                    out.write(chunk)
            except OSError as exc:
                raise RegistryError(f"download of blob {digest} broke off: {exc}") from None
    actual = "sha256:" + hasher.hexdigest()
    if received != size or actual != digest:
        raise IntegrityError(f"blob {digest} failed verification (got {received} bytes hashing to {actual})")
    return path


def _check_adapter(data: Path, image: str) -> None:
    missing = [name for name in ADAPTER_FILES if not (data / name).is_file()]
    if missing:
        raise AdapterDirError(
            f"{image} is not an adapter image: /{DATA_DIR} lacks {', '.join(missing)}",
            "an adapter image holds data/adapter_config.json and data/adapter_model.safetensors",
        )
    read_adapter_config(data / CONFIG_FILE)
    check_safetensors(data / WEIGHTS_FILE)
    os.chmod(data, 0o755)


def _check_data(data: Path, image: str) -> None:
    if not data.is_dir() or not any(data.iterdir()):
        raise AdapterDirError(
            f"{image} has no files under /{DATA_DIR}",
            "a dataset image keeps its files under /data (Kaito's layout)",
        )
    os.chmod(data, 0o755)


def _annotation(manifest: dict[str, Any]) -> str | None:
    annotations = manifest.get("annotations")
    if isinstance(annotations, dict):
        value = annotations.get("sh.kaito.model.name")
        return str(value) if value else None
    return None
