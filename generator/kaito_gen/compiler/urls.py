"""Dataset URL rules, past Kaito's own (KAITO.md §1.7 item 8).

Kaito refuses non-http(s) schemes, ``localhost``, a few metadata names and
loopback/private/link-local IP literals. We also:

- decode the host before checking it (``http://%31%32%37.0.0.1/`` is 127.0.0.1);
- read every spelling an HTTP client accepts as IPv4 (``2130706433``, ``0x7f.1``)
  and IPv6 forms that embed IPv4 (mapped, 6to4, Teredo, NAT64);
- refuse every address that is not globally routable (shared address space
  100.64.0.0/10, benchmarking, reserved) and the big clouds' metadata addresses
  and names (169.254.169.254, fd00:ec2::254, 100.100.100.200,
  metadata.google.internal, instance-data, …);
- refuse cluster-internal names (``*.svc``, ``*.cluster.local``, ``*.internal``,
  ``*.local``, single-label hosts) and wildcard-DNS names that embed an internal
  address (``169.254.169.254.nip.io``, ``10.0.0.1.xip.io``, ``127-0-0-1.sslip.io``).

A name can still resolve anywhere: ``kaito-data fetch`` checks the address every
name resolves to, on every redirect, at run time.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import unquote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.google",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, Azure, GCP, OCI, DigitalOcean, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (legacy)
    )
)
INTERNAL_SUFFIXES = (
    ".svc",
    ".cluster.local",
    ".internal",
    ".local",
    ".localdomain",
    ".home.arpa",
    ".intranet",
)
# Public wildcard-DNS services: <ip>.<service> resolves to <ip>.
WILDCARD_DNS = ("nip.io", "xip.io", "sslip.io", "nip.direct", "traefik.me", "backname.io", "ip.addr.tools")
# Names that always resolve to loopback.
LOOPBACK_NAMES = ("localtest.me", "lvh.me", "vcap.me", "lacolhost.com", "fbi.com")

_EMBEDDED_V4 = re.compile(
    r"(?:^|[.-])((?:25[0-5]|2[0-4]\d|1?\d?\d)(?:[.-](?:25[0-5]|2[0-4]\d|1?\d?\d)){3})(?:$|[.-])"
)
_EMBEDDED_HEX = re.compile(r"(?:^|[.-])([0-9a-f]{8})(?:$|[.-])")


def numeric_ip(host: str) -> IPAddress | None:
    """The address an HTTP client reads ``host`` as, in any IPv4/IPv6 spelling, or None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host) and any(ch.isdigit() for ch in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.ip_network("64:ff9b::/96") or ip in ipaddress.ip_network("64:ff9b:1::/48"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str:
    """Why fetching from ``ip`` is refused, or ``""`` for a public unicast address."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        why = address_problem(inner)
        return f"{why} (embedded in {ip})" if why else ""
    if ip in METADATA_ADDRESSES:
        return f"address {ip} is a cloud metadata service"
    for flag, what in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local (cloud metadata lives here)"),
        ("is_unspecified", "unspecified"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
    ):
        if getattr(ip, flag):
            return f"address {ip} is {what}"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return f"address {ip} is shared address space (carrier-grade NAT, 100.64.0.0/10)"
    if ip.is_reserved or not ip.is_global:
        return f"address {ip} is not globally routable"
    return ""


def host_name_problem(host: str) -> str:
    """Why the (decoded, lower-case) host name is refused, or ``""``."""
    if host == "localhost" or host.endswith(".localhost"):
        return f"host {host!r} is the local machine"
    if host in METADATA_NAMES:
        return f"host {host!r} is a cloud metadata service"
    if host.endswith(INTERNAL_SUFFIXES):
        return f"host {host!r} is a cluster- or network-internal name"
    if "." not in host:
        return f"host {host!r} is a single-label name, resolved inside the cluster or network"
    if any(host == n or host.endswith("." + n) for n in LOOPBACK_NAMES):
        return f"host {host!r} always resolves to the loopback address"
    for service in WILDCARD_DNS:
        if host.endswith("." + service):
            prefix = host[: -len(service) - 1]
            for pattern, parse in ((_EMBEDDED_V4, _dotted), (_EMBEDDED_HEX, _hex)):
                for match in pattern.finditer(prefix):
                    why = address_problem(parse(match.group(1)))
                    if why:
                        return f"host {host!r} resolves to an embedded address: {why}"
    return ""


def _dotted(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text.replace("-", "."))


def _hex(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(text, 16))


def dataset_url_problem(url: str) -> str:
    """The problem with a tuning-input URL, or ``""``."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
    if parts.username or parts.password or "@" in unquote(parts.netloc):
        return "credentials in the URL would be committed to git; use a pre-signed URL or a volume"
    raw = parts.hostname or ""
    host = unquote(raw).strip().rstrip(".").lower()
    if not host:
        return "URL has no host"
    if host != raw.rstrip(".").lower() and re.search(r"[^a-z0-9.:\-\[\]]", host):
        return f"host {host!r} (decoded) holds characters no host name has"
    address = numeric_ip(host.strip("[]"))
    if address is not None:
        return address_problem(address)
    return host_name_problem(host)
