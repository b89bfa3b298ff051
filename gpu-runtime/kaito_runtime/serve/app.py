"""The FastAPI app: `create_app(settings, model_loader)`.

Nothing happens at import time or in the factory beyond wiring: the model is loaded in a
background thread once the server starts, and /health answers 503 until it is ready.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .engine import Engine, EngineStoppedError, Event, GenerationRequest, QueueFullError
from .guard import BodyTooLargeError, GuardMiddleware, error_response
from .loader import LoadedModel, ModelLoadError, load_model
from .metrics import CONTENT_TYPE, Metrics
from .protocol import (
    APIError,
    GenerationSpec,
    bad,
    parse_chat_completion,
    parse_completion,
    parse_legacy_chat,
)
from .sampling import SamplingParams
from .settings import Settings

log = logging.getLogger("kaito_runtime.serve")

ModelLoader = Callable[[Settings], LoadedModel]


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics
    loaded: LoadedModel | None = None
    engine: Engine | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    draining: bool = False
    load_error: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    # Called (from the loader thread) when loading fails; the CLI uses it to exit non-zero.
    on_fatal: Callable[[str], None] | None = None


def create_app(settings: Settings, model_loader: ModelLoader = load_model) -> FastAPI:
    metrics = Metrics()
    state = ServerState(settings=settings, metrics=metrics)

    def load() -> None:
        try:
            loaded = model_loader(settings)
            engine = Engine(loaded, settings.limits.max_batch_size, settings.limits.max_queue, metrics)
            engine.start()
            state.loaded, state.engine = loaded, engine
            metrics.model_load_seconds.set(loaded.load_seconds)
            metrics.model_loaded.set(1)
            state.ready.set()
            log.info(
                "ready: serving %s%s on %s:%d (max batch %d, max queue %d)",
                settings.served_model_name,
                f" + adapters {', '.join(loaded.adapter_routes)}" if loaded.adapter_routes else "",
                settings.host,
                settings.port,
                settings.limits.max_batch_size,
                settings.limits.max_queue,
            )
        except ModelLoadError as exc:
            _fatal(str(exc))
        except Exception as exc:  # anything else is still a startup failure, reported once, clearly
            log.exception("model loading failed")
            _fatal(f"model loading failed: {type(exc).__name__}: {exc}")

    def _fatal(message: str) -> None:
        state.load_error = message
        log.error("startup failed: %s", message)
        if state.on_fatal is not None:
            state.on_fatal(message)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        threading.Thread(target=load, name="kaito-loader", daemon=True).start()
        yield
        if state.engine is not None:
            state.engine.stop(timeout=10.0)

    app = FastAPI(title="kaito-serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.kaito = state
    app.add_middleware(GuardMiddleware, state=state)
    _install_error_handlers(app)
    _install_routes(app, state)
    return app


# --------------------------------------------------------------------------- errors


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        return error_response(request.url.path, exc)

    @app.exception_handler(BodyTooLargeError)
    async def too_large(request: Request, exc: BodyTooLargeError) -> Response:
        return error_response(request.url.path, APIError(413, str(exc), type="request_too_large"))

    @app.exception_handler(ClientGoneError)
    async def client_gone(request: Request, exc: ClientGoneError) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} not allowed on {request.url.path}"
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(
            request.url.path, APIError(exc.status_code, message, type=kind, headers=exc.headers)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(
            request.url.path, APIError(500, f"internal error: {type(exc).__name__}", type="server_error")
        )


# --------------------------------------------------------------------------- routes


def _install_routes(app: FastAPI, state: ServerState) -> None:
    settings = state.settings

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"message": "Server is running"}

    async def health() -> Response:
        if state.ready.is_set() and not state.draining:
            return JSONResponse({"status": "Healthy"})
        if state.draining:
            return JSONResponse({"status": "Draining", "detail": "server is shutting down"}, status_code=503)
        if state.load_error:
            return JSONResponse({"status": "Failed", "detail": state.load_error}, status_code=503)
        return JSONResponse({"status": "Loading", "detail": "Model not initialized"}, status_code=503)

    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/healthz", health, methods=["GET"])

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [
            {
                "id": settings.served_model_name,
                "object": "model",
                "created": state.created,
                "owned_by": "kaito",
            }
        ]
        for spec in settings.adapters:
            data.append(
                {
                    "id": spec.name,
                    "object": "model",
                    "created": state.created,
                    "owned_by": "kaito",
                    "parent": settings.served_model_name,
                    "strength": spec.strength,
                }
            )
        return {"object": "list", "data": data}

    @app.post("/chat")
    async def legacy_chat(request: Request) -> Response:
        loaded, engine = _require_ready(state)
        parsed = parse_legacy_chat(await _json_body(request))
        spec = parsed.spec
        if parsed.prompt is not None:
            text = parsed.prefix + parsed.prompt
            prompt_ids = await asyncio.to_thread(_encode, loaded, text, True)
        else:
            assert parsed.messages is not None
            prompt_ids = await asyncio.to_thread(_chat_ids, loaded, parsed.messages)
        if parsed.truncate_left and spec.max_new_tokens is not None:
            keep = loaded.max_model_len - spec.max_new_tokens
            if keep > 0:
                prompt_ids = prompt_ids[-keep:]
        params = _legacy_params(spec, len(prompt_ids), loaded, settings.limits.max_tokens_limit)
        stream = _submit(
            state, engine=engine, prompt_ids=prompt_ids, params=params, adapter=None, request=request
        )
        result = await _collect(request, stream)
        text = result.text
        if parsed.prompt is not None and parsed.return_full_text:
            text = parsed.prompt + text
        return JSONResponse({"Result": text})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        loaded, engine = _require_ready(state)
        parsed = parse_chat_completion(await _json_body(request))
        name, adapter = _resolve_model(state, parsed.model)
        prompt_ids = await asyncio.to_thread(_chat_ids, loaded, parsed.messages)
        params = _openai_params(
            parsed.spec, len(prompt_ids), loaded, settings.limits.max_tokens_limit, "messages"
        )
        stream = _submit(
            state, engine=engine, prompt_ids=prompt_ids, params=params, adapter=adapter, request=request
        )
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if parsed.stream:
            return _sse(
                _chat_chunks(
                    request, stream, rid=rid, created=created, model=name, include_usage=parsed.include_usage
                )
            )
        result = await _collect(request, stream)
        return JSONResponse(
            {
                "id": rid,
                "object": "chat.completion",
                "created": created,
                "model": name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": result.text},
                        "logprobs": None,
                        "finish_reason": result.finish_reason,
                    }
                ],
                "usage": result.usage(),
                "system_fingerprint": None,
            }
        )

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        loaded, engine = _require_ready(state)
        parsed = parse_completion(await _json_body(request))
        name, adapter = _resolve_model(state, parsed.model)
        if isinstance(parsed.prompt, str):
            prompt_ids = await asyncio.to_thread(_encode, loaded, parsed.prompt, True)
            prompt_text = parsed.prompt
        else:
            vocab = _vocab_size(loaded)
            if max(parsed.prompt) >= vocab:
                raise bad(
                    f"'prompt' contains token id {max(parsed.prompt)}, outside the vocabulary "
                    f"(size {vocab}).",
                    "prompt",
                )
            prompt_ids = list(parsed.prompt)
            prompt_text = loaded.tokenizer.decode(prompt_ids, skip_special_tokens=True)
        params = _openai_params(
            parsed.spec, len(prompt_ids), loaded, settings.limits.max_tokens_limit, "prompt"
        )
        stream = _submit(
            state, engine=engine, prompt_ids=prompt_ids, params=params, adapter=adapter, request=request
        )
        rid = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        echo = prompt_text if parsed.echo else ""
        if parsed.stream:
            return _sse(
                _completion_chunks(
                    request,
                    stream,
                    rid=rid,
                    created=created,
                    model=name,
                    include_usage=parsed.include_usage,
                    echo=echo,
                )
            )
        result = await _collect(request, stream)
        return JSONResponse(
            {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": name,
                "choices": [
                    {
                        "index": 0,
                        "text": echo + result.text,
                        "logprobs": None,
                        "finish_reason": result.finish_reason,
                    }
                ],
                "usage": result.usage(),
            }
        )


# --------------------------------------------------------------------------- request helpers


def _require_ready(state: ServerState) -> tuple[LoadedModel, Engine]:
    retry = {"Retry-After": str(state.settings.limits.retry_after_seconds)}
    if state.draining:
        raise APIError(
            503,
            "The server is shutting down; retry on another replica.",
            type="service_unavailable",
            headers=retry,
        )
    if state.loaded is None or state.engine is None:
        raise APIError(
            503, "The model is still loading; retry shortly.", type="service_unavailable", headers=retry
        )
    return state.loaded, state.engine


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise bad("Request body is empty; send a JSON object.")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise bad("Request body is not UTF-8 encoded JSON.") from None
    except json.JSONDecodeError as exc:
        raise bad(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad("Request body is nested too deeply.") from None


def _resolve_model(state: ServerState, model: str | None) -> tuple[str, str | None]:
    """OpenAI `model` -> (name to echo, peft adapter or None for the default model)."""
    served = state.settings.served_model_name
    if model is None or model == served:
        return served, None
    assert state.loaded is not None
    adapter = state.loaded.adapter_routes.get(model)
    if adapter is None:
        available = ", ".join([served, *state.loaded.adapter_routes])
        raise APIError(
            404,
            f"The model '{model}' does not exist. Available models: {available}.",
            param="model",
            code="model_not_found",
        )
    return model, adapter


def _encode(loaded: LoadedModel, text: str, special: bool) -> list[int]:
    ids = list(loaded.tokenizer(text, add_special_tokens=special)["input_ids"])
    if not ids:
        bos = loaded.tokenizer.bos_token_id
        if bos is None:
            raise bad("The prompt is empty.", "prompt")
        ids = [int(bos)]
    return ids


def _chat_ids(loaded: LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    try:
        text = loaded.tokenizer.apply_chat_template(
            messages, chat_template=loaded.chat_template, add_generation_prompt=True, tokenize=False
        )
    except Exception as exc:  # jinja raises TemplateError and friends for conversations it rejects
        raise bad(f"The chat template rejected these messages: {exc}", "messages") from None
    return _encode(loaded, str(text), False)


def _vocab_size(loaded: LoadedModel) -> int:
    size = getattr(loaded.model.config, "vocab_size", None)
    return int(size) if isinstance(size, int) else len(loaded.tokenizer)


def _check_token_ids(spec: GenerationSpec, loaded: LoadedModel) -> None:
    vocab = _vocab_size(loaded)
    bad_ids = sorted(t for t in spec.stop_token_ids if t >= vocab)
    if bad_ids:
        raise bad(f"eos_token_id {bad_ids[0]} is outside the vocabulary (size {vocab}).", "eos_token_id")


def _context_error(prompt_len: int, new: int, model_len: int, where: str) -> APIError:
    return bad(
        f"This model's maximum context length is {model_len} tokens. However, you requested "
        f"{prompt_len + new} tokens ({prompt_len} in the {where}, {new} in the completion). "
        f"Please reduce the length of the {where} or completion.",
        where,
        code="context_length_exceeded",
    )


def _openai_params(
    spec: GenerationSpec, prompt_len: int, loaded: LoadedModel, limit: int, where: str
) -> SamplingParams:
    model_len = loaded.max_model_len
    if prompt_len >= model_len:
        raise _context_error(prompt_len, 1, model_len, where)
    if spec.max_new_tokens is None:
        new = min(model_len - prompt_len, limit)
    else:
        new = spec.max_new_tokens
        if new > limit:
            raise bad(f"'max_tokens' is {new}, more than this server's limit of {limit}.", "max_tokens")
        if prompt_len + new > model_len:
            raise _context_error(prompt_len, new, model_len, where)
    return _sampling_params(spec, new, min(spec.min_new_tokens, new))


def _legacy_params(spec: GenerationSpec, prompt_len: int, loaded: LoadedModel, limit: int) -> SamplingParams:
    _check_token_ids(spec, loaded)
    model_len = loaded.max_model_len
    if prompt_len >= model_len:
        raise bad(
            f"The prompt is {prompt_len} tokens; this model's maximum context length is {model_len}.",
            "prompt",
        )
    if spec.max_new_tokens is not None:
        new = spec.max_new_tokens
    else:
        max_length = spec.max_length or 0
        new = max_length - prompt_len
        if new < 1:
            raise bad(
                f"Input length of input_ids is {prompt_len}, but generate_kwargs.max_length is set to "
                f"{max_length}. Increase max_length or set generate_kwargs.max_new_tokens.",
                "max_length",
            )
    if new > limit:
        raise bad(
            f"generate_kwargs asks for {new} new tokens, more than this server's limit of {limit}.",
            "max_new_tokens",
        )
    # Like HF generate, never run past the model's context: clamp instead of failing old clients.
    new = min(new, model_len - prompt_len)
    min_new = max(spec.min_new_tokens, spec.min_length - prompt_len, 0)
    return _sampling_params(spec, new, min(min_new, new))


def _sampling_params(spec: GenerationSpec, new: int, min_new: int) -> SamplingParams:
    return SamplingParams(
        max_new_tokens=new,
        temperature=spec.temperature,
        top_p=spec.top_p,
        top_k=spec.top_k,
        do_sample=spec.do_sample,
        repetition_penalty=spec.repetition_penalty,
        min_new_tokens=min_new,
        seed=spec.seed,
        stop=spec.stop,
        stop_token_ids=spec.stop_token_ids,
    )


# --------------------------------------------------------------------------- engine bridge


class ClientGoneError(Exception):
    """The client closed the connection before its (non-streamed) answer was ready."""


class _Stream:
    """Receives engine events (engine thread) into an asyncio queue (event loop thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.request: GenerationRequest | None = None

    def on_event(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def cancel(self) -> None:
        if self.request is not None:
            self.request.cancel()


@dataclass
class _Result:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _submit(
    state: ServerState,
    *,
    engine: Engine,
    prompt_ids: list[int],
    params: SamplingParams,
    adapter: str | None,
    request: Request,
) -> _Stream:
    stream = _Stream(asyncio.get_running_loop())
    gen = GenerationRequest(
        prompt_ids=prompt_ids,
        params=params,
        on_event=stream.on_event,
        adapter=adapter,
        request_id=request.headers.get("x-request-id", "")[:128],
    )
    stream.request = gen
    retry = {"Retry-After": str(state.settings.limits.retry_after_seconds)}
    try:
        engine.submit(gen)
    except QueueFullError:
        state.metrics.rejected.labels("queue_full").inc()
        raise APIError(
            503,
            f"The server is at capacity ({state.settings.limits.max_batch_size} running + "
            f"{state.settings.limits.max_queue} queued); retry after {retry['Retry-After']}s.",
            type="overloaded_error",
            code="queue_full",
            headers=retry,
        ) from None
    except EngineStoppedError:
        raise APIError(
            503, "The server is shutting down.", type="service_unavailable", headers=retry
        ) from None
    return stream


async def _next_event(request: Request, stream: _Stream) -> Event:
    """Wait for the next event, cancelling the generation if the client goes away meanwhile."""
    while True:
        try:
            return await asyncio.wait_for(stream.queue.get(), timeout=1.0)
        except TimeoutError:
            if await request.is_disconnected():
                stream.cancel()
                raise ClientGoneError from None


async def _collect(request: Request, stream: _Stream) -> _Result:
    parts: list[str] = []
    try:
        while True:
            event = await _next_event(request, stream)
            if event.kind == "token":
                parts.append(event.text)
            elif event.kind == "error":
                raise APIError(500, event.message, type="server_error")
            else:
                return _Result(
                    "".join(parts),
                    event.finish_reason or "stop",
                    event.prompt_tokens,
                    event.completion_tokens,
                )
    except BaseException:
        stream.cancel()
        raise


def _sse(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _data(obj: Any) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def _stream_error(event: Event) -> str:
    return _data({"error": {"message": event.message, "type": "server_error", "param": None, "code": None}})


async def _chat_chunks(
    request: Request, stream: _Stream, *, rid: str, created: int, model: str, include_usage: bool
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    try:
        yield _data(chunk({"role": "assistant", "content": ""}, None))
        while True:
            event = await _next_event(request, stream)
            if event.kind == "token":
                yield _data(chunk({"content": event.text}, None))
            elif event.kind == "error":
                yield _stream_error(event)
                break
            else:
                yield _data(chunk({}, event.finish_reason))
                if include_usage:
                    usage = _Result("", "", event.prompt_tokens, event.completion_tokens).usage()
                    yield _data(
                        {
                            "id": rid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                break
        yield "data: [DONE]\n\n"
    finally:
        # Client gone (the response task is cancelled) or done: either way free the batch slot.
        stream.cancel()


async def _completion_chunks(
    request: Request, stream: _Stream, *, rid: str, created: int, model: str, include_usage: bool, echo: str
) -> AsyncIterator[str]:
    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        }

    try:
        if echo:
            yield _data(chunk(echo, None))
        while True:
            event = await _next_event(request, stream)
            if event.kind == "token":
                yield _data(chunk(event.text, None))
            elif event.kind == "error":
                yield _stream_error(event)
                break
            else:
                yield _data(chunk("", event.finish_reason))
                if include_usage:
                    usage = _Result("", "", event.prompt_tokens, event.completion_tokens).usage()
                    yield _data(
                        {
                            "id": rid,
                            "object": "text_completion",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage,
                        }
                    )
                break
        yield "data: [DONE]\n\n"
    finally:
        stream.cancel()
