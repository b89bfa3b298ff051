"""Kaito's SSRF rules for tuning input URLs, applied before DNS, after DNS and on every redirect.

Kaito's admission webhook (`api/v1beta1/workspace_validation.go`, `validateURL`) refuses http(s) URLs whose
host is `localhost`/`*.localhost`, a cloud metadata name, or a loopback/private/link-local IP literal. A
webhook only sees the URL text; the downloader is where a name that *resolves* to 169.254.169.254 or a
redirect to `http://localhost/` has to be caught, so `check_address` runs on every resolved address and
`check_url` on every redirect target. We are stricter than the webhook on addresses: anything that is not
globally routable (CGNAT, benchmarking, reserved ranges) and every multicast address is refused too, and
IPv6 forms that embed an IPv4 address (mapped, 6to4, Teredo, NAT64) are judged by the embedded address.

`allow_hosts` is the test-only escape hatch behind `kaito-data fetch --unsafe-allow-host`: an exact host
(as written in the URL, e.g. `127.0.0.1`) whose name and resolved addresses are then not checked. The
compiler never emits that flag.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from kaito_runtime.data.errors import InvalidURLError, RefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Names Kaito refuses outright (validateURL); compared case-insensitively without a trailing dot.
BLOCKED_NAMES = frozenset(
    {"localhost", "metadata.google.internal", "metadata.google", "instance-data.ec2.internal"}
)
# Past Kaito (the compiler's compiler/urls.py holds the same lists): more metadata names and
# addresses, cluster-internal names, names that always mean loopback, wildcard-DNS services.
METADATA_NAMES = frozenset(
    {"metadata", "instance-data", "metadata.azure.com", "metadata.tencentyun.com", "metadata.packet.net"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
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
LOOPBACK_NAMES = ("localtest.me", "lvh.me", "vcap.me", "lacolhost.com", "fbi.com")
WILDCARD_DNS = ("nip.io", "xip.io", "sslip.io", "nip.direct", "traefik.me", "backname.io", "ip.addr.tools")
_EMBEDDED_V4 = re.compile(
    r"(?:^|[.-])((?:25[0-5]|2[0-4]\d|1?\d?\d)(?:[.-](?:25[0-5]|2[0-4]\d|1?\d?\d)){3})(?:$|[.-])"
)
_EMBEDDED_HEX = re.compile(r"(?:^|[.-])([0-9a-f]{8})(?:$|[.-])")

_NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


@dataclass(frozen=True)
class Target:
    """A URL that passed the pre-DNS checks."""

    url: str
    scheme: str
    host: str  # lower-case, no brackets, no trailing dot
    port: int
    allowed_by_override: bool  # True when --unsafe-allow-host named this host


def normalise_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def check_url(url: str, allow_hosts: Collection[str] = ()) -> Target:
    """Validate scheme and host of `url` without touching the network.

    Raises InvalidURLError for an unusable URL and RefusedError for a host the policy forbids.
    """
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # bad port, unbalanced brackets
        raise InvalidURLError(url, f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURLError(
            url, f"scheme {parts.scheme or '(none)'!r} is not allowed", "only http:// and https:// URLs"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidURLError(url, "credentials in the URL are not allowed", "use a pre-signed URL instead")
    host = normalise_host(unquote(parts.hostname or ""))
    if "@" in unquote(parts.netloc):
        raise InvalidURLError(url, "credentials in the URL are not allowed", "use a pre-signed URL instead")
    if not host:
        raise InvalidURLError(url, "the URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    allowed = host in {normalise_host(h) for h in allow_hosts}
    if not allowed:
        _check_host_name(url, host)
    return Target(url=url, scheme=scheme, host=host, port=port, allowed_by_override=allowed)


def _check_host_name(url: str, host: str) -> None:
    if host in BLOCKED_NAMES or host in METADATA_NAMES or host.endswith(".localhost"):
        raise RefusedError(url, f"host {host!r} is not allowed (local or cloud-metadata name)")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        _check_name(url, host)
        return  # a name: judged again once it resolves
    reason = address_refusal(literal)
    if reason:
        raise RefusedError(url, f"address {host} is {reason}")


def _check_name(url: str, host: str) -> None:
    if re.fullmatch(r"[0-9a-fx.]+", host) and any(ch.isdigit() for ch in host):
        return  # 2130706433, 0x7f.1: the resolver reads these as addresses, checked after DNS
    if host.endswith(INTERNAL_SUFFIXES) or "." not in host:
        raise RefusedError(url, f"host {host!r} is a cluster- or network-internal name")
    if any(host == n or host.endswith("." + n) for n in LOOPBACK_NAMES):
        raise RefusedError(url, f"host {host!r} always resolves to the loopback address")
    for service in WILDCARD_DNS:
        if host.endswith("." + service):
            prefix = host[: -len(service) - 1]
            found = [ipaddress.IPv4Address(m.replace("-", ".")) for m in _EMBEDDED_V4.findall(prefix)]
            found += [ipaddress.IPv4Address(int(m, 16)) for m in _EMBEDDED_HEX.findall(prefix)]
            for ip in found:
                reason = address_refusal(ip)
                if reason:
                    raise RefusedError(url, f"host {host!r} embeds {ip}, which is {reason}")


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` must not be fetched from, or None when it is a public unicast address."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        inner = address_refusal(embedded)
        return f"{inner} (embedded in {ip})" if inner else None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "shared address space (carrier-grade NAT, 100.64.0.0/10)"
    if ip.is_reserved or not ip.is_global:
        return "not a globally routable address"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client address; the server half is public by construction
    for net in _NAT64_PREFIXES:
        if ip in net:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_addresses(target: Target, addresses: Collection[str]) -> list[str]:
    """Refuse the target if any address its host resolved to is forbidden; return the addresses.

    All addresses are checked, not just the first: a DNS answer that mixes a public and a private
    address would otherwise let a retry or a happy-eyeballs fallback reach the private one.
    """
    if not addresses:
        raise RefusedError(target.url, f"host {target.host!r} resolved to no address")
    if target.allowed_by_override:
        return list(addresses)
    for raw in addresses:
        ip = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
        reason = address_refusal(ip)
        if reason:
            raise RefusedError(target.url, f"host {target.host!r} resolves to {ip}, which is {reason}")
    return list(addresses)
