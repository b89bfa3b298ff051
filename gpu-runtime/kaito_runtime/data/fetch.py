"""Download tuning inputs: one file per URL, Kaito's SSRF rules, retries, a size cap, atomic rename.

Behaviour kept from Kaito's `data-downloader.sh`: the file name is the URL path's last segment without
`?query`/`#fragment`; success needs HTTP 200 and a non-empty body; 3 attempts by default. What it adds:
the SSRF check after DNS and on every redirect, a byte cap, exponential backoff, and a write to a hidden
temporary file that is renamed into place only when complete, so a killed download never leaves a
truncated file that the tuning container would read as data.

DNS rebinding: the host is resolved once per attempt, every address is checked, and the TCP connection
goes to one of those checked addresses (`_PinnedHTTPConnection`) instead of letting http.client resolve
the name again. TLS still verifies the certificate against the host name (SNI), not the address.
Proxies from the environment are deliberately not used: a proxy would do its own resolution.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

from kaito_runtime.data.errors import FetchError, InvalidURLError
from kaito_runtime.data.ssrf import Target, check_addresses, check_url

USER_AGENT = "kaito-data-fetch/1"
MAX_REDIRECTS = 10
CHUNK = 1 << 20
# Statuses worth another attempt: the server or something in front of it is having a bad moment.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0

Resolver = Callable[[str, int], list[str]]
Logger = Callable[[str], None]


@dataclass(frozen=True)
class FetchOptions:
    dest: Path
    max_bytes: int = 50 * 1024**3
    attempts: int = 3
    backoff_s: float = 2.0
    connect_timeout_s: float = 30.0
    read_timeout_s: float = 120.0
    allow_hosts: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FetchResult:
    url: str
    path: Path
    size: int
    sha256: str


class _RetryableError(FetchError):
    """A failure another attempt may fix (network error, 5xx, 429)."""

    def __init__(self, url: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(url, message)
        self.retry_after_s = retry_after_s


def file_name_for(url: str) -> str:
    """The local file name for `url`: the last path segment, percent-decoded, without query or fragment."""
    raw = PurePosixPath(urlsplit(url).path).name
    name = unquote(raw)
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\x00" in name:
        raise InvalidURLError(
            url,
            "the URL path has no usable file name",
            "the URL must end in a file name, e.g. .../train.parquet",
        )
    if name.startswith("."):
        raise InvalidURLError(
            url, f"file name {name!r} is hidden", "hidden names are reserved for partial files"
        )
    if len(name.encode()) > 255:
        raise InvalidURLError(url, "the file name is longer than 255 bytes")
    return name


def resolve(host: str, port: int) -> list[str]:
    """All addresses `host` resolves to (stdlib DNS; injectable for callers that need another resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def plan(urls: Collection[str], allow_hosts: Collection[str] = ()) -> list[tuple[str, str]]:
    """Check every URL before downloading anything: (url, file name) pairs, or the first error."""
    planned: list[tuple[str, str]] = []
    used: dict[str, str] = {}
    for url in urls:
        check_url(url, allow_hosts)
        name = file_name_for(url)
        if name in used:
            raise InvalidURLError(
                url,
                f"file name {name!r} is also the name for {used[name]}",
                "each URL must end in a distinct name",
            )
        used[name] = url
        planned.append((url, name))
    return planned


def fetch_all(
    urls: Collection[str], options: FetchOptions, log: Logger, resolver: Resolver = resolve
) -> list[FetchResult]:
    """Download every URL into `options.dest`. Stops at the first URL that fails for good."""
    planned = plan(urls, options.allow_hosts)
    options.dest.mkdir(parents=True, exist_ok=True)
    return [_fetch_with_retries(url, options.dest / name, options, log, resolver) for url, name in planned]


def _fetch_with_retries(
    url: str, path: Path, options: FetchOptions, log: Logger, resolver: Resolver
) -> FetchResult:
    attempts = max(1, options.attempts)
    for attempt in range(1, attempts + 1):
        try:
            return _fetch_once(url, path, options, resolver)
        except _RetryableError as exc:
            if attempt == attempts:
                raise FetchError(
                    url, f"{exc.message} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
                ) from None
            delay = options.backoff_s * 2 ** (attempt - 1)
            if exc.retry_after_s is not None:
                delay = max(delay, min(exc.retry_after_s, MAX_RETRY_AFTER_S))
            log(f"{url}: attempt {attempt}/{attempts} failed: {exc.message}; retrying in {delay:g}s")
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _fetch_once(url: str, path: Path, options: FetchOptions, resolver: Resolver) -> FetchResult:
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        try:
            target = check_url(current, options.allow_hosts)
            try:
                addresses = check_addresses(target, resolver(target.host, target.port))
            except socket.gaierror as exc:
                raise _RetryableError(
                    current, f"cannot resolve host {target.host!r}: {exc.strerror}"
                ) from None
        except FetchError as exc:
            if hop == 0:
                raise
            # Name the original URL, and say where the redirect went: that is what the user must fix.
            exc.message = f"redirected to {current}: {exc.message}"
            exc.url = url
            raise
        conn = _connect(target, addresses, options)
        try:
            response = _request(conn, target, url)
            if response.status in {301, 302, 303, 307, 308}:
                location = response.getheader("Location")
                if not location:
                    raise FetchError(url, f"HTTP {response.status} redirect without a Location header")
                current = urljoin(current, location)
                continue
            return _save(url, response, path, options)
        finally:
            conn.close()
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")


def _connect(target: Target, addresses: list[str], options: FetchOptions) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target.host, target.port, addresses, options)
    return _PinnedHTTPConnection(target.host, target.port, addresses, options)


def _request(conn: http.client.HTTPConnection, target: Target, url: str) -> http.client.HTTPResponse:
    parts = urlsplit(target.url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        return conn.getresponse()
    except ssl.SSLCertVerificationError as exc:
        raise FetchError(url, f"TLS certificate of {target.host} not trusted: {exc.verify_message}") from None
    except ssl.SSLError as exc:
        raise _RetryableError(url, f"TLS error talking to {target.host}: {exc.reason or exc}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _RetryableError(
            url, f"cannot connect to {target.host}:{target.port}: {_describe(exc)}"
        ) from None


def _save(url: str, response: http.client.HTTPResponse, path: Path, options: FetchOptions) -> FetchResult:
    if response.status != 200:
        message = f"HTTP {response.status} {response.reason}"
        if response.status in RETRYABLE_STATUSES:
            raise _RetryableError(url, message, _retry_after(response))
        hint = (
            "check the URL and that it is readable without credentials"
            if response.status in {401, 403, 404}
            else ""
        )
        raise FetchError(url, message, hint)
    length = response.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > options.max_bytes:
        raise FetchError(
            url,
            f"the server announces {int(length)} bytes, over the cap of {options.max_bytes}",
            "raise --max-bytes",
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _RetryableError(
                        url, f"connection lost after {size} bytes: {_describe(exc)}"
                    ) from None
                if not chunk:
                    break
                size += len(chunk)
                if size > options.max_bytes:
                    raise FetchError(
                        url, f"the body exceeds the cap of {options.max_bytes} bytes", "raise --max-bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and length.isdigit() and size != int(length):
            raise _RetryableError(url, f"got {size} bytes, the server announced {length}")
        if size == 0:
            raise FetchError(
                url, "the server returned an empty body", "the URL must point at a non-empty file"
            )
        tmp.chmod(0o644)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return FetchResult(url=url, path=path, size=size, sha256=digest.hexdigest())


def _retry_after(response: http.client.HTTPResponse) -> float | None:
    value = response.getheader("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _connect_any(addresses: list[str], port: int, options: FetchOptions) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        try:
            sock = socket.create_connection((address, port), timeout=options.connect_timeout_s)
        except OSError as exc:
            last = exc
            continue
        sock.settimeout(options.read_timeout_s)
        return sock
    assert last is not None
    raise last


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP connection to one of the pre-checked addresses; Host header still names the host."""

    def __init__(self, host: str, port: int, addresses: list[str], options: FetchOptions) -> None:
        super().__init__(host, port, timeout=options.read_timeout_s)
        self._addresses = addresses
        self._options = options

    def connect(self) -> None:
        self.sock = _connect_any(self._addresses, self.port, self._options)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a pre-checked address, with the certificate verified against the host name."""

    def __init__(self, host: str, port: int, addresses: list[str], options: FetchOptions) -> None:
        super().__init__(host, port, timeout=options.read_timeout_s, context=ssl.create_default_context())
        self._addresses = addresses
        self._options = options

    def connect(self) -> None:
        sock = _connect_any(self._addresses, self.port, self._options)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
