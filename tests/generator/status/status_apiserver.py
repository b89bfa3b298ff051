"""A Kubernetes API server that answers from recorded responses, over real HTTP on 127.0.0.1.

`kaito-gen status` talks to it through the official `kubernetes` client, unmodified: the kubeconfig,
bearer-token auth, URL building, urllib3 and JSON parsing all run for real. Only the cluster is canned.

What it does, like the real API server:
* routes a request path to the recorded body named in `recorded/routes.json`; several List files are
  concatenated (an all-namespaces list is the union of the per-namespace ones);
* applies the request's `labelSelector` to List items (equality, inequality and existence requirements);
* answers unknown paths 404, bad tokens 401, forbidden prefixes 403, writes 405 — all as Kubernetes
  `Status` objects.

And what it checks, to keep `status` honest: a List must be asked for at least as narrowly as the selector
the recording was taken with (`recordedWith`), unknown query parameters are refused (400), and every
request is logged so a test can assert that status only ever GETs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from click.testing import Result

RECORDED = Path(__file__).parent / "recorded"
# The recordings were taken at this instant; AGE columns are computed against it.
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
TOKEN = "kaito-gen-status-test-token"
ALLOWED_QUERY = frozenset({"labelSelector"})

# `run_status("-n", "ml")` → the click Result of `kaito-gen status --kubeconfig <recorded> -n ml`.
RunStatus = Callable[..., Result]


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {},
        "code": code,
    }


def parse_selector(selector: str) -> list[tuple[str, str, str | None]]:
    """`a=b,c!=d,e,!f` → [(key, op, value)]; set-based requirements are not recorded, so refused."""
    out: list[tuple[str, str, str | None]] = []
    for raw in filter(None, (part.strip() for part in selector.split(","))):
        if "(" in raw or " in " in raw or " notin " in raw:
            raise ValueError(f"set-based requirement {raw!r} is not supported by the recording")
        if "!=" in raw:
            key, value = raw.split("!=", 1)
            out.append((key, "!=", value))
        elif "==" in raw:
            key, value = raw.split("==", 1)
            out.append((key, "=", value))
        elif "=" in raw:
            key, value = raw.split("=", 1)
            out.append((key, "=", value))
        elif raw.startswith("!"):
            out.append((raw[1:], "!", None))
        else:
            out.append((raw, "exists", None))
    return out


def selector_matches(requirements: Sequence[tuple[str, str, str | None]], labels: Mapping[str, str]) -> bool:
    for key, op, value in requirements:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


def implied(requirements: Sequence[tuple[str, str, str | None]], wanted: tuple[str, str, str | None]) -> bool:
    """Does every object selected by `requirements` satisfy `wanted`? (`k=v` implies `k`.)"""
    key, op, _ = wanted
    if op == "exists":
        return any(k == key and o in ("=", "exists") for k, o, _ in requirements)
    return wanted in requirements


def forbidden_message(path: str) -> str:
    """The API server's wording: `nodepools.karpenter.sh "x" is forbidden: User ... at the cluster scope`."""
    parts = path.strip("/").split("/")
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    resource, name = rest[0], (rest[1] if len(rest) > 1 else "")
    qualified = f"{resource}.{group}" if group else resource
    verb = "get" if name else "list"
    subject = f'{qualified} "{name}"' if name else qualified
    return (
        f'{subject} is forbidden: User "dev@example.com" cannot {verb} resource "{resource}" '
        f'in API group "{group}" at the cluster scope'
    )


@dataclass
class RecordedApiServer:
    """Start with `with RecordedApiServer() as server:`; `server.url` goes into a kubeconfig."""

    root: Path = RECORDED
    token: str = TOKEN
    forbidden_prefixes: Sequence[str] = ()
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.routes: dict[str, dict[str, Any]] = json.loads((self.root / "routes.json").read_text())["routes"]
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RecordedApiServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

            def _send(self, code: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path))
                code, body = server.answer(self.path, self.headers.get("Authorization", ""))
                self._send(code, body)

            def _refuse(self) -> None:
                server.requests.append((self.command, self.path))
                self._send(405, status_body(405, "MethodNotAllowed", "this recorded cluster is read-only"))

            do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="recorded-apiserver", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def answer(self, raw_path: str, authorization: str) -> tuple[int, dict[str, Any]]:
        if authorization != f"Bearer {self.token}":
            return 401, status_body(401, "Unauthorized", "Unauthorized")
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - ALLOWED_QUERY
        if unknown:
            return 400, status_body(
                400, "BadRequest", f"query parameters not in the recording: {sorted(unknown)}"
            )
        if any(parts.path.startswith(prefix) for prefix in self.forbidden_prefixes):
            return 403, status_body(403, "Forbidden", forbidden_message(parts.path))
        route = self.routes.get(parts.path)
        if route is None:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        bodies = [json.loads((self.root / name).read_text()) for name in route["files"]]
        code = int(route.get("code", 200))
        if code != 200 or "items" not in bodies[0]:
            return code, bodies[0]
        selector = query.get("labelSelector", [""])[0]
        try:
            requirements = parse_selector(selector)
            recorded = parse_selector(route.get("recordedWith", ""))
        except ValueError as exc:
            return 400, status_body(400, "BadRequest", str(exc))
        missing = [req for req in recorded if not implied(requirements, req)]
        if missing:
            return 400, status_body(
                400,
                "BadRequest",
                f"labelSelector {selector!r} is broader than the recording ({route['recordedWith']!r})",
            )
        merged = dict(bodies[0])
        items = [item for body in bodies for item in body["items"]]
        merged["items"] = [
            item for item in items if selector_matches(requirements, item["metadata"].get("labels", {}))
        ]
        return 200, merged

    def paths(self) -> Iterator[str]:
        return (path for _, path in self.requests)


def write_kubeconfig(path: Path, server: str, *, token: str = TOKEN, namespace: str = "ml") -> Path:
    """A kubeconfig with two contexts: `recorded` (current, namespace `namespace`) and `tuning`."""
    contexts = [
        {"name": "recorded", "context": {"cluster": "recorded", "user": "dev", "namespace": namespace}},
        {"name": "tuning", "context": {"cluster": "recorded", "user": "dev", "namespace": "tuning"}},
    ]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "recorded", "cluster": {"server": server}}],
        "users": [{"name": "dev", "user": {"token": token}}],
        "contexts": contexts,
        "current-context": "recorded",
    }
    path.write_text(json.dumps(doc))  # JSON is YAML: the client's loader reads it as is
    return path
