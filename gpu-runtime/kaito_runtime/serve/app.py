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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .bridge import ClientGoneError, chat_chunks, collect, completion_chunks, sse, submit
from .cpu import ThreadGovernor
from .engine import Engine
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
from .state import ModelLoader, ServerState

log = logging.getLogger("kaito_runtime.serve")


def create_app(settings: Settings, model_loader: ModelLoader = load_model) -> FastAPI:
    metrics = Metrics()
    state = ServerState(settings=settings, metrics=metrics)

    def load() -> None:
        try:
            loaded = model_loader(settings)
            governor = ThreadGovernor(loaded.cpu) if loaded.cpu is not None else None
            if governor is not None:
                metrics.cpu_threads.set(governor.threads)  # before the first request, not 0
            engine = Engine(
                loaded, settings.limits.max_batch_size, settings.limits.max_queue, metrics, governor
            )
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
            if parsed.truncate_left:
                text = _left_bytes(loaded, text)
            prompt_ids = await asyncio.to_thread(_encode, loaded, text, True)
        else:
            assert parsed.messages is not None
            prompt_ids = await asyncio.to_thread(_chat_ids, loaded, parsed.messages)
        if parsed.truncate_left and spec.max_new_tokens is not None:
            keep = loaded.max_model_len - spec.max_new_tokens
            if keep > 0:
                prompt_ids = prompt_ids[-keep:]
        params = _legacy_params(spec, len(prompt_ids), loaded, settings.limits.max_tokens_limit)
        stream = submit(
            state,
            engine=engine,
            prompt_ids=prompt_ids,
            params=params,
            adapter=None,
            request=request,
            buffered=True,
        )
        result = await collect(request, stream)
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
        stream = submit(
            state,
            engine=engine,
            prompt_ids=prompt_ids,
            params=params,
            adapter=adapter,
            request=request,
            buffered=not parsed.stream,
        )
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if parsed.stream:
            return sse(
                chat_chunks(
                    request, stream, rid=rid, created=created, model=name, include_usage=parsed.include_usage
                )
            )
        result = await collect(request, stream)
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
        stream = submit(
            state,
            engine=engine,
            prompt_ids=prompt_ids,
            params=params,
            adapter=adapter,
            request=request,
            buffered=not parsed.stream,
        )
        rid = f"cmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        echo = prompt_text if parsed.echo else ""
        if parsed.stream:
            return sse(
                completion_chunks(
                    request,
                    stream,
                    rid=rid,
                    created=created,
                    model=name,
                    include_usage=parsed.include_usage,
                    echo=echo,
                )
            )
        result = await collect(request, stream)
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


# The most UTF-8 bytes one token of a usual tokenizer stands for (English averages ~4, code ~6;
# the longest merges, whitespace runs, stay under this). A text longer than
# `max_model_len * MAX_BYTES_PER_TOKEN` bytes cannot fit the context, so it is refused by its
# length before the tokenizer sees it: tokenizing is then bounded in time and memory by the
# model's context, not by what a client sends (issue 14).
MAX_BYTES_PER_TOKEN = 32


def max_prompt_bytes(loaded: LoadedModel) -> int:
    return loaded.max_model_len * MAX_BYTES_PER_TOKEN


def _check_bytes(loaded: LoadedModel, text: str, where: str) -> None:
    limit = max_prompt_bytes(loaded)
    # At most 4 bytes per character: most texts are decided without encoding them.
    if len(text) * 4 <= limit:
        return
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise bad(
            f"The {where} is {size} bytes; this model's context of {loaded.max_model_len} tokens "
            f"holds at most {limit} bytes of text ({MAX_BYTES_PER_TOKEN} per token). "
            f"Shorten the {where}.",
            where,
            code="context_length_exceeded",
        )


def _left_bytes(loaded: LoadedModel, text: str) -> str:
    """Kaito's left truncation, first by bytes: keep the tail that can still fit the context."""
    limit = max_prompt_bytes(loaded)
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    return raw[-limit:].decode("utf-8", "ignore")  # drops a split character at the cut


def _encode(loaded: LoadedModel, text: str, special: bool, where: str = "prompt") -> list[int]:
    _check_bytes(loaded, text, where)
    ids = list(loaded.tokenizer(text, add_special_tokens=special)["input_ids"])
    if not ids:
        bos = loaded.tokenizer.bos_token_id
        if bos is None:
            raise bad("The prompt is empty.", "prompt")
        ids = [int(bos)]
    return ids


def _chat_ids(loaded: LoadedModel, messages: list[dict[str, str]]) -> list[int]:
    # Bound the template's work too: the contents alone must already fit.
    _check_bytes(loaded, "".join(str(m.get("content") or "") for m in messages), "messages")
    try:
        text = loaded.tokenizer.apply_chat_template(
            messages, chat_template=loaded.chat_template, add_generation_prompt=True, tokenize=False
        )
    except Exception as exc:  # jinja raises TemplateError and friends for conversations it rejects
        raise bad(f"The chat template rejected these messages: {exc}", "messages") from None
    return _encode(loaded, str(text), False, "messages")


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
