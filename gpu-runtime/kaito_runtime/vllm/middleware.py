"""The ASGI middleware `kaito-vllm` hands to vLLM with `--middleware` (vLLM's public extension point).

It adds, in front of vLLM's own routes:
- a bound on every request body (413), read before vLLM sees the request;
- the queue-depth limiter: 429 + Retry-After once more inference requests are in flight than the
  engine runs at once (max_num_seqs) plus the allowed waiting ones, counted in
  `kaito_ratelimit_rejected_total` (vLLM's /metrics serves the same default registry);
- Kaito's `POST /chat` (the seeds' shape, parsed by the transformers server's own torch-free
  `kaito_runtime.serve.protocol`), answered by calling vLLM's public `/tokenize` and
  `/v1/completions` routes of the same app in-process, so the same engine, validation, limits and
  metrics serve it.

Nothing here imports vLLM. Settings come from the KAITO_VLLM_SETTINGS environment variable (JSON),
set by `server.py` before vLLM builds the app (it also reaches API-server subprocesses).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..serve.protocol import APIError, bad, parse_legacy_chat
from .args import SETTINGS_ENV

REJECTED = Counter(
    "kaito_ratelimit_rejected_total",
    "Inference requests answered 429 because too many requests were waiting for the engine.",
)


# When neither the flags nor the engine tell max_num_seqs (vLLM's usual default).
FALLBACK_MAX_NUM_SEQS = 256


@dataclass(frozen=True)
class Settings:
    served_model: str
    rate_limit: bool
    max_num_seqs: int | None  # None: read from the engine's config at the first request
    max_waiting: int | None  # None: max_num_seqs (Kaito's bound)
    max_body_bytes: int
    retry_after_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        raw = json.loads(os.environ.get(SETTINGS_ENV, "{}"))

        def opt_int(key: str) -> int | None:
            value = raw.get(key)
            return None if value is None else int(value)

        return cls(
            served_model=str(raw.get("served_model", "")),
            rate_limit=bool(raw.get("rate_limit", True)),
            max_num_seqs=opt_int("max_num_seqs"),
            max_waiting=opt_int("max_waiting"),
            max_body_bytes=int(raw.get("max_body_bytes", 4 * 1024 * 1024)),
            retry_after_seconds=int(raw.get("retry_after_seconds", 1)),
        )


def _engine_max_num_seqs(scope: Scope) -> int | None:
    """max_num_seqs as the engine resolved it (vLLM's public EngineClient.vllm_config)."""
    app = scope.get("app")
    client = getattr(getattr(app, "state", None), "engine_client", None)
    try:
        value = client.vllm_config.scheduler_config.max_num_seqs  # type: ignore[union-attr]
    except AttributeError:
        return None
    return int(value) if isinstance(value, int) else None


def _is_inference(method: str, path: str) -> bool:
    return method == "POST" and (path == "/chat" or path.startswith("/v1/"))


def _error_body(err: APIError) -> bytes:
    return json.dumps(
        {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
    ).encode()


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise APIError(400, "Content-Length is not an integer.") from None
            if declared > limit:
                raise _TooLargeError
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise _TooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_payload(body: bytes) -> Any:
    """The /chat body as JSON, or a 400 (as kaito-serve answers): never an exception out of the middleware,
    which uvicorn would turn into a 500 (deep nesting raises RecursionError, not a ValueError)."""
    if not body.strip():
        raise bad("Request body is empty; send a JSON object.")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise bad("Request body is not UTF-8 encoded JSON.") from None
    except ValueError as exc:
        raise bad(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad("Request body is nested too deeply.") from None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for the client's disconnect, as usual

    return replay


class KaitoMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.settings = Settings.from_env()
        self.inflight = 0
        self.max_inflight: int | None = None  # running + waiting; resolved at the first request

    def _cap(self, scope: Scope) -> int:
        if self.max_inflight is None:
            s = self.settings
            seqs = s.max_num_seqs or _engine_max_num_seqs(scope) or FALLBACK_MAX_NUM_SEQS
            waiting = seqs if s.max_waiting is None else s.max_waiting
            self.max_inflight = seqs + waiting
        return self.max_inflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        s = self.settings
        inference = _is_inference(scope["method"], scope["path"])
        if inference and s.rate_limit and self.inflight >= self._cap(scope):
            REJECTED.inc()
            err = APIError(
                429,
                f"Too many requests are waiting for the engine ({self.inflight} in flight); "
                f"retry after {s.retry_after_seconds} s.",
                type="rate_limit_error",
                code="rate_limited",
            )
            await _respond(send, 429, _error_body(err), {"Retry-After": str(s.retry_after_seconds)})
            return
        if inference:
            self.inflight += 1
        try:
            try:
                body = await _read_body(scope, receive, s.max_body_bytes)
            except _TooLargeError:
                err = APIError(
                    413, f"Request body is larger than {s.max_body_bytes} bytes.", code="too_large"
                )
                await _respond(send, 413, _error_body(err))
                return
            except APIError as exc:
                await _respond(send, exc.status, _error_body(exc))
                return
            except ConnectionError:
                return
            if scope["path"] == "/chat" and scope["method"] == "POST":
                await self._chat(scope, body, receive, send)
            else:
                await self.app(scope, _replay(body, receive), send)
        finally:
            if inference:
                self.inflight -= 1

    # ------------------------------------------------------------------ Kaito /chat

    async def _chat(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        try:
            payload = _json_payload(body)
            result = await self._legacy_chat(scope, payload, receive)
        except APIError as exc:
            await _respond(send, exc.status, _error_body(exc), exc.headers)
            return
        except _UpstreamError as exc:
            await _respond(
                send, exc.status, exc.body, {"Retry-After": exc.retry_after} if exc.retry_after else None
            )
            return
        await _respond(send, 200, json.dumps({"Result": result}).encode())

    async def _legacy_chat(self, scope: Scope, payload: Any, receive: Receive) -> str:
        parsed = parse_legacy_chat(payload)
        spec = parsed.spec
        model = self.settings.served_model
        tok_req: dict[str, Any] = {"model": model}
        if parsed.prompt is not None:
            tok_req.update(prompt=parsed.prefix + parsed.prompt, add_special_tokens=True)
        else:
            tok_req.update(messages=parsed.messages, add_generation_prompt=True)
        tok = await self._call(scope, receive, "/tokenize", tok_req)
        ids = list(tok.get("tokens") or [])
        model_len = int(tok.get("max_model_len") or 0)
        if not ids:
            raise bad("The prompt is empty.", "prompt")
        if parsed.truncate_left and spec.max_new_tokens is not None and model_len:
            keep = model_len - spec.max_new_tokens
            if keep > 0:
                ids = ids[-keep:]
        n = len(ids)
        if model_len and n >= model_len:
            raise bad(
                f"The prompt is {n} tokens; this model's maximum context length is {model_len}.", "prompt"
            )
        if spec.max_new_tokens is not None:
            new = spec.max_new_tokens
        else:
            max_length = spec.max_length or 0
            new = max_length - n
            if new < 1:
                raise bad(
                    f"Input length of input_ids is {n}, but generate_kwargs.max_length is set to "
                    f"{max_length}. Increase max_length or set generate_kwargs.max_new_tokens.",
                    "max_length",
                )
        if model_len:
            # Like HF generate, never run past the model's context: clamp instead of failing old clients.
            new = min(new, model_len - n)
        min_new = min(max(spec.min_new_tokens, spec.min_length - n, 0), new)
        req: dict[str, Any] = {
            "model": model,
            "prompt": ids,
            "max_tokens": new,
            "min_tokens": min_new,
            "temperature": spec.temperature if spec.do_sample else 0.0,
            "top_p": spec.top_p,
            "repetition_penalty": spec.repetition_penalty,
        }
        if spec.do_sample and spec.top_k > 0:
            req["top_k"] = spec.top_k
        if spec.seed is not None:
            req["seed"] = spec.seed
        if spec.stop:
            req["stop"] = list(spec.stop)
        if spec.stop_token_ids:
            req["stop_token_ids"] = sorted(spec.stop_token_ids)
        out = await self._call(scope, receive, "/v1/completions", req)
        try:
            text = str(out["choices"][0]["text"])
        except (KeyError, IndexError, TypeError):
            raise APIError(
                502, "The engine returned an unexpected completion.", type="server_error"
            ) from None
        if parsed.prompt is not None and parsed.return_full_text:
            text = parsed.prompt + text
        return text

    async def _call(self, scope: Scope, receive: Receive, path: str, payload: dict[str, Any]) -> Any:
        """POST `payload` to one of vLLM's public routes of the same app, in-process."""
        body = json.dumps(payload).encode()
        headers = [
            (k, v) for k, v in scope.get("headers", []) if k in (b"authorization", b"x-request-id", b"host")
        ]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        inner = {**scope, "path": path, "raw_path": path.encode(), "query_string": b"", "headers": headers}
        status = 500
        resp_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, resp_headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                resp_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        call: Callable[[Scope, Receive, Send], Awaitable[None]] = self.app
        await call(inner, _replay(body, receive), capture)
        data = b"".join(chunks)
        if status != 200:
            retry = next((v.decode() for k, v in resp_headers if k.lower() == b"retry-after"), "")
            raise _UpstreamError(status, data, retry)
        return json.loads(data)


class _UpstreamError(Exception):
    def __init__(self, status: int, body: bytes, retry_after: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.retry_after = retry_after
