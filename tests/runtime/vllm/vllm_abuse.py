"""Abuse load for kaito-vllm (issue 12 item 6), driven against the module's real server.

`hammer()` sends N requests, `concurrency` at a time, over the three POST endpoints (`/v1/completions`,
`/v1/chat/completions`, Kaito's `/chat`); every tenth one is malformed, cycling through bad JSON, wrong
types, a huge `max_tokens`, a ~1 MB prompt, an unknown model and a negative temperature.

The server's queue bound is small (the module's server: max_num_seqs 2 + 2 waiting), so most of a
64-way burst is answered 429 + Retry-After before its body is read. A valid request takes that answer
(it is a correct one). A malformed request is retried on 429 (up to `MALFORMED_RETRIES` times, without
waiting the full Retry-After) until vLLM or the wrapper has judged it, so every malformed kind really
reaches validation. Each answer is classified; these break the rules:
- any 5xx except 503 with Retry-After; a 429 without Retry-After;
- a connection closed (or timed out) without a response;
- a malformed request answered 2xx, or never judged (still 429 after all retries);
- a valid request answered anything but 200, 429 or 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "gpu-runtime" / "bench"))
from serve_abuse import RssPoller  # the one peak-RSS sampler, shared with kaito-serve's abuse test

__all__ = ["RssPoller"]

MEGABYTE_PROMPT = "kaito " * (1_000_000 // 6)  # ~1 MB: under the wrapper's 4 MiB body bound, so vLLM sees it
MALFORMED_KINDS = (
    "bad-json",
    "wrong-type",
    "huge-max-tokens",
    "megabyte-prompt",
    "unknown-model",
    "negative-temperature",
)
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/chat")
MALFORMED_RETRIES = 400
RETRY_SLEEP = 0.02


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and all its descendants (vLLM's API server + engine core), MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def request_for(i: int, model: str, max_tokens: int) -> tuple[str, str, Any]:
    """(kind, path, body) of request `i`: 1 in 10 malformed; valid ones take the endpoints in turn, and
    each malformed kind visits every endpoint (and each of its variants) in turn too."""
    k = i // 10
    if i % 10 != 9:
        path = ENDPOINTS[i % len(ENDPOINTS)]
    else:
        path = ENDPOINTS[(k // len(MALFORMED_KINDS)) % len(ENDPOINTS)]
    variant = k // (len(MALFORMED_KINDS) * len(ENDPOINTS))

    def prompt(text: str) -> dict[str, Any]:
        if path == "/chat":
            return {"prompt": text}
        if path == "/v1/chat/completions":
            return {"model": model, "messages": [{"role": "user", "content": text}]}
        return {"model": model, "prompt": text}

    def limit(n: int) -> dict[str, Any]:
        return {"generate_kwargs": {"max_new_tokens": n}} if path == "/chat" else {"max_tokens": n}

    if i % 10 != 9:
        return "valid", path, {**prompt("hello world kaito"), **limit(max_tokens)}
    kind = MALFORMED_KINDS[k % len(MALFORMED_KINDS)]
    body: Any  # a JSON value to encode, or raw bytes
    if kind == "bad-json":
        body = [
            b'{"model": "' + model.encode() + b'", "prompt": "hello", "max_tokens": 4,',  # truncated
            b"",  # empty body
            b'{"prompt": "\xff\xfe", "max_tokens": 4}',  # not UTF-8
            b"[" * 5000 + b"]" * 5000,  # deep nesting
        ][variant % 4]
    elif kind == "wrong-type":
        body = [
            # (a top-level `temperature` is no /chat field: /chat gets it inside generate_kwargs)
            {"prompt": "hello", "generate_kwargs": {"temperature": "hot", "do_sample": True}}
            if path == "/chat"
            else {**prompt("hello"), **limit(4), "temperature": "hot"},
            {"prompt": 5} if path == "/chat" else {"model": model, "prompt": {"text": "x"}, "messages": "x"},
            [1, 2, 3],  # a JSON array, not an object
            # (not "4": pydantic's lax mode rightly coerces a numeric string)
            {
                **prompt("hello"),
                **({"generate_kwargs": [4]} if path == "/chat" else {"max_tokens": {"n": 4}}),
            },
        ][variant % 4]
    elif kind == "huge-max-tokens":
        body = {**prompt("hello"), **limit([10**12, 2**63, 10**400][variant % 3])}
    elif kind == "megabyte-prompt":
        body = {**prompt(MEGABYTE_PROMPT), **limit(4)}
    elif kind == "unknown-model":
        # /chat has no `model` field: a generate_kwargs value of the wrong type instead.
        body = {**prompt("hello"), "model": "no-such-model", **limit(4)}
        if path == "/chat":
            body = {"prompt": "hello", "generate_kwargs": {"max_new_tokens": "many"}}
    else:  # negative temperature
        body = {**prompt("hello"), "temperature": -1.0, **limit(4)}
        if path == "/chat":
            body = {"prompt": "hello", "generate_kwargs": {"temperature": -1.0, "do_sample": True}}
    return kind, path, body


@dataclass
class AbuseResult:
    requests: int
    wall: float = 0.0
    attempts: int = 0  # HTTP requests sent, retries of malformed requests included
    outcomes: Counter[str] = field(default_factory=Counter)  # "kind path: final code" -> count
    codes: Counter[int] = field(default_factory=Counter)  # every answer, retries included
    failures: list[str] = field(default_factory=list)  # what broke a rule, one line each


def _check_answer(result: AbuseResult, i: int, kind: str, path: str, r: httpx.Response) -> None:
    code = r.status_code
    result.codes[code] += 1
    retry_after = r.headers.get("retry-after", "")
    if code >= 500 and not (code == 503 and retry_after):
        result.failures.append(f"#{i} {kind} {path}: HTTP {code}: {r.text[:300]}")
    elif code == 429 and not retry_after.isdigit():
        result.failures.append(f"#{i} {kind} {path}: 429 without Retry-After")


async def hammer(url: str, model: str, n: int, concurrency: int = 64, max_tokens: int = 2) -> AbuseResult:
    result = AbuseResult(requests=n)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def send(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
        result.attempts += 1
        if isinstance(body, bytes):
            return await client.post(path, content=body, headers={"content-type": "application/json"})
        return await client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})

    async def one(client: httpx.AsyncClient, i: int) -> None:
        kind, path, body = request_for(i, model, max_tokens)
        tries = 1 if kind == "valid" else MALFORMED_RETRIES
        for attempt in range(tries):
            try:
                r = await send(client, path, body)
            except httpx.HTTPError as exc:  # a connection closed without a response, or a timeout
                result.outcomes[f"{kind} {path}: closed without response"] += 1
                result.failures.append(f"#{i} {kind} {path}: {type(exc).__name__}: {exc}")
                return
            _check_answer(result, i, kind, path, r)
            if r.status_code != 429 or attempt == tries - 1:
                break
            await asyncio.sleep(RETRY_SLEEP)
        code = r.status_code
        result.outcomes[f"{kind} {path}: {code}"] += 1
        if kind == "valid":
            if code not in (200, 429, 503):
                result.failures.append(f"#{i} valid {path}: HTTP {code}: {r.text[:300]}")
        elif code == 429:
            result.failures.append(f"#{i} {kind} {path}: still 429 after {tries} tries (never judged)")
        elif not 400 <= code < 500:
            result.failures.append(f"#{i} {kind} {path}: HTTP {code} for a malformed request: {r.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120.0), limits=limits) as client:
        sem = asyncio.Semaphore(concurrency)

        async def bounded(i: int) -> None:
            async with sem:
                await one(client, i)

        start = time.perf_counter()
        await asyncio.gather(*(bounded(i) for i in range(n)))
        result.wall = time.perf_counter() - start
    return result
