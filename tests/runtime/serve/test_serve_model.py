"""In-process tests of loading (dtype, hub cache, quantization, adapters) and of the batching engine."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from kaito_runtime.serve.engine import Engine, Event, GenerationRequest
from kaito_runtime.serve.loader import (
    BASE_ADAPTER,
    ModelLoadError,
    load_model,
    resolve_dtype,
    resolve_model_dir,
)
from kaito_runtime.serve.sampling import SamplingParams
from kaito_runtime.serve.settings import Limits, Settings, discover_adapters
from tiny_model import build_tiny_model


def _settings(model: Path, **kw: Any) -> Settings:
    return Settings(model=str(model), served_model_name="tiny", **kw)


def _last_logits(loaded: Any, text: str, adapter: str | None = None) -> Any:
    import torch

    ids = loaded.tokenizer(text, return_tensors="pt")
    kwargs: dict[str, Any] = {}
    if adapter is not None:
        kwargs["adapter_names"] = [adapter]
    with torch.inference_mode():
        return loaded.model(**ids, **kwargs).logits[0, -1].float()


def _adapters(adapters_dir: Path, strengths: dict[str, float]) -> tuple[Any, ...]:
    return discover_adapters(adapters_dir, strengths, {}, "tiny")


# --------------------------------------------------------------------------- loading


def test_dtype_auto_is_fp32_on_cpu() -> None:
    import torch

    assert not torch.cuda.is_available()
    assert resolve_dtype("auto") == torch.float32
    assert resolve_dtype("bfloat16") == torch.bfloat16


def test_hub_repo_resolves_from_pinned_revision_in_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    # The hub cache layout snapshot_download reads in offline mode (HF_HUB_OFFLINE=1 in this suite).
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--kaito-test--tiny"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / sha)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(sha)
    resolved = resolve_model_dir("kaito-test/tiny", sha, tmp_path, trust_remote_code=False)
    assert resolved == repo / "snapshots" / sha
    with pytest.raises(ModelLoadError, match=r"kaito-test/missing@0123.*not in the cache"):
        resolve_model_dir("kaito-test/missing", sha, tmp_path, trust_remote_code=False)
    with pytest.raises(ModelLoadError, match="directory not found"):
        resolve_model_dir(str(tmp_path / "nope"), None, None, trust_remote_code=False)


@pytest.mark.parametrize(
    ("quant", "layer", "weight_dtype"), [("4bit", "Linear4bit", "uint8"), ("8bit", "Linear8bitLt", "int8")]
)
def test_bitsandbytes_quantization_really_happens(
    tiny_model_dir: Path, quant: str, layer: str, weight_dtype: str
) -> None:
    import bitsandbytes as bnb

    loaded = load_model(_settings(tiny_model_dir, quantization=quant))  # type: ignore[arg-type]
    expected = getattr(bnb.nn, layer)
    proj = loaded.model.model.layers[0].self_attn.q_proj
    assert isinstance(proj, expected)
    assert str(proj.weight.dtype) == f"torch.{weight_dtype}"
    n_quantized = sum(isinstance(m, expected) for m in loaded.model.modules())
    assert n_quantized == 2 * 7  # 2 layers x (q, k, v, o, gate, up, down)
    assert not isinstance(loaded.model.lm_head, expected)  # lm_head stays in full precision
    # And it still generates through the engine.
    events = _run_engine(loaded, [("hello world", SamplingParams(max_new_tokens=4, do_sample=False))])
    assert events[0][-1].kind == "done"
    assert events[0][-1].completion_tokens >= 1


def test_bad_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"cannot load config/tokenizer"):
        load_model(_settings(tmp_path))


# --------------------------------------------------------------------------- adapters


def test_adapter_strength_zero_gives_base_logits_and_half_lies_between(
    tiny_model_dir: Path, lora_adapters_dir: Path
) -> None:
    import torch

    text = "what is kaito gpu model"
    base = _last_logits(load_model(_settings(tiny_model_dir)), text)
    by_strength = {}
    for strength in (0.0, 0.5, 1.0):
        specs = tuple(s for s in _adapters(lora_adapters_dir, {"a1": strength}) if s.name == "a1")
        loaded = load_model(_settings(tiny_model_dir, adapters=specs))
        by_strength[strength] = _last_logits(loaded, text)
    assert torch.equal(by_strength[0.0], base)
    full = (by_strength[1.0] - base).norm()
    half = (by_strength[0.5] - base).norm()
    assert full > 0.1  # the adapter really changes the model
    assert 0 < half < full
    assert (by_strength[1.0] - by_strength[0.5]).norm() > 0


def test_two_adapters_of_different_rank_combine_and_stay_selectable(
    tiny_model_dir: Path, lora_adapters_dir: Path
) -> None:
    import torch

    text = "hello world what is"
    specs = _adapters(lora_adapters_dir, {"a1": 0.5})
    assert [(s.name, s.strength, s.rank) for s in specs] == [("a1", 0.5, 4), ("a2", 1.0, 8)]
    loaded = load_model(_settings(tiny_model_dir, adapters=specs))
    assert loaded.adapter_routes == {"a1": "a1", "a2": "a2"}
    combined = _last_logits(loaded, text)
    base = _last_logits(loaded, text, BASE_ADAPTER)
    only_a1 = _last_logits(loaded, text, "a1")
    only_a2 = _last_logits(loaded, text, "a2")
    assert torch.equal(base, _last_logits(load_model(_settings(tiny_model_dir)), text))
    for other in (base, only_a1, only_a2):
        assert (combined - other).norm() > 1e-3
    assert (only_a1 - only_a2).norm() > 1e-3


@pytest.mark.parametrize("combination", ["svd", "linear"])
def test_combination_types(tiny_model_dir: Path, lora_adapters_dir: Path, combination: str) -> None:
    specs = _adapters(lora_adapters_dir, {})
    settings = _settings(tiny_model_dir, adapters=specs, limits=Limits(combination_type=combination))  # type: ignore[arg-type]
    if combination == "linear":
        with pytest.raises(ModelLoadError, match="linear needs adapters of equal rank; ranks are a1=4, a2=8"):
            load_model(settings)
    else:
        assert load_model(settings).adapter_routes == {"a1": "a1", "a2": "a2"}


def test_incompatible_adapter_is_a_clear_load_error(tiny_model_dir: Path, phi3_adapter_dir: Path) -> None:
    specs = discover_adapters(phi3_adapter_dir, {}, {}, "tiny")
    with pytest.raises(ModelLoadError, match=r"adapter .*phi-3-adapter: cannot be applied to .*qkv_proj"):
        load_model(_settings(tiny_model_dir, adapters=specs))


# --------------------------------------------------------------------------- engine


def _run_engine(
    loaded: Any, jobs: list[tuple[str, SamplingParams]], max_batch: int = 4, stagger: float = 0.0
) -> list[list[Event]]:
    import time

    engine = Engine(loaded, max_batch_size=max_batch, max_queue=len(jobs))
    engine.start()
    events: list[list[Event]] = [[] for _ in jobs]
    done = threading.Semaphore(0)

    def sink(i: int) -> Any:
        def on_event(event: Event) -> None:
            events[i].append(event)
            if event.kind != "token":
                done.release()

        return on_event

    try:
        for i, (text, params) in enumerate(jobs):
            ids = loaded.tokenizer(text)["input_ids"]
            engine.submit(GenerationRequest(prompt_ids=ids, params=params, on_event=sink(i)))
            time.sleep(stagger * i)
        for _ in jobs:
            assert done.acquire(timeout=120), "engine did not finish"
    finally:
        engine.stop()
    return events


def _text(events: list[Event]) -> str:
    return "".join(e.text for e in events if e.kind == "token")


def test_batched_engine_matches_greedy_generate(tiny_model_dir: Path) -> None:
    """Rows joining mid-flight, leaving early and sharing a left-padded cache give generate's tokens."""
    import torch

    loaded = load_model(_settings(tiny_model_dir))
    prompts = [
        "hello world",
        "what is kaito gpu model adapter token server",
        "one",
        "the red green blue batch queue stream cluster node pool karpenter",
        "tuning weights",
        "x",
    ]
    jobs = [(p, SamplingParams(max_new_tokens=12 + 5 * i, do_sample=False)) for i, p in enumerate(prompts)]
    events = _run_engine(loaded, jobs, max_batch=4, stagger=0.01)
    eos = sorted(loaded.eos_token_ids)
    for (prompt, params), evs in zip(jobs, events, strict=True):
        ids = loaded.tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = loaded.model.generate(
                **ids, max_new_tokens=params.max_new_tokens, do_sample=False, eos_token_id=eos
            )
        new = out[0, ids["input_ids"].shape[1] :]
        assert _text(evs) == loaded.tokenizer.decode(new, skip_special_tokens=True)
        done = evs[-1]
        assert done.kind == "done"
        assert done.completion_tokens == len(new)
        assert done.finish_reason == ("stop" if int(new[-1]) in loaded.eos_token_ids else "length")


def test_a_buffered_answer_wakes_the_event_loop_once_with_the_same_text(tiny_model_dir: Path) -> None:
    """Non-streamed answers keep token text on the engine's side: one loop wake-up per request."""
    import asyncio

    from kaito_runtime.serve.bridge import Stream

    loaded = load_model(_settings(tiny_model_dir))
    engine = Engine(loaded, max_batch_size=2, max_queue=2)
    engine.start()
    params = SamplingParams(max_new_tokens=20, min_new_tokens=20, do_sample=False)

    async def run(buffered: bool) -> tuple[Stream, list[Event]]:
        stream = Stream(asyncio.get_running_loop(), buffered)
        ids = loaded.tokenizer("hello world")["input_ids"]
        engine.submit(GenerationRequest(prompt_ids=ids, params=params, on_event=stream.on_event))
        events: list[Event] = []
        while not events or events[-1].kind == "token":
            event = await asyncio.wait_for(stream.queue.get(), 120)
            assert event is not None
            events.append(event)
        return stream, events

    try:
        _, streamed = asyncio.run(run(False))
        buffered, delivered = asyncio.run(run(True))
    finally:
        engine.stop()
    assert any(e.kind == "token" for e in streamed)  # streamed: the loop wakes for tokens
    assert [e.kind for e in delivered] == ["done"]  # buffered: only for the end
    assert buffered.parts and "".join(buffered.parts) == _text(streamed)


def test_a_stream_merges_the_tokens_that_arrive_while_the_loop_is_busy() -> None:
    """Tokens emitted before the event loop gets to run go out as one event, in order, before the end."""
    import asyncio

    from kaito_runtime.serve.bridge import Stream

    loop = asyncio.new_event_loop()
    try:
        stream = Stream(loop)
        for text in ("a", "b", "c"):  # the loop is not running: it is "busy"
            stream.on_event(Event("token", text=text))
        loop.run_until_complete(asyncio.sleep(0))
        stream.on_event(Event("token", text="d"))  # the loop keeps up: a wake-up of its own
        loop.run_until_complete(asyncio.sleep(0))
        stream.on_event(Event("token", text="e"))
        stream.on_event(Event("done", finish_reason="length", completion_tokens=5))
        loop.run_until_complete(asyncio.sleep(0))
        got = []
        while not stream.queue.empty():
            event = stream.queue.get_nowait()
            assert event is not None
            got.append((event.kind, event.text))
    finally:
        loop.close()
    assert got == [("token", "abc"), ("token", "d"), ("token", "e"), ("done", "")]


def test_long_generations_match_generate_across_kv_buffer_growth(tiny_model_dir: Path) -> None:
    """150 tokens cross the in-place KV buffer's capacity (prefill + 64 spare columns) at least once,
    while a short row retires from the same batch: the tokens are still generate's."""
    import torch

    loaded = load_model(_settings(tiny_model_dir))
    jobs = [
        ("the red green blue batch", SamplingParams(max_new_tokens=150, min_new_tokens=150, do_sample=False)),
        ("x", SamplingParams(max_new_tokens=5, min_new_tokens=5, do_sample=False)),
    ]
    events = _run_engine(loaded, jobs, max_batch=2)
    eos = sorted(loaded.eos_token_ids)
    for (prompt, params), evs in zip(jobs, events, strict=True):
        ids = loaded.tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            out = loaded.model.generate(
                **ids,
                max_new_tokens=params.max_new_tokens,
                min_new_tokens=params.min_new_tokens,
                do_sample=False,
                eos_token_id=eos,
            )
        new = out[0, ids["input_ids"].shape[1] :]
        assert evs[-1].completion_tokens == params.max_new_tokens == len(new)
        assert _text(evs) == loaded.tokenizer.decode(new, skip_special_tokens=True)


def test_seed_makes_sampling_reproducible(tiny_model_dir: Path) -> None:
    loaded = load_model(_settings(tiny_model_dir))

    def params(seed: int) -> SamplingParams:
        return SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, top_k=50, seed=seed)

    runs = _run_engine(loaded, [("hello", params(7)), ("hello", params(7)), ("hello", params(8))])
    texts = [_text(r) for r in runs]
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]


def test_cancelled_request_leaves_the_batch(tiny_model_dir: Path) -> None:
    loaded = load_model(_settings(tiny_model_dir))
    engine = Engine(loaded, max_batch_size=2, max_queue=2)
    engine.start()
    finished = threading.Event()
    seen: list[Event] = []
    req: GenerationRequest

    def on_event(event: Event) -> None:
        seen.append(event)
        if event.kind == "token" and len(seen) == 3:
            req.cancel()
        if event.kind != "token":
            finished.set()

    req = GenerationRequest(
        prompt_ids=loaded.tokenizer("hello")["input_ids"],
        params=SamplingParams(max_new_tokens=400, do_sample=False),
        on_event=on_event,
    )
    try:
        engine.submit(req)
        assert finished.wait(60)
        assert seen[-1].finish_reason == "cancelled"
        assert seen[-1].completion_tokens < 400
        assert engine.in_system == 0
    finally:
        engine.stop()


def test_phi3_model_serves_through_the_engine(tiny_phi3_dir: Path) -> None:
    loaded = load_model(_settings(tiny_phi3_dir))
    events = _run_engine(loaded, [("hello", SamplingParams(max_new_tokens=5, do_sample=False))] * 2)
    assert _text(events[0]) == _text(events[1])
    assert events[0][-1].kind == "done"


def test_build_tiny_model_is_deterministic(tmp_path: Path) -> None:
    a = build_tiny_model(tmp_path / "a", layers=1)
    b = build_tiny_model(tmp_path / "b", layers=1)
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
