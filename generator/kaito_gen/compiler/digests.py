"""``--require-digests`` (kaito-gen.yaml ``requireDigests``): every container image pinned by digest.

Input: the resolved Workspaces and the Target. Output: one positioned error per tag-only image,
at the field that names it (``presetOptions.image``, a template container's ``image``), or, for
the runtime images of kaito-gen.yaml / ``--registry``/``--runtime-tag``, at the first Workspace
that runs it (each image is reported once). Runs after ``resolve``, before ``plan``; it only reads.

A digest is ``@sha256:<64 hex>``; a tag can move under a running cluster, a digest cannot.
Adapter and dataset images are OCI artifacts that kaito-adapter and kaito-data pull as files,
not container images, and are out of scope here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from kaito_gen.compiler.resolve import ResolvedWorkspace
from kaito_gen.core.errors import Diagnostic, FieldPath
from kaito_gen.models.target import Target

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def pinned(image: str) -> bool:
    return bool(DIGEST.search(image))


def _preset_image(rw: ResolvedWorkspace) -> tuple[str, FieldPath] | None:
    ws = rw.workspace
    mode = "inference" if ws.inference is not None else "tuning"
    spec = ws.inference.preset if ws.inference else ws.tuning.preset if ws.tuning else None
    if spec is not None and spec.preset_options is not None and spec.preset_options.image:
        return spec.preset_options.image, (mode, "preset", "presetOptions", "image")
    return None


def _images(rw: ResolvedWorkspace, target: Target) -> Iterator[tuple[str, FieldPath | None, str]]:
    """(image, the field naming it or None for a Target image, kaito-gen.yaml key) of each container."""
    ws = rw.workspace
    if ws.inference is not None and ws.inference.template is not None:
        spec = ws.inference.template.get("spec") or {}
        for key in ("initContainers", "containers"):
            for index, c in enumerate(spec.get(key) or []):
                if isinstance(c, dict) and isinstance(c.get("image"), str):
                    yield c["image"], ("inference", "template", "spec", key, index, "image"), ""
        return
    own = _preset_image(rw)
    vllm = rw.mode == "inference" and rw.engine == "vllm"
    if own is not None:
        yield own[0], own[1], ""
    else:
        key = "runtime.images.vllm" if vllm else "runtime.images.transformers"
        yield (target.vllm_runtime_image if vllm else target.runtime_image), None, key
    # Adapter pullers (vLLM too) and tuning helpers run the transformers runtime image.
    if vllm and own is None and any(a.image for a in rw.adapters):
        yield target.runtime_image, None, "runtime.images.transformers"


def check_digests(workspaces: Sequence[ResolvedWorkspace], target: Target) -> list[Diagnostic]:
    if not target.require_digests:
        return []
    out: list[Diagnostic] = []
    reported: set[str] = set()
    for rw in workspaces:
        for image, path, key in _images(rw, target):
            if pinned(image) or (path is None and image in reported):
                continue
            if path is None:
                reported.add(image)
                where: FieldPath = ("metadata", "name")
                message = f"image {image!r} (the runtime image this Workspace runs) is not pinned by digest"
                hint = f"pin it in kaito-gen.yaml: {key}: <repository>@sha256:<digest>"
            else:
                where = path
                message = f"image {image!r} is not pinned by digest"
                hint = "write it as <repository>@sha256:<digest> (a tag can move, a digest cannot)"
            out.append(
                Diagnostic(
                    rw.input.doc.pos(where),
                    rw.input.shown(where),
                    message + " (--require-digests)",
                    hint=hint,
                    code="image-digest",
                )
            )
    return out
