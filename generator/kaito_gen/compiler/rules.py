"""Small, reusable field checks: Kubernetes names, image references, dataset URLs."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# distribution/reference grammar, simplified: [host[:port]/]path[:tag][@algo:hex]
IMAGE_REF = re.compile(
    r"^(?:(?P<host>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
# Kaito: "decimal string" strengths; we refuse exponents and signs outright.
STRENGTH = re.compile(r"^(?:0|1|0?\.\d+|[01]\.\d+)$")

# Reserved selector keys Kaito strips from user matchLabels (KAITO.md §1.6).
RESERVED_SELECTOR_KEYS = frozenset(
    {
        "kaito.sh/workspace",
        "kaito.sh/ragengine",
        "kaito.sh/workspacenamespace",
        "kaito.sh/ragenginenamespace",
        "karpenter.kaito.sh/workspace-name",
        "karpenter.kaito.sh/workspace-namespace",
        "karpenter.kaito.sh/inferenceset",
        "karpenter.kaito.sh/inferenceset-namespace",
    }
)

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.google", "instance-data.ec2.internal"})


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and DNS1123_LABEL.match(name) is not None


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and DNS1123_SUBDOMAIN.match(name) is not None


def label_key_problem(key: str) -> str:
    """Why ``key`` is not a valid label key, or ``""``."""
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns_subdomain(prefix):
        return f"label key prefix {prefix!r} is not a DNS subdomain"
    if not LABEL_NAME.match(name):
        return f"label key {key!r} must be ≤63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
    return ""


def label_value_problem(value: str) -> str:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return f"label value {value!r} must be ≤63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
    return ""


def is_image_ref(ref: str) -> bool:
    return len(ref) <= 512 and IMAGE_REF.match(ref) is not None


def image_ref_problem(ref: str) -> tuple[str, bool]:
    """(problem, fatal). Registries need lowercase repositories and hostnames without
    '_': such a reference is reported, but only as a warning, because it is usually a
    placeholder (the seeds' ``ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1``)."""
    if is_image_ref(ref):
        return "", False
    host, sep, rest = ref.partition("/")
    relaxed = (
        (host.replace("_", "-") + sep + rest.lower()) if sep and ("." in host or ":" in host) else ref.lower()
    )
    if is_image_ref(relaxed):
        return (
            f"{ref!r} is not a reference a registry accepts (uppercase or '_' in it); is it a placeholder?",
            False,
        )
    return f"{ref!r} is not a valid image reference", True


def _numeric_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Hosts like ``2130706433`` or ``0x7f.1`` that HTTP clients read as IPv4 addresses."""
    if not re.fullmatch(r"[0-9a-fA-FxX.]+", host) or not any(ch.isdigit() for ch in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def dataset_url_problem(url: str) -> str:
    """Kaito's tuning-input URL rules (KAITO.md §1.7 item 8), tightened.

    http/https with a host; no localhost, cloud metadata names, or loopback,
    private, link-local, unspecified, multicast or reserved addresses — in any
    spelling an HTTP client accepts (IPv4-mapped IPv6, decimal and hex forms).
    Returns the problem, or ``""``. Names are checked again after DNS resolution
    by ``kaito-data fetch`` at run time.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "URL has no host"
    if parts.username or parts.password:
        return "credentials in the URL would be committed to git; use a pre-signed URL or a volume"
    if host == "localhost" or host.endswith(".localhost"):
        return f"host {host!r} is the local machine"
    if host in METADATA_HOSTS:
        return f"host {host!r} is a cloud metadata service"
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = _numeric_ip(host)
    if address is None:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for flag, what in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local (cloud metadata lives here)"),
        ("is_private", "private"),
        ("is_unspecified", "unspecified"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, flag):
            return f"address {address} is {what}"
    return ""
