"""Operations: bearer auth, overload (bounded queue), SIGTERM drain, health before load, startup failures.

The subprocess server here runs one request at a time with one waiting slot, so a burst
overflows it. The SIGTERM test ends that server and so runs last in its xdist group.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from kaito_runtime.serve.app import create_app
from kaito_runtime.serve.loader import LoadedModel, ModelLoadError, load_model
from kaito_runtime.serve.settings import Settings
from serve_helpers import ServerProcess, free_port, serve_command, start_server

pytestmark = [pytest.mark.slow]
OPS = pytest.mark.xdist_group("serve_ops")
KEY = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def ops_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("serve-ops")
    key_file = tmp / "api-keys"
    key_file.write_text(f"# rotated keys\n{KEY}\nanother-valid-key\n")
    srv = start_server(
        ["--model", str(tiny_model_dir), "--served-model-name", "tiny", "--max-batch-size", "1", "--max-queue", "1",
         "--api-key-file", str(key_file)],
        tmp / "server.log",
    )  # fmt: skip
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


@OPS
def test_bearer_auth(ops_server: ServerProcess) -> None:
    url = ops_server.url
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for headers in ({}, {"Authorization": "Bearer wrong-key-123"}, {"Authorization": f"Basic {KEY}"}):
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == {
            "message": "Missing or invalid API key: send 'Authorization: Bearer <key>'.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_api_key",
        }
    r = httpx.post(f"{url}/chat", json={"prompt": "hi"}, timeout=60)
    assert (r.status_code, r.json()) == (
        401,
        {"detail": "Missing or invalid API key: send 'Authorization: Bearer <key>'."},
    )
    assert httpx.get(f"{url}/metrics", timeout=60).status_code == 401
    # kubelet probes carry no credentials.
    assert httpx.get(f"{url}/health", timeout=60).status_code == 200
    assert httpx.get(f"{url}/healthz", timeout=60).status_code == 200
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="another-valid-key", max_retries=0, timeout=60)
    assert client.chat.completions.create(model="tiny", messages=body["messages"], max_tokens=2).choices
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="nope-nope-nope", max_retries=0).models.list()


@OPS
def test_overload_gets_503_with_retry_after_and_admitted_requests_complete(ops_server: ServerProcess) -> None:
    burst = 8
    barrier = threading.Barrier(burst)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        body = {"prompt": f"request {i}", "max_tokens": 48, "temperature": 0}
        with httpx.Client(timeout=120) as c:
            barrier.wait()
            r = c.post(f"{ops_server.url}/v1/completions", json=body, headers=_auth())
        with lock:
            results.append(r)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(burst)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    codes = sorted(r.status_code for r in results)
    assert len(codes) == burst
    assert set(codes) <= {200, 503}, codes
    ok = [r for r in results if r.status_code == 200]
    busy = [r for r in results if r.status_code == 503]
    assert len(ok) >= 2, codes  # the running slot and the queued slot
    assert busy, codes
    for r in busy:
        assert r.headers["retry-after"] == "1"
        err = r.json()["error"]
        assert err["code"] == "queue_full" and err["type"] == "overloaded_error"
        assert err["message"] == "The server is at capacity (1 running + 1 queued); retry after 1s."
    for r in ok:
        body = r.json()
        choice = body["choices"][0]
        assert choice["finish_reason"] in ("stop", "length")
        if choice["finish_reason"] == "length":
            assert body["usage"]["completion_tokens"] == 48
    metrics = httpx.get(f"{ops_server.url}/metrics", headers=_auth(), timeout=60).text
    assert f'kaito_serve_rejected_requests_total{{reason="queue_full"}} {float(len(busy))}' in metrics


@OPS
def test_zz_sigterm_lets_the_running_request_finish_then_exits_0(ops_server: ServerProcess) -> None:
    """Named zz so it runs last in the group: it ends the shared server."""
    got: dict[str, Any] = {}
    streaming = threading.Event()

    def long_request() -> None:
        body = {"prompt": "drain me", "max_tokens": 120, "temperature": 0, "stream": True}
        text = []
        with httpx.stream(
            "POST", f"{ops_server.url}/v1/completions", json=body, headers=_auth(), timeout=120
        ) as r:
            got["status"] = r.status_code
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    event = json.loads(line[6:])
                    text.append(event["choices"][0]["text"])
                    got["finish"] = event["choices"][0]["finish_reason"] or got.get("finish")
                    streaming.set()
                elif line == "data: [DONE]":
                    got["done"] = True

    t = threading.Thread(target=long_request)
    t.start()
    assert streaming.wait(60)
    ops_server.proc.terminate()  # SIGTERM
    t.join(120)
    code = ops_server.proc.wait(60)
    assert got["status"] == 200
    assert got.get("done") is True, got
    assert got["finish"] in ("stop", "length")
    assert code == 0, ops_server.log()
    log = ops_server.log()
    assert "received SIGTERM: draining in-flight requests" in log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{ops_server.url}/health", timeout=5)


# --------------------------------------------------------------------------- in-process: health before load


def _run_uvicorn(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server, thread


def test_health_is_503_until_the_model_is_loaded(tiny_model_dir: Path) -> None:
    gate = threading.Event()

    def gated_loader(settings: Settings) -> LoadedModel:
        assert gate.wait(60)  # the real loader, held back until the test has looked at /health
        return load_model(settings)

    port = free_port()
    settings = Settings(model=str(tiny_model_dir), served_model_name="tiny", port=port)
    server, thread = _run_uvicorn(create_app(settings, gated_loader), port)
    url = f"http://127.0.0.1:{port}"
    try:
        r = httpx.get(f"{url}/health", timeout=10)
        assert (r.status_code, r.json()) == (503, {"status": "Loading", "detail": "Model not initialized"})
        r = httpx.post(
            f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}, timeout=10
        )
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["message"] == "The model is still loading; retry shortly."
        r = httpx.post(f"{url}/chat", json={"prompt": "x"}, timeout=10)
        assert (r.status_code, r.json()) == (503, {"detail": "The model is still loading; retry shortly."})
        assert "kaito_serve_model_loaded 0.0" in httpx.get(f"{url}/metrics", timeout=10).text
        gate.set()
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = httpx.post(
            f"{url}/chat", json={"prompt": "x", "generate_kwargs": {"max_new_tokens": 3}}, timeout=60
        )
        assert r.status_code == 200 and r.json()["Result"].startswith("x")
    finally:
        gate.set()
        server.should_exit = True
        thread.join(30)


def test_load_failure_is_reported_on_health(tmp_path: Path) -> None:
    messages: list[str] = []

    def failing_loader(settings: Settings) -> LoadedModel:
        raise ModelLoadError("--model /nowhere: directory not found")

    port = free_port()
    app = create_app(Settings(model="/nowhere", served_model_name="x", port=port), failing_loader)
    app.state.kaito.on_fatal = messages.append
    server, thread = _run_uvicorn(app, port)
    try:
        deadline = time.monotonic() + 30
        while not messages:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert messages == ["--model /nowhere: directory not found"]
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert (r.status_code, r.json()["status"]) == (503, "Failed")
    finally:
        server.should_exit = True
        thread.join(30)


# --------------------------------------------------------------------------- startup failure, end to end


def test_incompatible_adapter_exits_1_with_a_clear_message(
    tiny_model_dir: Path, phi3_adapter_dir: Path
) -> None:
    port = free_port()
    result = subprocess.run(
        serve_command("--model", str(tiny_model_dir), "--adapters-dir", str(phi3_adapter_dir), "--port", str(port),
                      "--host", "127.0.0.1"),
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert "kaito-serve: error: adapter " in result.stderr
    assert "phi-3-adapter: cannot be applied to" in result.stderr
    assert "Traceback" not in result.stderr
