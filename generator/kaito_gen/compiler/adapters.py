"""The adapters of an inference Workspace, as the emitters need them (KAITO.md §5.6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kaito_gen.models.workspace import Workspace


@dataclass(frozen=True)
class ResolvedAdapter:
    name: str
    image: str | None
    volume_source: Mapping[str, Any] | None
    pull_secrets: tuple[str, ...]
    strength: str  # Kaito: nil strength means "1.0"


def resolve_adapters(ws: Workspace) -> tuple[ResolvedAdapter, ...]:
    out = []
    for adapter in (ws.inference.adapters or ()) if ws.inference else ():
        src = adapter.source
        if src is None or not src.name:
            continue
        out.append(
            ResolvedAdapter(
                name=src.name,
                image=src.image,
                volume_source=src.volume_source,
                pull_secrets=tuple(src.image_pull_secrets or ()),
                strength=adapter.strength or "1.0",
            )
        )
    return tuple(out)
