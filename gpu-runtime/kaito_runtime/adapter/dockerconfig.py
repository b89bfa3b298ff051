"""Credentials from a docker `config.json`, the form a `imagePushSecret` or pull secret is mounted in.

Only inline credentials are used (`auths.<host>.auth` = base64 "user:password", or `username`/`password`).
Credential helpers (`credHelpers`, `credsStore`) would mean running a binary named by the file; a pod's
mounted secret never has them, so they are reported instead of executed.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaito_runtime.adapter.errors import UsageError
from kaito_runtime.adapter.reference import DOCKER_HUB, DOCKER_HUB_API, ImageRef

MAX_CONFIG_BYTES = 1 << 20
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str  # "<file>, entry auths.<key>", for messages

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r}, source={self.source!r})"


def default_config_path(env: dict[str, str], home: Path) -> Path | None:
    """Where docker looks: $DOCKER_CONFIG/config.json, else ~/.docker/config.json; None if absent."""
    base = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    path = base / "config.json"
    return path if path.is_file() else None


def load_config(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise UsageError(f"docker config {path} is {size} bytes; refusing more than {MAX_CONFIG_BYTES}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"docker config {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read docker config {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"docker config {path} is not JSON ({exc.msg} at line {exc.lineno})",
            'expected {"auths": {"<registry>": {"auth": "<base64 user:password>"}}}',
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"docker config {path} must hold a JSON object")
    return data


def _host_of_key(key: str) -> str:
    host = key.strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
    return host.split("/", 1)[0]


def _candidates(ref: ImageRef) -> set[str]:
    hosts = {ref.registry.lower(), ref.api_host.lower()}
    if hosts & _HUB_ALIASES:
        hosts |= _HUB_ALIASES
    return hosts


def credentials_for(config: dict[str, Any], ref: ImageRef, path: Path) -> Credentials | None:
    """The credentials `config` holds for `ref`'s registry, or None (anonymous)."""
    wanted = _candidates(ref)
    auths = config.get("auths") or {}
    if not isinstance(auths, dict):
        raise UsageError(f"docker config {path}: 'auths' must be an object")
    for key, entry in auths.items():
        if _host_of_key(str(key)) not in wanted:
            continue
        if not isinstance(entry, dict):
            raise UsageError(f"docker config {path}: auths.{key} must be an object")
        source = f"{path}, entry auths.{key}"
        if entry.get("auth"):
            return _decode_auth(str(entry["auth"]), source)
        if entry.get("username") and entry.get("password") is not None:
            return Credentials(str(entry["username"]), str(entry["password"]), source)
        if entry.get("identitytoken"):
            raise UsageError(
                f"{source} holds only an identity token, which kaito-adapter cannot exchange",
                "use a username/password (or token) pair in 'auth'",
            )
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict) and any(_host_of_key(str(k)) in wanted for k in helpers):
        raise UsageError(
            f"docker config {path} names a credential helper for {ref.registry}; helpers are not run",
            "put the credentials inline under 'auths' (as a Kubernetes docker-registry secret does)",
        )
    return None


def _decode_auth(value: str, source: str) -> Credentials:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise UsageError(f"{source}: 'auth' is not base64 of 'user:password'") from None
    if ":" not in decoded:
        raise UsageError(f"{source}: 'auth' does not decode to 'user:password'")
    username, password = decoded.split(":", 1)
    return Credentials(username, password, source)
