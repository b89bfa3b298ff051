"""Issue 12 item 6: kaito-serve under abuse. A real server on 127.0.0.1 with the tiny test model takes
2,000 requests at 64-way concurrency, 10 % malformed (bad JSON, wrong types, huge max_tokens, ~1 MB
prompts, unknown model, negative temperature): no 5xx but 503 with Retry-After, every malformed request
a 4xx, no connection closed without a response, the process alive and /health green afterwards, and
peak RSS within the bound stated in BENCHMARKS.md (serve section, "Memory model and abuse")."""

from __future__ import annotations

import asyncio
import http.client
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_helpers import ServerProcess, start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "gpu-runtime" / "bench"))
from serve_abuse import MALFORMED_KINDS, RssPoller, hammer, rss_mib

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve_abuse")]

REQUESTS, CONCURRENCY = 2000, 64
# Measured on the 2-core dev host (2026-12-03): idle ~370 MiB, peak ~400 MiB under this load.
# The bound: the runtime constant (512 MiB, BENCHMARKS.md) + weights and KV of the tiny model (< 10 MiB)
# + 64 in-flight ~1 MB bodies and their parsed copies (< 128 MiB), rounded up.
PEAK_RSS_BOUND_MIB = 640


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # 16 running + 16 queued against 64 clients: the run takes the 200, the 503 and the 4xx paths.
    extra = ["--max-batch-size", "16", "--max-queue", "16"]
    tmp = tmp_path_factory.mktemp("serve-abuse")
    srv = start_server(["--model", str(tiny_model_dir), "--dtype", "float32", *extra], tmp / "server.log")
    try:
        srv.wait_ready()
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, srv.log()[-3000:]


def test_abuse_load_gets_only_answers(server: ServerProcess) -> None:
    with RssPoller(server.proc.pid) as rss:
        result = asyncio.run(hammer(server.url, REQUESTS, CONCURRENCY, max_tokens=4))
    summary = f"wall {result.wall:.1f}s, RSS {rss.start} -> peak {rss.peak} MiB, codes {dict(result.codes())}"
    print(summary)
    assert not result.failures, (summary, result.failures[:20])
    assert sum(result.outcomes.values()) == REQUESTS
    assert not [k for k in result.outcomes if "closed without response" in k or "without Retry-After" in k]
    # Every malformed kind was sent, and was refused rather than served.
    for kind in MALFORMED_KINDS:
        sent = sum(n for k, n in result.outcomes.items() if k.startswith(f"{kind} "))
        assert sent >= 30, (kind, result.outcomes)
    assert result.codes()["200"] > 0 and result.codes()["503"] > 0, result.outcomes
    assert server.proc.poll() is None, server.log()[-3000:]
    r = httpx.get(f"{server.url}/health", timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "Healthy"}, r.text
    ok = httpx.post(f"{server.url}/v1/completions", json={"prompt": "hello", "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200, ok.text
    assert rss.peak <= PEAK_RSS_BOUND_MIB, summary
    assert rss_mib(server.proc.pid) <= PEAK_RSS_BOUND_MIB
    assert "Traceback" not in server.log(), server.log()[-3000:]


def test_idle_keep_alive_connection_outlives_the_clients_expiry(server: ServerProcess) -> None:
    """httpx and the openai client keep an idle connection for 5 s. If the server closed idle
    connections at 5 s too, a request sent on one at that moment died without a response (seen once
    in 2,000 in the abuse run above). The server keeps them longer, so the client drops them first."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", "/health")
        first = conn.getresponse()
        assert first.status == 200 and first.read()
        sock = conn.sock
        time.sleep(6.0)
        # On a connection the server has closed this raises RemoteDisconnected (http.client does not
        # reconnect while it still holds the socket).
        conn.request("GET", "/health")
        second = conn.getresponse()
        assert second.status == 200 and second.read()
        assert conn.sock is sock  # the same TCP connection, reused after 6 s idle
    finally:
        conn.close()
