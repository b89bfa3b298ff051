"""User objects (ConfigMaps, PVCs, sealed secrets) that travel with a bundle."""

from __future__ import annotations

from typing import Any

from kaito_gen.compiler.emit.common import Manifest
from kaito_gen.compiler.validate import ObjectInput

# Written by the API server; committing them would make every sync a diff.
SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")


def passthrough(obj: ObjectInput) -> Manifest:
    data: dict[str, Any] = dict(obj.data)
    meta = {k: v for k, v in dict(data.get("metadata") or {}).items() if k not in SERVER_FIELDS}
    meta["namespace"] = obj.namespace
    ordered_meta = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    ordered_meta.update({k: v for k, v in sorted(meta.items()) if k not in ordered_meta})
    out: Manifest = {"apiVersion": obj.api_version, "kind": obj.kind, "metadata": ordered_meta}
    for key in sorted(data):
        if key not in ("apiVersion", "kind", "metadata", "status"):
            out[key] = data[key]
    return out
