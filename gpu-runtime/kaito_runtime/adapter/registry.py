"""A registry session on top of oras-py, with the workarounds measured in OCI.md.

1. oras' `Registry.do_request` retries *any* exception 5 times with sleeps adding up to ~131 s, so a dead
   registry takes two minutes to report. `_Registry` calls the undecorated function and retries only
   transient failures (connection reset, 502/503/504), 3 times with short backoff, after the probe
   has shown the registry answers at all.
2. oras' default `token` auth backend reads `Basic realm="..."` as a token server URL; the backend is
   chosen from what `GET /v2/` actually asks for (`Basic` -> "basic", `Bearer` -> "token").
3. With Basic auth the header is set on the session up front: otherwise every request is sent twice
   (once to collect the 401), which uploads every blob twice and breaks large PUTs over TLS.
Also: every request gets a timeout (oras sets none), and credentials come only from the docker config
we were given (oras' `load_configs` always adds ~/.docker/config.json).

`open_session` probes `GET /v2/` first and turns what it sees into one clear error (unreachable, TLS
mismatch, untrusted certificate, missing or wrong credentials) before oras is asked to do anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any

import oras.auth.utils
import oras.container
import oras.provider
import requests

from kaito_runtime.adapter.dockerconfig import Credentials
from kaito_runtime.adapter.errors import (
    AuthError,
    NotFoundError,
    RegistryError,
    TLSError,
    UnreachableError,
)
from kaito_runtime.adapter.reference import ImageRef

Logger = Callable[[str], None]

_UNDECORATED_DO_REQUEST = oras.provider.Registry.do_request.__wrapped__
_TRANSIENT_STATUSES = frozenset({502, 503, 504})
_NOT_TLS_MARKERS = (
    "wrong version number",
    "wrong_version_number",
    "record layer failure",
    "packet length too long",
)


class _TimeoutSession(requests.Session):
    """A requests session that never waits forever (oras passes no timeout)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.trust_env = False  # no proxies or netrc from the environment: only the docker config counts
        self.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # as oras does (Harbor CSRF cookies)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", (min(30.0, self.timeout_s), self.timeout_s))
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


class _Registry(oras.provider.Registry):  # type: ignore[misc]
    """oras' Registry with bounded, transient-only retries (see module docstring, point 1)."""

    attempts = 3
    backoff_s = 1.0

    def do_request(
        self,
        url: str,
        method: str = "GET",
        data: Any = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response: requests.Response = _UNDECORATED_DO_REQUEST(
                    self, url, method, data, dict(headers or {}), json, stream
                )
            except requests.exceptions.SSLError:
                raise
            except (requests.ConnectionError, requests.Timeout):
                if last:
                    raise
            else:
                if response.status_code not in _TRANSIENT_STATUSES or last:
                    return response
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class RegistrySession:
    ref: ImageRef
    client: Any  # _Registry; oras has no type information
    base_url: str  # scheme://host[:port]

    def manifest_url(self, reference: str) -> str:
        return f"{self.base_url}/v2/{self.ref.repository}/manifests/{reference}"

    def container(self) -> Any:
        """An oras Container for this repository, built field by field.

        oras' own parser misreads `localhost/x`, and repository components with a dot, as a registry host.
        """
        container = oras.container.Container(f"{self.ref.api_host}/x:latest", registry=self.ref.api_host)
        namespace, _, repository = self.ref.repository.rpartition("/")
        container.registry = self.ref.api_host
        container.namespace = namespace or None
        container.repository = repository
        container.tag = self.ref.tag or "latest"
        container.digest = None
        return container


def open_session(
    ref: ImageRef,
    creds: Credentials | None,
    *,
    plain_http: bool,
    ca_file: Path | None,
    timeout_s: float,
    log: Logger,
) -> RegistrySession:
    """Probe the registry and return an authenticated session, or raise a RegistryError saying why not."""
    host = ref.api_host
    if plain_http:
        schemes = ["http"]
    elif ref.is_loopback() and ca_file is None:
        schemes = ["https", "http"]  # like docker: a registry on this machine may speak plain HTTP
    else:
        schemes = ["https"]
    verify: bool | str = str(ca_file.resolve()) if ca_file else True
    for index, scheme in enumerate(schemes):
        session = _TimeoutSession(timeout_s)
        base_url = f"{scheme}://{host}"
        try:
            response = session.get(f"{base_url}/v2/", verify=verify if scheme == "https" else False)
        except requests.exceptions.SSLError as exc:
            text = str(exc).lower()
            if any(marker in text for marker in _NOT_TLS_MARKERS):
                if index + 1 < len(schemes):
                    log(f"{host} does not speak TLS; using plain HTTP (loopback registry)")
                    continue
                raise TLSError(
                    f"registry {host} does not speak TLS on this port",
                    "pass --plain-http if the network to it is trusted",
                ) from None
            if "certificate_verify_failed" in text or "certificate verify failed" in text:
                raise TLSError(
                    f"TLS certificate of registry {host} is not trusted ({_reason(exc)})",
                    "pass --ca-file with the CA that signed it",
                ) from None
            raise TLSError(f"TLS handshake with registry {host} failed: {_reason(exc)}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise UnreachableError(
                f"registry {host} is unreachable: {_reason(exc)}", "check the image's registry host and port"
            ) from None
        return _authenticate(
            ref=ref,
            creds=creds,
            session=session,
            base_url=base_url,
            probe=response,
            verify=verify if scheme == "https" else False,
            log=log,
        )
    raise AssertionError("unreachable")  # pragma: no cover


def _authenticate(
    *,
    ref: ImageRef,
    creds: Credentials | None,
    session: _TimeoutSession,
    base_url: str,
    probe: requests.Response,
    verify: bool | str,
    log: Logger,
) -> RegistrySession:
    host = ref.api_host
    if probe.status_code == 400 and "https" in probe.text.lower() and base_url.startswith("http:"):
        raise TLSError(
            f"registry {host} only speaks TLS", "drop --plain-http (and pass --ca-file for a private CA)"
        )
    challenge = probe.headers.get("Www-Authenticate", "")
    scheme = challenge.split(" ", 1)[0].lower()
    if probe.status_code == 200:
        backend = "basic" if creds else "token"
    elif probe.status_code == 401 and scheme in {"basic", "bearer"}:
        if creds is None:
            raise AuthError(
                f"registry {host} requires authentication and no credentials for it were given",
                "pass --docker-config with an 'auths' entry for this registry (the mounted pull/push secret)",
            )
        backend = "basic" if scheme == "basic" else "token"
    else:
        raise RegistryError(
            f"GET {base_url}/v2/ answered HTTP {probe.status_code}: this is not an OCI registry"
        )

    client = _Registry(
        hostname=host, insecure=base_url.startswith("http:"), tls_verify=verify, auth_backend=backend
    )
    client.session = session
    client.auth.session = session
    client.auth.prefix = "http" if base_url.startswith("http:") else "https"
    if creds is not None:
        client.auth.set_basic_auth(creds.username, creds.password)
        if backend == "basic":
            session.headers.update(client.auth.get_auth_header())
            check = session.get(f"{base_url}/v2/", verify=verify)
            if check.status_code in {401, 403}:
                raise AuthError(
                    f"authentication to registry {host} failed: wrong username or password",
                    f"check the credentials in {creds.source}",
                )
        elif probe.status_code == 401:
            token = client.auth.request_token(oras.auth.utils.parse_auth_header(challenge))
            if not token:
                raise AuthError(
                    f"authentication to registry {host} failed: its token service refused the credentials",
                    f"check the credentials in {creds.source}",
                )
    else:
        client.auth._basic_auth = None  # ignore ORAS_USER/ORAS_PASS from the environment
    log(f"connected to {base_url} ({'as ' + creds.username if creds else 'anonymously'})")
    return RegistrySession(ref=ref, client=client, base_url=base_url)


def raise_for_response(response: requests.Response, what: str, ref: ImageRef) -> None:
    """Turn a failed registry response into the matching AdapterError (never returns on failure)."""
    status = response.status_code
    codes, messages = _registry_errors(response)
    detail = "; ".join(messages) or response.reason or f"HTTP {status}"
    if status == 401:
        raise AuthError(f"{what}: registry {ref.api_host} refused the credentials ({detail})")
    if status == 403:
        raise AuthError(
            f"{what}: the credentials lack permission on {ref.api_host}/{ref.repository} ({detail})",
            "the push secret needs push rights on this repository",
        )
    if status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}:
        raise NotFoundError(f"{what}: {ref} not found ({detail})", "check the repository name and tag")
    raise RegistryError(f"{what}: registry answered HTTP {status} ({detail})")


def _registry_errors(response: requests.Response) -> tuple[set[str], list[str]]:
    try:
        body = response.json()
    except ValueError:
        return set(), []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return set(), []
    codes = {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}
    messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
    return codes, messages


def _reason(exc: BaseException) -> str:
    """The innermost useful text of a requests/urllib3 exception chain."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker
    marker = "certificate verify failed"
    if marker in text:
        return text[text.index(marker) :].split("(", 1)[0].rstrip(" ')\"")
    return text[:300]
