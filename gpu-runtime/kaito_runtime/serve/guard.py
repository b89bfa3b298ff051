"""ASGI middleware in front of every route: bearer auth, request body limit, and HTTP metrics.

Written as plain ASGI (not BaseHTTPMiddleware) so streamed responses pass through untouched
and the latency histogram covers the whole response, up to its last byte.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import KNOWN_ROUTES
from .protocol import APIError
from .state import ServerState

# Probes must work without credentials (kubelet has none); "/" says nothing about the model.
PUBLIC_PATHS = frozenset({"/", "/health", "/healthz"})


class BodyTooLargeError(Exception):
    pass


def error_response(path: str, err: APIError) -> Response:
    """OpenAI's error object on /v1/*; FastAPI's {"detail": ...} elsewhere (Kaito's legacy shape)."""
    if path.startswith("/v1/") or path == "/v1":
        body: dict[str, Any] = {
            "error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}
        }
    else:
        body = {"detail": err.message}
    return JSONResponse(body, status_code=err.status, headers=err.headers or None)


class GuardMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        metrics = self.state.metrics
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                metrics.latency.labels(route).observe(time.perf_counter() - started)

        try:
            rejection = self._check(scope, path)
            if rejection is not None:
                await rejection(scope, receive, send_wrapper)
                return
            await self.app(scope, self._limited(receive), send_wrapper)
        finally:
            metrics.requests.labels(route, str(status["code"])).inc()

    def _check(self, scope: Scope, path: str) -> Response | None:
        settings = self.state.settings
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if settings.api_keys and path not in PUBLIC_PATHS:
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not any(
                hmac.compare_digest(token.encode(), key.encode()) for key in settings.api_keys
            ):
                err = APIError(
                    401,
                    "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
                    type="authentication_error",
                    code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
                return error_response(path, err)
        length = headers.get("content-length")
        limit = settings.limits.max_request_bytes
        if length is not None:
            if not length.isdigit():
                return error_response(path, APIError(400, "Invalid Content-Length header."))
            if int(length) > limit:
                return error_response(path, _too_large(limit))
        return None

    def _limited(self, receive: Receive) -> Receive:
        limit = self.state.settings.limits.max_request_bytes
        seen = {"bytes": 0}

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > limit:
                    # Chunked uploads have no Content-Length: stop reading once over the limit.
                    raise BodyTooLargeError(_too_large(limit).message)
            return message

        return wrapped


def _too_large(limit: int) -> APIError:
    return APIError(413, f"Request body is larger than {limit} bytes.", type="request_too_large")
