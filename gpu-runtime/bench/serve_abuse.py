"""Abuse benchmark for kaito-serve (not a test): issue 14's robustness and memory check.

Starts `kaito-serve` on the tiny test model (tests/runtime/tiny_model.py, 512-token context),
sends N `/chat` requests 64 at a time, 10 % malformed (half ~1 MB prompts, half a wrong type),
and reports the status codes, connections closed without a response, and the server's RSS
(start, peak polled every 50 ms, after).

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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CONCURRENCY = 64


def _rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return 0


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
    rss = {"start": _rss_mib(proc.pid), "peak": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            rss["peak"] = max(rss["peak"], _rss_mib(proc.pid))
            time.sleep(0.05)

    threading.Thread(target=poll, daemon=True).start()
    huge = "kaito " * (1_000_000 // 6)
    codes: dict[str, int] = {}

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body: object
        if i % 10 == 9:
            body = {"prompt": huge}
        elif i % 10 == 8:
            body = {"prompt": 5}
        else:
            body = {
                "prompt": "hello world kaito",
                "generate_kwargs": {"max_new_tokens": 64, "min_new_tokens": 64},
            }
        try:
            r = await client.post(f"{url}/chat", json=body)
            key = str(r.status_code)
            if r.status_code == 503 and "retry-after" not in r.headers:
                key = "503 without Retry-After"
        except httpx.HTTPError:
            key = "closed without response"
        codes[key] = codes.get(key, 0) + 1

    async def drive() -> None:
        sem = asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:

            async def bounded(i: int) -> None:
                async with sem:
                    await one(client, i)

            await asyncio.gather(*(bounded(i) for i in range(n)))

    start = time.perf_counter()
    asyncio.run(drive())
    done.set()
    print(
        f"args={' '.join(args) or '(defaults)'} requests={n} wall={time.perf_counter() - start:.1f}s "
        f"codes={dict(sorted(codes.items()))} rss_start={rss['start']}MiB rss_peak={rss['peak']}MiB "
        f"rss_after={_rss_mib(proc.pid)}MiB"
    )
    proc.terminate()
    proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
