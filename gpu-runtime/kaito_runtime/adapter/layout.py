"""Kaito's adapter image layout: checking an adapter directory, building the image, unpacking one.

An adapter image (KAITO.md §5.6, §6.3; Kaito's `pusher.sh` / `puller.sh`) is an OCI *image*:
- one `application/vnd.oci.image.layer.v1.tar+gzip` layer whose tar holds `data/adapter_config.json` and
  `data/adapter_model.safetensors`;
- an `application/vnd.oci.image.config.v1+json` config whose `rootfs.diff_ids` lists the sha256 of the
  *uncompressed* tar (skopeo checks it when it decompresses; Kaito's puller runs
  `skopeo copy --dest-decompress`);
- a manifest annotated `sh.kaito.model.name: <base model>`.
The layer is byte-reproducible (zero mtimes/owners, gzip mtime 0), so the same adapter always gets the
same digest. Pulling untars every layer in order into a scratch rootfs and takes `rootfs/data`, like
Kaito's puller, so images built with `docker build` (`COPY ... /data/`) work too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kaito_runtime.adapter.errors import AdapterDirError, IntegrityError

MANIFEST_OCI = "application/vnd.oci.image.manifest.v1+json"
INDEX_OCI = "application/vnd.oci.image.index.v1+json"
MANIFEST_DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
LIST_DOCKER = "application/vnd.docker.distribution.manifest.list.v2+json"
CONFIG_OCI = "application/vnd.oci.image.config.v1+json"
CONFIG_DOCKER = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
GZIP_LAYERS = frozenset({LAYER_GZIP, LAYER_DOCKER_GZIP})
TAR_LAYERS = frozenset({LAYER_TAR})
MANIFEST_TYPES = (MANIFEST_OCI, MANIFEST_DOCKER)
INDEX_TYPES = (INDEX_OCI, LIST_DOCKER)

ANNOTATION_MODEL = "sh.kaito.model.name"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_FILES = (CONFIG_FILE, WEIGHTS_FILE)
SENTINEL = "fine_tuning_completed.txt"
DATA_DIR = "data"

MAX_ADAPTER_CONFIG_BYTES = 1 << 20
MAX_SAFETENSORS_HEADER = 100 << 20
MAX_TAR_MEMBERS = 10_000
_CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted JSON: the bytes we push, so digests do not depend on a serialiser's whims."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------- adapter directory


@dataclass(frozen=True)
class AdapterDir:
    path: Path
    config: dict[str, Any]

    @property
    def files(self) -> list[tuple[str, Path]]:
        return [(name, self.path / name) for name in ADAPTER_FILES]

    @property
    def base_model(self) -> str | None:
        value = self.config.get("base_model_name_or_path")
        return str(value) if value else None


def check_adapter_dir(path: Path, *, require_sentinel: bool) -> AdapterDir:
    """Refuse anything but a complete adapter: both files present and well-formed (and the sentinel).

    The sentinel is Kaito's "training finished" marker (`fine_tuning_completed.txt`, written last by
    kaito-tune and by Kaito's own job); requiring it is what keeps a half-finished training from ever
    being published. `require_sentinel=False` is for adapters that did not come out of a tuning run.
    """
    if not path.is_dir():
        raise AdapterDirError(f"{path} is not a directory")
    missing = [name for name in ADAPTER_FILES if not (path / name).is_file()]
    if missing:
        raise AdapterDirError(
            f"{path} is not a complete adapter: missing {', '.join(missing)}",
            "push the output directory of a finished kaito-tune run",
        )
    if require_sentinel and not (path / SENTINEL).is_file():
        raise AdapterDirError(
            f"{path} has no {SENTINEL}: the training that wrote it did not finish",
            "wait for the tuning run to finish, or pass --no-require-sentinel for an adapter made elsewhere",
        )
    config = read_adapter_config(path / CONFIG_FILE)
    check_safetensors(path / WEIGHTS_FILE)
    return AdapterDir(path=path, config=config)


def read_adapter_config(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_ADAPTER_CONFIG_BYTES:
        raise AdapterDirError(f"{path} is {size} bytes; an adapter config is a small JSON file")
    try:
        config = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterDirError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or "peft_type" not in config:
        raise AdapterDirError(f"{path} is not a PEFT adapter config (no 'peft_type')")
    return config


def check_safetensors(path: Path) -> None:
    """Check the safetensors framing: header length, JSON header, tensor data inside the file."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise AdapterDirError(f"{path} is truncated ({size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_SAFETENSORS_HEADER or 8 + header_len > size:
            raise AdapterDirError(f"{path} is not a safetensors file (bad header length {header_len})")
        try:
            header = json.loads(fh.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise AdapterDirError(f"{path} is not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise AdapterDirError(f"{path} is not a safetensors file (header is not an object)")
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if not tensors:
        raise AdapterDirError(f"{path} holds no tensors")
    data_len = size - 8 - header_len
    for name, info in tensors.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (
            isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise AdapterDirError(f"{path} is truncated or corrupt (tensor {name!r} lies outside the file)")


# ---------------------------------------------------------------- building an image


class _HashingWriter(io.RawIOBase):
    """Write-through wrapper that hashes and counts what passes."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hash.update(view)
        self.size += len(view)
        self.sink.write(view)
        return len(view)


@dataclass(frozen=True)
class Blob:
    media_type: str
    digest: str
    size: int
    path: Path

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BuiltImage:
    layer: Blob
    config: Blob
    manifest: bytes

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)


def build_image(adapter: AdapterDir, workdir: Path, base_model: str | None) -> BuiltImage:
    """Write layer and config blobs into `workdir`, return them with the manifest bytes."""
    layer_path = workdir / "layer.tar.gz"
    with layer_path.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            uncompressed = _HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.addfile(_tarinfo(DATA_DIR, tarfile.DIRTYPE, 0o755))
                for name, path in adapter.files:
                    info = _tarinfo(f"{DATA_DIR}/{name}", tarfile.REGTYPE, 0o644)
                    info.size = path.stat().st_size
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
    layer = Blob(LAYER_GZIP, "sha256:" + compressed.hash.hexdigest(), compressed.size, layer_path)
    diff_id = "sha256:" + uncompressed.hash.hexdigest()
    config_bytes = canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    )
    config_path = workdir / "config.json"
    config_path.write_bytes(config_bytes)
    config = Blob(CONFIG_OCI, sha256_digest(config_bytes), len(config_bytes), config_path)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_OCI,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    }
    if base_model:
        manifest["annotations"] = {ANNOTATION_MODEL: base_model}
    return BuiltImage(layer=layer, config=config, manifest=canonical_json(manifest))


def _tarinfo(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# ---------------------------------------------------------------- unpacking an image


class _HashingReader(io.RawIOBase):
    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.hash.update(data)
        return n

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def extract_layer(blob: Path, media_type: str, rootfs: Path, diff_id: str | None, budget: list[int]) -> None:
    """Untar one layer into `rootfs` (whiteouts applied), checking its diff_id and the byte budget.

    `budget` is a one-element list holding the bytes still allowed across all layers (decompression
    bombs stop there). Paths are filtered with tarfile's "data" filter: nothing lands outside `rootfs`,
    no device files, no absolute or escaping links.
    """
    if media_type not in GZIP_LAYERS | TAR_LAYERS:
        raise IntegrityError(f"layer media type {media_type!r} is not supported (expected tar or tar+gzip)")
    with blob.open("rb") as raw:
        source: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if media_type in GZIP_LAYERS else raw  # type: ignore[assignment]
        reader = _HashingReader(source)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                tar.extractall(rootfs, members=_members(tar, rootfs), filter=_budget_filter(budget))
            reader.drain()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise IntegrityError(f"layer {blob.name} cannot be unpacked safely: {exc}") from None
    actual = "sha256:" + reader.hash.hexdigest()
    if diff_id is not None and actual != diff_id:
        raise IntegrityError(
            f"uncompressed layer digest {actual} does not match the config's diff_id {diff_id}"
        )


def _members(tar: tarfile.TarFile, rootfs: Path) -> Iterator[tarfile.TarInfo]:
    count = 0
    for member in tar:
        count += 1
        if count > MAX_TAR_MEMBERS:
            raise IntegrityError(f"layer has more than {MAX_TAR_MEMBERS} entries")
        head, _, base = member.name.rstrip("/").rpartition("/")
        if base.startswith(".wh."):
            _apply_whiteout(rootfs, head, base)
            continue
        yield member


def _apply_whiteout(rootfs: Path, head: str, base: str) -> None:
    parent = (rootfs / head).resolve()
    if not parent.is_relative_to(rootfs.resolve()):
        raise IntegrityError(f"whiteout {head}/{base} points outside the image")
    if base == ".wh..wh..opq":  # opaque directory: drop what lower layers put there
        if parent.is_dir():
            for child in parent.iterdir():
                _remove(child)
        return
    target = parent / base[len(".wh.") :]
    if target.is_relative_to(rootfs.resolve()):
        _remove(target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _budget_filter(budget: list[int]) -> Any:
    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        filtered = tarfile.data_filter(member, dest)
        if filtered is not None and filtered.isfile():
            budget[0] -= filtered.size
            if budget[0] < 0:
                raise IntegrityError("the image unpacks to more than --max-bytes")
        return filtered

    return check


def install_dir(staged: Path, dest: Path) -> None:
    """Move the finished `staged` directory to `dest`, replacing what was there, as atomically as POSIX can.

    `dest` never holds a mix of old and new files: a new directory is renamed into place (the old one, if
    any, is first renamed aside). When `dest` is itself a mount point it cannot be renamed, so its files
    are replaced one by one with `os.replace`, each of them atomic.
    """
    if dest.exists() and os.path.ismount(dest):
        for child in staged.iterdir():
            os.replace(child, dest / child.name)
        shutil.rmtree(staged)
        return
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
    os.replace(staged, dest)
    if old is not None:
        _remove(old)
