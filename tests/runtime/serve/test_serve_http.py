"""kaito-serve as a real subprocess on 127.0.0.1, driven over HTTP (curl-style, httpx and the openai client).

One server (tiny Llama + two LoRA adapters + a Kaito-style config file) is shared by the whole
module; the module is one xdist group so only one worker starts it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serve_helpers import ServerProcess, start_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("serve_http")]

SERVED = "tiny-llama"
MODEL_LEN = 256
TOKENS_LIMIT = 300
BODY_LIMIT = 65536
MESSAGES = [{"role": "user", "content": "What is kaito?"}]


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, lora_adapters_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("serve-http")
    config = tmp / "inference_config.yaml"
    config.write_text(
        "vllm:\n  cpu-offload-gb: 0\nmax_probe_steps: 6\nkv_cache_cpu_memory_utilization: 0.5\n"
        f"transformers:\n  max-batch-size: 4\n  max-model-len: {MODEL_LEN}\n"
        f"  max-tokens-limit: {TOKENS_LIMIT}\n  max-request-bytes: {BODY_LIMIT}\n"
    )
    srv = start_server(
        [
            "--model", str(tiny_model_dir),
            "--served-model-name", SERVED,
            "--adapters-dir", str(lora_adapters_dir),
            "--adapter-strength", "a2=0.8",
            "--config", str(config),
            "--dtype", "float32",
        ],
        tmp / "server.log",
        extra_env={"a1": "0.5"},  # Kaito passes each adapter's strength as an env var named after it
    )  # fmt: skip
    try:
        srv.wait_ready()
        yield srv
    finally:
        code = srv.stop()
    assert code == 0, srv.log()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def _post(server: ServerProcess, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=120)


def _greedy(**kw: Any) -> dict[str, Any]:
    return {"temperature": 0, **kw}


# --------------------------------------------------------------------------- shape checks


def _check_usage(usage: dict[str, Any]) -> None:
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert all(isinstance(v, int) and v >= 0 for v in usage.values())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 0


def _check_finish(choice: dict[str, Any], usage: dict[str, Any], max_tokens: int) -> None:
    assert choice["finish_reason"] in ("stop", "length")
    assert usage["completion_tokens"] <= max_tokens
    if choice["finish_reason"] == "length":
        assert usage["completion_tokens"] == max_tokens


def check_chat_completion(body: dict[str, Any], model: str, max_tokens: int) -> str:
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    assert body["model"] == model
    assert len(body["choices"]) == 1
    choice = body["choices"][0]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    _check_usage(body["usage"])
    _check_finish(choice, body["usage"], max_tokens)
    return str(choice["message"]["content"])


def sse_events(text: str) -> list[Any]:
    """Parse an SSE body strictly: only `data:` events separated by blank lines, ending with [DONE]."""
    assert text.endswith("data: [DONE]\n\n"), text[-200:]
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        payload = block[len("data: ") :]
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    assert events[-1] == "[DONE]"
    assert "[DONE]" not in events[:-1]
    return events[:-1]


# --------------------------------------------------------------------------- seed /chat contract


def test_seed_curl_chat(server: ServerProcess) -> None:
    """Exactly the seeds' command: curl -X POST http://$CLUSTERIP/chat -H "Content-Type: application/json" -d '...'"""
    body = '{"prompt":"YOUR QUESTION HERE"}'
    if shutil.which("curl"):
        out = subprocess.run(
            ["curl", "-sS", "-X", "POST", f"{server.url}/chat", "-H", "Content-Type: application/json", "-d", body,
             "-w", "\n%{http_code}"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        text, _, code = out.stdout.rpartition("\n")
    else:  # the same bytes curl would send
        r = httpx.post(
            f"{server.url}/chat", content=body, headers={"Content-Type": "application/json"}, timeout=120
        )
        text, code = r.text, str(r.status_code)
    assert code == "200"
    result = json.loads(text)
    assert set(result) == {"Result"}
    # Kaito's text-generation pipeline returns the prompt followed by the continuation.
    assert result["Result"].startswith("YOUR QUESTION HERE")
    assert len(result["Result"]) > len("YOUR QUESTION HERE")


def test_chat_generate_kwargs_and_messages(server: ServerProcess) -> None:
    kw = {"do_sample": False, "max_new_tokens": 12}
    first = _post(server, "/chat", {"prompt": "hello", "generate_kwargs": kw, "return_full_text": False})
    again = _post(server, "/chat", {"prompt": "hello", "generate_kwargs": kw, "return_full_text": False})
    assert first.status_code == again.status_code == 200
    assert first.json()["Result"] == again.json()["Result"]  # greedy is deterministic
    assert not first.json()["Result"].startswith("hello")
    msgs = _post(server, "/chat", {"messages": MESSAGES, "generate_kwargs": kw})
    assert msgs.status_code == 200
    # Conversational mode answers with the assistant text (not Kaito's Python repr), no template markup.
    assert "<|assistant|>" not in msgs.json()["Result"]
    assert "What is kaito?" not in msgs.json()["Result"]


# --------------------------------------------------------------------------- OpenAI API


def test_openai_chat_non_streaming(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=MESSAGES, max_tokens=8, **_greedy()
    )
    assert raw.status_code == 200
    check_chat_completion(json.loads(raw.text), SERVED, 8)
    parsed = raw.parse()
    assert parsed.choices[0].message.role == "assistant"
    # max_completion_tokens is the newer name of the same limit.
    raw2 = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=MESSAGES, max_completion_tokens=3
    )
    check_chat_completion(json.loads(raw2.text), SERVED, 3)


def test_openai_chat_streaming_matches_non_streaming(server: ServerProcess, client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=20, **_greedy())
    chunks = list(
        client.chat.completions.create(
            model=SERVED,
            messages=MESSAGES,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
            **_greedy(),
        )
    )
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == full.choices[0].message.content
    )
    # Now the wire format itself, which the client does not validate.
    r = _post(
        server,
        "/v1/chat/completions",
        {"model": SERVED, "messages": MESSAGES, "max_tokens": 20, "stream": True,
         "stream_options": {"include_usage": True}, "temperature": 0},
    )  # fmt: skip
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    ids = {e["id"] for e in events}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert all(e["object"] == "chat.completion.chunk" and e["model"] == SERVED for e in events)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    with_choices = [e for e in events if e["choices"]]
    finishes = [e["choices"][0]["finish_reason"] for e in with_choices if e["choices"][0]["finish_reason"]]
    assert len(finishes) == 1 and with_choices[-1]["choices"][0]["finish_reason"] == finishes[0]
    usage_events = [e for e in events if not e["choices"]]
    assert len(usage_events) == 1 and events[-1] is usage_events[0]
    _check_usage(usage_events[0]["usage"])
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in with_choices)
    assert text == full.choices[0].message.content
    assert usage_events[0]["usage"] == full.usage.model_dump(exclude_none=True)  # type: ignore[union-attr]


def test_openai_completions_stop_and_echo(client: openai.OpenAI, server: ServerProcess) -> None:
    raw = client.completions.with_raw_response.create(
        model=SERVED, prompt="hello world", max_tokens=24, **_greedy()
    )
    body = json.loads(raw.text)
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    _check_usage(body["usage"])
    _check_finish(choice, body["usage"], 24)
    text = choice["text"]
    assert len(text) >= 6, text
    # A stop string cuts the text just before it, with finish_reason "stop".
    stop = text[3:6]
    cut = client.completions.create(
        model=SERVED, prompt="hello world", max_tokens=24, stop=[stop], **_greedy()
    )
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = list(
        client.completions.create(
            model=SERVED, prompt="hello world", max_tokens=24, stop=stop, stream=True, **_greedy()
        )
    )
    assert "".join(c.choices[0].text for c in streamed) == text[: text.index(stop)]
    echoed = client.completions.create(
        model=SERVED, prompt="hello world", max_tokens=24, echo=True, **_greedy()
    )
    assert echoed.choices[0].text == "hello world" + text
    # Token-id prompts work too.
    ids = _post(server, "/v1/completions", {"prompt": [5, 6, 7], "max_tokens": 2}).json()
    assert ids["usage"]["prompt_tokens"] == 3


def test_min_tokens_fixes_the_output_length(server: ServerProcess) -> None:
    # vLLM's `min_tokens` extension: end-of-sequence is suppressed until that many tokens.
    body = {"prompt": "one", "max_tokens": 40, "min_tokens": 40, "temperature": 1.0, "seed": 3}
    for _ in range(3):
        r = _post(server, "/v1/completions", body).json()
        assert r["usage"]["completion_tokens"] == 40
        assert r["choices"][0]["finish_reason"] == "length"


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    def run(seed: int) -> str:
        r = client.completions.create(
            model=SERVED, prompt="hi", max_tokens=16, temperature=1.0, top_p=0.95, seed=seed
        )
        return r.choices[0].text

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_models_lists_base_and_adapters(client: openai.OpenAI, server: ServerProcess) -> None:
    body = httpx.get(f"{server.url}/v1/models", timeout=30).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [SERVED, "a1", "a2"]
    for m in body["data"]:
        assert m["object"] == "model" and m["owned_by"] == "kaito" and isinstance(m["created"], int)
    assert {m["id"]: m.get("strength") for m in body["data"][1:]} == {"a1": 0.5, "a2": 0.8}
    assert [m.id for m in client.models.list()] == [SERVED, "a1", "a2"]


def test_selecting_an_adapter_by_name_changes_the_output(client: openai.OpenAI) -> None:
    outputs = {}
    for name in (SERVED, "a1", "a2"):
        r = client.chat.completions.create(model=name, messages=MESSAGES, max_tokens=16, **_greedy())
        assert r.model == name
        outputs[name] = r.choices[0].message.content
    assert outputs["a1"] != outputs[SERVED]
    assert outputs["a2"] != outputs[SERVED]
    assert outputs["a1"] != outputs["a2"]
    # Same request again through a mixed batch gives the same answers (per-row adapters).
    results: dict[str, str] = {}

    def one(name: str) -> None:
        r = client.chat.completions.create(model=name, messages=MESSAGES, max_tokens=16, **_greedy())
        results[name] = r.choices[0].message.content or ""

    threads = [threading.Thread(target=one, args=(n,)) for n in outputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == outputs


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-5", messages=MESSAGES, max_tokens=2)
    err = info.value.body
    assert isinstance(err, dict)
    assert err["message"] == f"The model 'gpt-5' does not exist. Available models: {SERVED}, a1, a2."
    assert err["code"] == "model_not_found" and err["param"] == "model"


# --------------------------------------------------------------------------- batching


def _metric(server: ServerProcess, name: str, labels: dict[str, str] | None = None) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                total += sample.value
    return total


def test_new_request_joins_a_running_batch(server: ServerProcess) -> None:
    """A short request finishes while a long one is still streaming: it did not wait for it."""
    chunk_times: list[float] = []
    first_chunk = threading.Event()

    def long_stream() -> None:
        body = {"model": SERVED, "prompt": "one two", "max_tokens": 200, "stream": True, "temperature": 0}
        with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    chunk_times.append(time.monotonic())
                    first_chunk.set()

    steps_before = _metric(server, "kaito_serve_decode_batch_size_count")
    multi_before = steps_before - _metric(server, "kaito_serve_decode_batch_size_bucket", {"le": "1.0"})
    t = threading.Thread(target=long_stream)
    t.start()
    assert first_chunk.wait(60)
    r = _post(server, "/v1/completions", {"model": SERVED, "prompt": "hi", "max_tokens": 4, "temperature": 0})
    short_done = time.monotonic()
    t.join(120)
    assert r.status_code == 200
    assert chunk_times[-1] > short_done, "the short request waited for the long one"
    multi_after = _metric(server, "kaito_serve_decode_batch_size_count") - _metric(
        server, "kaito_serve_decode_batch_size_bucket", {"le": "1.0"}
    )
    assert multi_after > multi_before  # some decode steps ran with more than one row


def test_stream_disconnect_stops_generation(server: ServerProcess) -> None:
    cancelled_before = _metric(server, "kaito_serve_finished_requests_total", {"reason": "cancelled"})
    body = {
        "model": SERVED,
        "prompt": "one",
        "max_tokens": TOKENS_LIMIT - 10,
        "stream": True,
        "temperature": 0,
    }
    body["max_tokens"] = MODEL_LEN - 10
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=120) as r:
        lines = r.iter_lines()
        for _ in range(3):
            next(lines)
    # Closing the response closed the connection; the engine must notice and free the row.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _metric(server, "kaito_serve_finished_requests_total", {"reason": "cancelled"}) > cancelled_before:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the disconnected stream was not cancelled")
    assert _metric(server, "kaito_serve_running_requests") == 0


# --------------------------------------------------------------------------- health, metrics


def test_health_root_and_metrics(server: ServerProcess) -> None:
    assert server.health_codes[-1] == 200
    for path in ("/health", "/healthz"):
        r = httpx.get(f"{server.url}{path}", timeout=30)
        assert (r.status_code, r.json()) == (200, {"status": "Healthy"})
    assert httpx.get(f"{server.url}/", timeout=30).json() == {"message": "Server is running"}
    _post(server, "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 2})
    r = httpx.get(f"{server.url}/metrics", timeout=30)
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert families["kaito_serve_requests"].type == "counter"
    statuses = {(s.labels["route"], s.labels["status"]) for s in families["kaito_serve_requests"].samples}
    assert ("/v1/chat/completions", "200") in statuses
    assert families["kaito_serve_request_duration_seconds"].type == "histogram"
    assert families["kaito_serve_time_to_first_token_seconds"].type == "histogram"
    for gauge in ("kaito_serve_queue_depth", "kaito_serve_batch_size", "kaito_serve_model_load_seconds"):
        assert families[gauge].type == "gauge"
    assert _metric(server, "kaito_serve_prompt_tokens_total") > 0
    assert _metric(server, "kaito_serve_generated_tokens_total") > 0
    assert _metric(server, "kaito_serve_time_to_first_token_seconds_count") > 0
    assert _metric(server, "kaito_serve_model_load_seconds") > 0
    assert _metric(server, "kaito_serve_model_loaded") == 1
    # A CPU-only server process runs the thread governor: its count is one of the usable cores'.
    assert 1 <= _metric(server, "kaito_serve_cpu_threads") <= len(os.sched_getaffinity(0))


# --------------------------------------------------------------------------- bad input


def _v1(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> tuple[int, dict[str, Any]]:
    return status, {"message": message, "param": param, "code": code}


def _legacy(message: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"detail": message}


CHAT = "/v1/chat/completions"
BAD_REQUESTS: list[tuple[str, str, Any, tuple[int, dict[str, Any]]]] = [
    ("empty body", CHAT, b"", _v1("Request body is empty; send a JSON object.")),
    ("not JSON", CHAT, b"{not json", _v1("Request body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")),
    ("JSON array", CHAT, [1, 2], _v1("Request body must be a JSON object, got an array.")),
    ("no messages", CHAT, {"model": SERVED}, _v1("Missing required parameter: 'messages'.", "messages")),
    ("messages not a list", CHAT, {"messages": "hi"}, _v1("Invalid type for 'messages': expected an array, but got a string instead.", "messages")),
    ("empty messages", CHAT, {"messages": []}, _v1("'messages' must contain at least one message.", "messages")),
    ("bad role", CHAT, {"messages": [{"role": "wizard", "content": "x"}]}, _v1("'messages[0].role' must be one of system, user, assistant, developer, tool, got 'wizard'.", "messages[0].role")),
    ("content not text", CHAT, {"messages": [{"role": "user", "content": 5}]}, _v1("Invalid type for 'messages[0].content': expected a string or an array of text parts, but got an integer instead.", "messages[0].content")),
    ("image part", CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, _v1("'messages[0].content[0]' must be a text part {\"type\": \"text\", \"text\": ...}; images and audio are not supported.", "messages[0].content")),
    ("temperature string", CHAT, {"messages": MESSAGES, "temperature": "hot"}, _v1("Invalid type for 'temperature': expected a number, but got a string instead.", "temperature")),
    ("temperature too high", CHAT, {"messages": MESSAGES, "temperature": 5}, _v1("'temperature' must be in [0, 2], got 5.", "temperature")),
    ("top_p zero", CHAT, {"messages": MESSAGES, "top_p": 0}, _v1("'top_p' must be in (0, 1], got 0.", "top_p")),
    ("max_tokens negative", CHAT, {"messages": MESSAGES, "max_tokens": -1}, _v1("'max_tokens' must be an integer in [1, 2147483647], got -1.", "max_tokens")),
    ("max_tokens bool", CHAT, {"messages": MESSAGES, "max_tokens": True}, _v1("Invalid type for 'max_tokens': expected an integer, but got a boolean instead.", "max_tokens")),
    ("max_tokens over limit", CHAT, {"messages": MESSAGES, "max_tokens": 100000}, _v1(f"'max_tokens' is 100000, more than this server's limit of {TOKENS_LIMIT}.", "max_tokens")),
    ("context exceeded", CHAT, {"messages": MESSAGES, "max_tokens": 290}, _v1("This model's maximum context length is 256 tokens. However, you requested {chat_total} tokens ({chat_prompt} in the messages, 290 in the completion). Please reduce the length of the messages or completion.", "messages", "context_length_exceeded")),
    ("n=2", CHAT, {"messages": MESSAGES, "n": 2}, _v1("'n' must be 1: this server returns one choice per request.", "n")),
    ("stream not bool", CHAT, {"messages": MESSAGES, "stream": "yes"}, _v1("Invalid type for 'stream': expected a boolean, but got a string instead.", "stream")),
    ("too many stops", CHAT, {"messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, _v1("'stop' has 5 sequences; at most 4 are allowed.", "stop")),
    ("stream_options without stream", CHAT, {"messages": MESSAGES, "stream_options": {"include_usage": True}}, _v1("'stream_options' is only allowed when 'stream' is true.", "stream_options")),
    ("min_tokens above max_tokens", CHAT, {"messages": MESSAGES, "max_tokens": 2, "min_tokens": 3}, _v1("'min_tokens' (3) must not exceed 'max_tokens' (2).", "min_tokens")),
    ("logprobs", CHAT, {"messages": MESSAGES, "logprobs": True}, _v1("'logprobs' is not supported by this server.", "logprobs")),
    ("unknown model", CHAT, {"model": "nope", "messages": MESSAGES}, _v1(f"The model 'nope' does not exist. Available models: {SERVED}, a1, a2.", "model", "model_not_found", 404)),
    ("model not a string", CHAT, {"model": 3, "messages": MESSAGES}, _v1("Invalid type for 'model': expected a string, but got an integer instead.", "model")),
    ("completion prompt number", "/v1/completions", {"prompt": 5}, _v1("Invalid type for 'prompt': expected a string or an array of token ids, but got an integer instead.", "prompt")),
    ("completion batch prompt", "/v1/completions", {"prompt": ["a", "b"]}, _v1("'prompt' must be a string, an array with one string, or a non-empty array of token ids (batched prompts are not supported: send one request per prompt).", "prompt")),
    ("token id out of vocab", "/v1/completions", {"prompt": [1, 999999]}, _v1("'prompt' contains token id 999999, outside the vocabulary (size 1024).", "prompt")),
    ("chat without prompt", "/chat", {}, _legacy("Text generation parameter prompt required")),
    ("chat prompt not a string", "/chat", {"prompt": ["a"]}, _legacy("Invalid type for 'prompt': expected a string, but got an array instead.")),
    ("chat beams", "/chat", {"prompt": "hi", "generate_kwargs": {"num_beams": 4}}, _legacy("generate_kwargs.num_beams must be 1: beam search is not supported.")),
    ("chat unknown kwarg", "/chat", {"prompt": "hi", "generate_kwargs": {"foo": 1}}, _legacy("generate_kwargs: unsupported key(s) 'foo'; supported: max_length, max_new_tokens, min_length, min_new_tokens, do_sample, early_stopping, num_beams, num_return_sequences, temperature, top_k, top_p, typical_p, repetition_penalty, pad_token_id, eos_token_id, seed, stop, stop_strings.")),
    ("chat max_length too small", "/chat", {"prompt": "hello world", "generate_kwargs": {"max_length": 1}}, _legacy("Input length of input_ids is {hello_prompt}, but generate_kwargs.max_length is set to 1. Increase max_length or set generate_kwargs.max_new_tokens.")),
    ("chat bad JSON", "/chat", b'{"prompt": ', _legacy("Request body is not valid JSON: Expecting value: line 1 column 12 (char 11)")),
    ("chat generate_kwargs not object", "/chat", {"prompt": "hi", "generate_kwargs": [1]}, _legacy("Invalid type for 'generate_kwargs': expected an object, but got an array instead.")),
    ("body too large", CHAT, {"messages": [{"role": "user", "content": "x" * BODY_LIMIT}]}, _v1(f"Request body is larger than {BODY_LIMIT} bytes.", status=413)),
]  # fmt: skip


def _fill(value: Any, counts: dict[str, int]) -> Any:
    if isinstance(value, str):
        for key, n in counts.items():
            value = value.replace("{" + key + "}", str(n))
    return value


@pytest.fixture(scope="module")
def token_counts(server: ServerProcess) -> dict[str, int]:
    """Prompt sizes some messages quote, as the server itself counts them (they depend on the tokenizer)."""
    chat = _post(server, CHAT, {"messages": MESSAGES, "max_tokens": 1}).json()["usage"]["prompt_tokens"]
    hello = _post(server, "/v1/completions", {"prompt": "hello world", "max_tokens": 1}).json()["usage"]
    return {"chat_prompt": chat, "chat_total": chat + 290, "hello_prompt": hello["prompt_tokens"]}


@pytest.mark.parametrize(("name", "path", "body", "expected"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_with_a_message(
    server: ServerProcess,
    token_counts: dict[str, int],
    name: str,
    path: str,
    body: Any,
    expected: tuple[int, dict[str, Any]],
) -> None:
    status, want = expected
    want = {k: _fill(v, token_counts) for k, v in want.items()}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(
        f"{server.url}{path}", content=content, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert r.status_code == status, r.text
    if path.startswith("/v1/"):
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["message"] == want["message"]
        assert err["param"] == want["param"]
        assert err["code"] == want["code"]
        assert err["type"] == ("request_too_large" if status == 413 else "invalid_request_error")
    else:
        assert r.json() == want


def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(BODY_LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    r = httpx.post(
        f"{server.url}{CHAT}", content=chunks(), headers={"Content-Type": "application/json"}, timeout=60
    )
    assert r.status_code == 413
    assert r.json()["error"]["message"] == f"Request body is larger than {BODY_LIMIT} bytes."


def test_unknown_route_and_method(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}{CHAT}", timeout=30)
    assert r.status_code == 405
    assert r.json()["error"]["message"] == f"Method GET not allowed on {CHAT}"
    r = httpx.post(f"{server.url}/v1/embeddings", json={}, timeout=30)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "No route POST /v1/embeddings"
    assert httpx.get(f"{server.url}/nope", timeout=30).json() == {"detail": "No route GET /nope"}


def test_no_500_was_served(server: ServerProcess) -> None:
    """Runs last in this module: everything above, good or bad, got a non-5xx answer."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        if family.name == "kaito_serve_requests":
            bad = [
                s
                for s in family.samples
                if s.name.endswith("_total")
                and s.labels["status"].startswith("5")
                and s.labels["route"] not in ("/health", "/healthz")  # 503 while loading is by design
            ]
            assert not bad, bad
