"""`kaito-vllm` on a real vLLM (the CPU build, 0.32.0) on 127.0.0.1, driven with the openai client.

One server for the whole module (startup is 40-90 s): a tiny random-weight Llama with head_dim 32 (the
CPU attention kernel rejects 16), a LoRA adapter trained by our own `kaito-tune` in the adapters dir,
Kaito's config file overriding a CLI flag, and a queue bound small enough to provoke 429s.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tune"))

from tune_data import write_rows
from tune_support import cli_env, tune
from vllm_support import VllmServer, require_vllm_venv, start_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vllm")]

ADAPTER = "kaito-qa"
CONFIG_MAX_LEN = 384  # the config file's vllm: map sets this over the CLI's --max-model-len=512
MAX_WAITING = 2

TUNE_CONFIG = """\
training_config:
  ModelConfig:
    torch_dtype: "float32"
    local_files_only: true
  QuantizationConfig:
    load_in_4bit: false
  LoraConfig:
    r: 8
    lora_alpha: 16
    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
  TrainingArguments:
    per_device_train_batch_size: 4
    max_steps: 12
    learning_rate: 0.05
    logging_steps: 1
    save_strategy: "no"
"""


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama-hd32"), "llama", heads=2, kv_heads=2)


@pytest.fixture(scope="module")
def adapters_dir(tmp_path_factory: pytest.TempPathFactory, vllm_model: Path) -> Path:
    """`kaito-tune --method lora` on the tiny model; its output dir mounted as one named adapter."""
    root = tmp_path_factory.mktemp("vllm-tune")
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"what does kaito do with item {i}"},
                {"role": "assistant", "content": "kaito tunes it fast"},
            ]
        }
        for i in range(32)
    ]
    write_rows(root / "data" / "part-0.parquet", rows)
    home = root / "home"
    home.mkdir()
    run = tune(root, TUNE_CONFIG, vllm_model, "--method", "lora", env=cli_env(home))
    assert run.returncode == 0, run.stderr[-4000:]
    assert (run.output / "adapter_config.json").is_file()
    adapters = root / "adapters"
    adapters.mkdir()
    (adapters / ADAPTER).symlink_to(run.output, target_is_directory=True)
    return adapters


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, vllm_model: Path, adapters_dir: Path
) -> Iterator[VllmServer]:
    require_vllm_venv()
    root = tmp_path_factory.mktemp("vllm-server")
    config = root / "inference_config.yaml"
    config.write_text(f"vllm:\n  max-model-len: {CONFIG_MAX_LEN}\n  max-num-seqs: 2\n")
    srv = start_server(
        vllm_model,
        root / "server.log",
        f"--kaito-config-file={config}",
        f"--kaito-adapters-dir={adapters_dir}",
        f"--kaito-max-waiting={MAX_WAITING}",
        "--max-lora-rank=8",
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(server: VllmServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def test_models_lists_base_and_adapter_with_config_file_override(client: openai.OpenAI) -> None:
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {"tiny", ADAPTER}
    # The config file's vllm: map won over the command line's --max-model-len=512.
    assert models["tiny"].model_extra is not None
    assert models["tiny"].model_extra["max_model_len"] == CONFIG_MAX_LEN


def test_chat_and_completions(client: openai.OpenAI) -> None:
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0
    )
    assert chat.choices[0].finish_reason == "length"
    assert chat.usage is not None and chat.usage.completion_tokens == 8
    comp = client.completions.create(model="tiny", prompt="kaito is", max_tokens=5, temperature=0)
    assert comp.usage is not None and comp.usage.completion_tokens == 5
    assert isinstance(comp.choices[0].text, str)


def test_chat_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "count"}],
        max_tokens=6,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    assert len(chunks) >= 2
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason in ("length", "stop")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text


def test_seed_chat_literal_body(server: VllmServer) -> None:
    """The seeds' curl: POST /chat with {"prompt": "YOUR_PROMPT_HERE"} answers JSON with `Result`."""
    resp = httpx.post(
        f"{server.url}/chat",
        content=b'{"prompt": "YOUR_PROMPT_HERE"}',
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body["Result"], str) and body["Result"]


def _first_logprobs(client: openai.OpenAI, model: str) -> list[float]:
    comp = client.completions.create(
        model=model, prompt="what does kaito do with item 3", max_tokens=4, temperature=0, logprobs=1
    )
    assert comp.choices[0].logprobs is not None
    return [float(x) for x in comp.choices[0].logprobs.token_logprobs or []]


def test_kaito_tune_adapter_served_by_name(client: openai.OpenAI) -> None:
    base = _first_logprobs(client, "tiny")
    tuned = _first_logprobs(client, ADAPTER)
    assert len(base) == len(tuned) == 4
    assert max(abs(a - b) for a, b in zip(base, tuned, strict=True)) > 1e-3, (base, tuned)


def test_bad_requests_get_4xx_and_server_lives(server: VllmServer, client: openai.OpenAI) -> None:
    bad = [
        (b"{not json", "/v1/chat/completions"),
        (b'{"model": "tiny", "messages": "nope"}', "/v1/chat/completions"),
        (b'{"model": "no-such-model", "prompt": "x", "max_tokens": 2}', "/v1/completions"),
        (b'{"model": "tiny", "prompt": "x", "max_tokens": 100000}', "/v1/completions"),
        (b'{"prompt": 42}', "/chat"),
        (b"[" * 5000 + b"]" * 5000, "/chat"),  # RecursionError in json.loads: was a 500 from the middleware
        (b'{"prompt": "\xff"}', "/chat"),  # not UTF-8
        (b"", "/chat"),
    ]
    for body, path in bad:
        resp = httpx.post(f"{server.url}{path}", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= resp.status_code < 500, (path, body, resp.status_code, resp.text)
    assert server.alive()
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    assert client.completions.create(model="tiny", prompt="still", max_tokens=2).choices


def test_burst_gets_429_with_retry_after_and_counter(server: VllmServer) -> None:
    # Long enough answers that the burst is still waiting when the limiter reads vLLM's queue: with 48
    # tokens an idle host drained 24 requests before any was over the limit (2026-12-03, all 200).
    body = json.dumps({"model": "tiny", "prompt": "burst", "max_tokens": 200, "ignore_eos": True})

    def one(_: int) -> httpx.Response:
        return httpx.post(
            f"{server.url}/v1/completions",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=120,
        )

    # The limiter reads vLLM's own waiting-queue figure, which trails the burst by a scheduler step, so
    # on a fast host one burst can drain before it shows; up to three bursts, all of them judged.
    responses: list[httpx.Response] = []
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        for _ in range(3):
            responses += list(pool.map(one, range(32)))
            if any(r.status_code == 429 for r in responses):
                break
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 429}, codes
    limited = [r for r in responses if r.status_code == 429]
    assert limited, codes
    assert codes.count(200) >= 2, codes
    assert all(r.headers.get("Retry-After", "").isdigit() for r in limited)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    counter = [line for line in metrics.splitlines() if line.startswith("kaito_ratelimit_rejected_total")]
    assert counter and float(counter[0].split()[-1]) >= len(limited)
    # vLLM's own gauges are kept: KEDA scales on vllm:num_requests_waiting.
    assert "vllm:num_requests_waiting" in metrics
    assert "vllm:num_requests_running" in metrics


# Issue 12 item 6. Measured on the 2-core dev host (2026-12-03, load average ~11): the process tree (API
# server + engine core) holds ~2,850-2,880 MiB before and peaked at 2,880-3,120 MiB in three runs of this
# load (the queue bound lets only 4 requests in at a time; the rest get 429 before their body is read).
# Bound: 3,584 MiB, that peak plus ~450 MiB for a few in-flight 1 MB bodies and their token lists;
# BENCHMARKS.md states the same.
ABUSE_REQUESTS, ABUSE_CONCURRENCY = 2000, 64
ABUSE_PEAK_RSS_BOUND_MIB = 3584


def test_abuse_load_gets_only_answers(server: VllmServer, client: openai.OpenAI) -> None:
    import asyncio

    from vllm_abuse import MALFORMED_KINDS, RssPoller, hammer, tree_rss_mib

    with RssPoller(server.proc.pid, measure=tree_rss_mib) as rss:
        result = asyncio.run(hammer(server.url, "tiny", ABUSE_REQUESTS, ABUSE_CONCURRENCY, max_tokens=2))
    summary = (
        f"wall {result.wall:.1f}s, {result.attempts} attempts, tree RSS {rss.start:.0f} -> peak {rss.peak:.0f} "
        f"MiB, answers {dict(sorted(result.codes.items()))}, final {dict(sorted(result.outcomes.items()))}"
    )
    print(summary)
    assert not result.failures, (summary, result.failures[:20])
    assert sum(result.outcomes.values()) == ABUSE_REQUESTS
    # Every malformed kind was sent on every endpoint and judged (a 4xx other than 429), never served.
    for kind in MALFORMED_KINDS:
        judged = sum(n for k, n in result.outcomes.items() if k.startswith(f"{kind} ") and "429" not in k)
        assert judged >= 30, (kind, summary)
    assert result.codes[200] >= 50, summary  # the engine served real work during the abuse
    assert server.alive(), server.log()[-3000:]
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
    assert client.completions.create(model="tiny", prompt="after", max_tokens=2).choices
    assert rss.peak <= ABUSE_PEAK_RSS_BOUND_MIB, summary
    assert tree_rss_mib(server.proc.pid) <= ABUSE_PEAK_RSS_BOUND_MIB
