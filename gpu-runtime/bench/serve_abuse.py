"""Abuse load for kaito-serve: issue 12 item 6 / issue 14's robustness and memory check.

`hammer()` sends N requests, `concurrency` at a time, to a running server on the three POST endpoints
(`/chat`, `/v1/chat/completions`, `/v1/completions`); every tenth request is malformed, cycling through
bad JSON, wrong types, a huge `max_tokens`, a ~1 MB prompt, an unknown model and a negative
temperature. It classifies every answer: valid requests must get 200 or a 503 with `Retry-After`,
malformed ones a 4xx; anything else (a 5xx, a 503 without `Retry-After`, a connection closed with no
response, a malformed request answered 200) is a failure. `RssPoller` samples a process's RSS.
tests/runtime/serve/test_serve_abuse.py imports this module and runs it in the suite.

As a benchmark (starts `kaito-serve` on the tiny test model, 512-token context):

  python gpu-runtime/bench/serve_abuse.py 2000                                # default queue
  python gpu-runtime/bench/serve_abuse.py 2000 --max-batch-size 8 --max-queue 4  # small queue
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 64
MEGABYTE_PROMPT = "kaito " * (1_000_000 // 6)  # ~1 MB, just under the default 1 MiB body limit
MALFORMED_KINDS = (
    "bad-json",
    "wrong-type",
    "huge-max-tokens",
    "megabyte-prompt",
    "unknown-model",
    "negative-temperature",
)
ENDPOINTS = ("/chat", "/v1/chat/completions", "/v1/completions")


def rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


class RssPoller:
    """Peak RSS of `pid`, sampled every `interval` seconds in a daemon thread while in the `with`.
    `measure` reads one sample (MiB): the process alone by default, or e.g. its whole tree."""

    def __init__(self, pid: int, interval: float = 0.05, measure: Callable[[int], float] = rss_mib) -> None:
        self.pid, self.interval, self.measure = pid, interval, measure
        self.start = self.peak = measure(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self.measure(self.pid))
            time.sleep(self.interval)

    def __enter__(self) -> RssPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure(self.pid))


def request_for(i: int, max_tokens: int) -> tuple[str, str, dict[str, Any] | bytes]:
    """(kind, path, body) of request `i`: 1 in 10 malformed, the endpoints taken in turn."""
    path = ENDPOINTS[i % len(ENDPOINTS)]
    chat = path != "/v1/completions"

    def prompt(text: str) -> dict[str, Any]:
        if path == "/chat":
            return {"prompt": text}
        if chat:
            return {"messages": [{"role": "user", "content": text}]}
        return {"prompt": text}

    def limit(n: int) -> dict[str, Any]:
        if path == "/chat":
            return {"generate_kwargs": {"max_new_tokens": n}}
        return {"max_tokens": n}

    if i % 10 != 9:
        return "valid", path, {**prompt("hello world kaito"), **limit(max_tokens)}
    kind = MALFORMED_KINDS[(i // 10) % len(MALFORMED_KINDS)]
    body: dict[str, Any] | bytes
    if kind == "bad-json":
        body = b'{"prompt": "hello", "max_tokens": 4,'
    elif kind == "wrong-type":
        body = {"prompt": 5} if path != "/v1/chat/completions" else {"messages": "hello"}
    elif kind == "huge-max-tokens":
        body = {**prompt("hello"), **limit(10**12)}
    elif kind == "megabyte-prompt":
        body = {**prompt(MEGABYTE_PROMPT), **limit(4)}
    elif kind == "unknown-model":
        # /chat has no `model` field: it gets an unknown generate_kwargs key of the wrong type instead.
        body = {**prompt("hello"), "model": "no-such-model"}
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
    outcomes: Counter[str] = field(default_factory=Counter)  # "kind path: code" -> count
    failures: list[str] = field(default_factory=list)  # what broke a rule, one line each

    def codes(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for key, n in self.outcomes.items():
            out[key.rsplit(": ", 1)[1]] += n
        return out


async def hammer(url: str, n: int, concurrency: int = CONCURRENCY, max_tokens: int = 8) -> AbuseResult:
    result = AbuseResult(requests=n)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(300.0)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        kind, path, body = request_for(i, max_tokens)
        try:
            if isinstance(body, bytes):
                r = await client.post(path, content=body, headers={"content-type": "application/json"})
            else:
                r = await client.post(path, json=body)
        except httpx.HTTPError as exc:  # a connection closed without a response lands here
            result.outcomes[f"{kind} {path}: closed without response"] += 1
            result.failures.append(f"#{i} {kind} {path}: {type(exc).__name__}: {exc}")
            return
        code = r.status_code
        label = str(code)
        if code == 503 and not r.headers.get("retry-after"):
            label = "503 without Retry-After"
        result.outcomes[f"{kind} {path}: {label}"] += 1
        ok = (code == 200 or label == "503") if kind == "valid" else (400 <= code < 500)
        if not ok:
            result.failures.append(f"#{i} {kind} {path}: HTTP {label}: {r.text[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        sem = asyncio.Semaphore(concurrency)

        async def bounded(i: int) -> None:
            async with sem:
                await one(client, i)

        start = time.perf_counter()
        await asyncio.gather(*(bounded(i) for i in range(n)))
        result.wall = time.perf_counter() - start
    return result


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    args = sys.argv[2:]
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    from tiny_model import build_tiny_model

    model = build_tiny_model(Path(tempfile.mkdtemp(prefix="kaito-abuse-")), "llama")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Path(sys.executable).parent / "kaito-serve"
    proc = subprocess.Popen(
        [str(server), "--model", str(model), "--host", "127.0.0.1", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    with RssPoller(proc.pid) as rss:
        result = asyncio.run(hammer(url, n, CONCURRENCY, max_tokens=64))
    health = httpx.get(f"{url}/health").status_code
    print(
        f"args={' '.join(args) or '(defaults)'} requests={n} wall={result.wall:.1f}s "
        f"codes={dict(sorted(result.codes().items()))} failures={len(result.failures)} "
        f"rss_start={rss.start}MiB rss_peak={rss.peak}MiB rss_after={rss_mib(proc.pid)}MiB health={health}"
    )
    for line in result.failures[:20]:
        print(" ", line)
    proc.terminate()
    proc.wait(60)
    return 1 if result.failures or health != 200 else 0


if __name__ == "__main__":
    sys.exit(main())
