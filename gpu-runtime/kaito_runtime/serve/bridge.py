"""Between the HTTP handlers and the engine thread: submit, collect, stream (SSE)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from .engine import Engine, EngineStoppedError, Event, GenerationRequest, QueueFullError
from .protocol import APIError
from .sampling import SamplingParams
from .state import ServerState


class ClientGoneError(Exception):
    """The client closed the connection before its (non-streamed) answer was ready."""


class Stream:
    """Receives engine events (engine thread) into an asyncio queue (event loop thread).

    `None` in the queue means the client's connection is gone (see `watch_disconnect`).

    A `buffered` stream (a non-streamed answer) keeps token text on the engine's side of the
    fence and wakes the event loop only for the final event: one wake-up per request instead of
    one per token, so the loop does not take CPU from the decode steps of a one-request server.

    A streamed one wakes the loop once per token while the loop keeps up. When it falls behind
    (on a small CPU host the decode threads hold every core), the tokens that arrive before it
    runs join the one wake-up already scheduled and go out as one SSE chunk: no extra latency
    when there is CPU to spare, fewer wake-ups (and chunks) exactly when there is not.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, buffered: bool = False) -> None:
        self.loop = loop
        self.buffered = buffered
        self.parts: list[str] = []  # buffered token text (appended by the engine thread only)
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.request: GenerationRequest | None = None
        self._lock = threading.Lock()
        self._held: list[str] = []  # streamed text not yet handed to the loop
        self._wake_pending = False

    def on_event(self, event: Event) -> None:
        """Engine thread."""
        if event.kind == "token":
            if self.buffered:
                self.parts.append(event.text)  # read by collect() after the final event, which follows it
                return
            with self._lock:
                self._held.append(event.text)
                if self._wake_pending:
                    return
                self._wake_pending = True
            self.loop.call_soon_threadsafe(self._flush)
            return
        self.loop.call_soon_threadsafe(self._final, event)

    def _flush(self) -> None:
        """Event loop thread: everything held so far becomes one token event."""
        with self._lock:
            text = "".join(self._held)
            self._held.clear()
            self._wake_pending = False
        if text:
            self.queue.put_nowait(Event("token", text=text))

    def _final(self, event: Event) -> None:
        self._flush()
        self.queue.put_nowait(event)

    def cancel(self) -> None:
        if self.request is not None:
            self.request.cancel()


@dataclass
class Result:
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


def submit(
    state: ServerState,
    *,
    engine: Engine,
    prompt_ids: list[int],
    params: SamplingParams,
    adapter: str | None,
    request: Request,
    buffered: bool = False,
) -> Stream:
    stream = Stream(asyncio.get_running_loop(), buffered)
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


async def watch_disconnect(request: Request, stream: Stream) -> None:
    """Wait for the server's own `http.disconnect` message, then cancel the generation.

    Only the ASGI server says a client is gone: this blocks on `receive()` (as Starlette's
    StreamingResponse does) instead of polling `request.is_disconnected()`, whose
    cancel-the-receive trick could end a live request on a timer (issue 14: a queued request on a
    small queue was closed without a response exactly 1 s after it was sent).
    """
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            stream.cancel()
            stream.queue.put_nowait(None)
            return


async def collect(request: Request, stream: Stream) -> Result:
    """The whole (non-streamed) answer of a buffered stream; ClientGoneError if the client went away first."""
    assert stream.buffered, "collect() reads the text a buffered stream holds"
    watcher = asyncio.create_task(watch_disconnect(request, stream))
    try:
        while True:
            event = await stream.queue.get()
            if event is None:
                raise ClientGoneError
            if event.kind == "error":
                raise APIError(500, event.message, type="server_error")
            if event.kind != "token":  # a buffered stream queues only its final event
                return Result(
                    "".join(stream.parts),
                    event.finish_reason or "stop",
                    event.prompt_tokens,
                    event.completion_tokens,
                )
    except BaseException:
        stream.cancel()
        raise
    finally:
        watcher.cancel()


async def _next_event(stream: Stream) -> Event:
    # Streamed responses: Starlette's StreamingResponse itself listens for http.disconnect and
    # cancels the generator (whose `finally` frees the batch slot), so nothing polls here.
    event = await stream.queue.get()
    assert event is not None
    return event


def sse(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _data(obj: Any) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


def _stream_error(event: Event) -> str:
    return _data({"error": {"message": event.message, "type": "server_error", "param": None, "code": None}})


async def chat_chunks(
    request: Request, stream: Stream, *, rid: str, created: int, model: str, include_usage: bool
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
            event = await _next_event(stream)
            if event.kind == "token":
                yield _data(chunk({"content": event.text}, None))
            elif event.kind == "error":
                yield _stream_error(event)
                break
            else:
                yield _data(chunk({}, event.finish_reason))
                if include_usage:
                    usage = Result("", "", event.prompt_tokens, event.completion_tokens).usage()
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


async def completion_chunks(
    request: Request, stream: Stream, *, rid: str, created: int, model: str, include_usage: bool, echo: str
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
            event = await _next_event(stream)
            if event.kind == "token":
                yield _data(chunk(event.text, None))
            elif event.kind == "error":
                yield _stream_error(event)
                break
            else:
                yield _data(chunk("", event.finish_reason))
                if include_usage:
                    usage = Result("", "", event.prompt_tokens, event.completion_tokens).usage()
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
