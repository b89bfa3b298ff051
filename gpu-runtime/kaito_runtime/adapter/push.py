"""`kaito-adapter push`: publish a finished adapter directory as a Kaito adapter image."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from kaito_runtime.adapter.errors import IntegrityError
from kaito_runtime.adapter.layout import MANIFEST_OCI, AdapterDir, build_image
from kaito_runtime.adapter.registry import Logger, RegistrySession, raise_for_response


@dataclass(frozen=True)
class PushResult:
    image: str
    digest: str
    layer_digest: str
    size: int  # bytes of blobs + manifest


def push_adapter(
    adapter: AdapterDir, session: RegistrySession, base_model: str | None, log: Logger
) -> PushResult:
    """Build the image in a scratch directory, upload layer and config, then the manifest (which tags it).

    The manifest goes last: until it is accepted nothing is tagged, so a failed push leaves at most
    unreferenced blobs behind and never a tag pointing at a partial image.
    """
    ref = session.ref
    with tempfile.TemporaryDirectory(prefix="kaito-adapter-push-") as work:
        image = build_image(adapter, Path(work), base_model)
        container = session.container()
        for blob in (image.layer, image.config):
            response = session.client.upload_blob(str(blob.path), container, blob.descriptor())
            if response.status_code not in {200, 201, 202}:
                raise_for_response(response, f"uploading blob {blob.digest}", ref)
            log(f"uploaded {blob.media_type.rsplit('.', 1)[-1]} {blob.digest} ({blob.size} bytes)")
        response = session.client.do_request(
            session.manifest_url(ref.tag or "latest"),
            "PUT",
            data=image.manifest,
            headers={"Content-Type": MANIFEST_OCI},
        )
        if response.status_code not in {200, 201}:
            raise_for_response(response, "uploading the manifest", ref)
        digest = image.manifest_digest
        answered = response.headers.get("Docker-Content-Digest")
        if answered and answered != digest:
            raise IntegrityError(f"registry stored the manifest as {answered}, expected {digest}")
        size = image.layer.size + image.config.size + len(image.manifest)
        return PushResult(image=str(ref), digest=digest, layer_digest=image.layer.digest, size=size)
