"""Parse image references the way docker does: `[registry/]repository[:tag][@sha256:...]`.

The first path component is a registry when it contains `.` or `:` or is `localhost`; otherwise the image
lives on Docker Hub (`docker.io`, API host `registry-1.docker.io`, one-component names under `library/`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kaito_runtime.adapter.errors import UsageError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class ImageRef:
    registry: str  # as written (docker.io for Hub), with port
    repository: str  # path inside the registry, e.g. adapters/phi3
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """host[:port] to send HTTP requests to."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def hostname(self) -> str:
        """The registry host without port or brackets."""
        host = self.api_host
        if host.startswith("["):
            return host[1 : host.index("]")]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def oras_name(self) -> str:
        """The `host/repo:tag` form oras' Container parser understands."""
        return f"{self.api_host}/{self.repository}:{self.tag or 'latest'}"

    def is_loopback(self) -> bool:
        host = self.hostname.lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, default_tag: bool = True) -> ImageRef:
    """Parse `text`; a missing tag becomes `latest` unless a digest pins the image."""
    original = text
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        raise UsageError(f"image reference {original!r} is empty or contains whitespace")
    if "://" in text:
        raise UsageError(f"image reference {original!r} must not have a scheme", "write host/repository:tag")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise UsageError(f"image reference {original!r}: {digest!r} is not a sha256 digest")
    tag = None
    last_slash = text.rfind("/")
    if ":" in text[last_slash + 1 :]:
        text, tag = text.rsplit(":", 1)
        if not _TAG.match(tag):
            raise UsageError(f"image reference {original!r}: {tag!r} is not a valid tag")
    parts = text.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry, path = parts[0], parts[1:]
        if not _HOST.match(registry):
            raise UsageError(f"image reference {original!r}: {registry!r} is not a registry host")
    else:
        registry, path = DOCKER_HUB, parts
        if len(path) == 1:
            path = ["library", *path]
    for component in path:
        if not _COMPONENT.match(component):
            raise UsageError(
                f"image reference {original!r}: repository component {component!r} is invalid",
                "repository names are lower-case letters, digits and . _ - separators",
            )
    if tag is None and digest is None and default_tag:
        tag = "latest"
    return ImageRef(registry=registry, repository="/".join(path), tag=tag, digest=digest)
