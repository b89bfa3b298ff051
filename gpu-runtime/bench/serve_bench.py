"""Benchmark for kaito-serve (not a test): throughput, latency and TTFT at 1/4/16/64 concurrent streams.

Two ways to run it:

  # drive any OpenAI-compatible server
  python gpu-runtime/bench/serve_bench.py --url http://127.0.0.1:5000 --model NAME

  # the full comparison, in one run, on a bench-size random model (6 layers, hidden 512):
  #   kaito-serve with batching, the same server with --max-batch-size 1 (one request at a time,
  #   as Kaito's transformers runtime serves), and a bare `model.generate` loop
  python gpu-runtime/bench/serve_bench.py --write BENCHMARKS.md

Every request sends the same fixed prompt (token ids, so its length is exact) and asks for a
fixed number of tokens (`min_tokens` = `max_tokens`, so random-weight EOS cannot end it early).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
SECTION = "serve"
LEVELS = (1, 4, 16, 64)
ANCHOR_LEVELS = (1, 16)  # the Kaito anchors serve one request per thread: 64 streams would take minutes


# --------------------------------------------------------------------------- load generator


@dataclass
class Sample:
    ttft: float
    latency: float
    tokens: int


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    wall: float
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.samples)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall if self.wall > 0 else 0.0

    def pct(self, attr: str, q: float) -> float:
        values = sorted(getattr(s, attr) for s in self.samples)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def _one_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    start = time.perf_counter()
    ttft = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                tokens = int(event["usage"]["completion_tokens"])
            elif ttft is None and event["choices"] and event["choices"][0].get("text"):
                ttft = time.perf_counter() - start
    latency = time.perf_counter() - start
    return Sample(ttft=ttft if ttft is not None else latency, latency=latency, tokens=tokens)


async def _one_pipeline_request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Sample:
    """Kaito's seed-era `/chat`: one JSON answer, no streaming (TTFT = latency)."""
    start = time.perf_counter()
    r = await client.post(f"{url}/chat", json=body)
    if r.status_code != 200 or "Result" not in r.json():
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]!r}")
    latency = time.perf_counter() - start
    return Sample(ttft=latency, latency=latency, tokens=int(body["generate_kwargs"]["max_new_tokens"]))


def _bodies(flavor: str, model: str, prompt: list[int], text: str, out_len: int) -> tuple[Any, Any]:
    """(request body, warm-up body) for a server flavor: kaito-serve takes token ids and
    `min_tokens`; `transformers serve` only a string prompt (no min_tokens, no stream_options: its
    last chunk carries `usage` anyway); the pipeline server Kaito's legacy `/chat` body."""
    if flavor == "pipeline":
        kw = {"max_new_tokens": out_len, "min_new_tokens": out_len, "do_sample": False}
        body: dict[str, Any] = {"prompt": text, "generate_kwargs": kw}
        warm = {"prompt": text, "generate_kwargs": {**kw, "max_new_tokens": 2, "min_new_tokens": 2}}
        return body, warm
    if flavor == "tserve":
        body = {"model": model, "prompt": text, "max_tokens": out_len, "temperature": 0, "stream": True}
        return body, {**body, "max_tokens": 2}
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": out_len,
        "min_tokens": out_len,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return body, {**body, "max_tokens": 2, "min_tokens": 2}


async def run_level(
    url: str,
    model: str,
    prompt: list[int],
    out_len: int,
    concurrency: int,
    per_stream: int,
    flavor: str = "kaito",
    text: str = "",
) -> LevelResult:
    body, warm = _bodies(flavor, model, prompt, text, out_len)
    one = _one_pipeline_request if flavor == "pipeline" else _one_request
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    result = LevelResult(concurrency, concurrency * per_stream, 0.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:

        async def stream_worker() -> None:
            for _ in range(per_stream):
                try:
                    result.samples.append(await one(client, url, body))
                except (httpx.HTTPError, RuntimeError) as exc:
                    result.errors += 1
                    print(f"  request failed: {exc}", file=sys.stderr)

        await one(client, url, warm)  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(stream_worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - start
    return result


def drive(
    url: str, model: str, prompt: list[int], out_len: int, levels: tuple[int, ...], label: str
) -> list[LevelResult]:
    results = []
    for c in levels:
        res = asyncio.run(run_level(url, model, prompt, out_len, c, 2 if c == 1 else 1))
        _print(label, res)
        results.append(res)
    return results


def _print(label: str, res: LevelResult) -> None:
    print(
        f"[{label}] {res.concurrency:>3} streams: {res.tokens_per_s:8.1f} tok/s  p50 {res.pct('latency', 0.5):.2f}s "
        f"p99 {res.pct('latency', 0.99):.2f}s  TTFT p50 {res.pct('ttft', 0.5) * 1000:.0f}ms "
        f"p99 {res.pct('ttft', 0.99) * 1000:.0f}ms  errors {res.errors}  (load {os.getloadavg()[0]:.2f})",
        flush=True,
    )


# --------------------------------------------------------------------------- local comparison


def build_bench_model(dest: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    from tiny_model import build_tiny_model

    return build_tiny_model(
        dest,
        "llama",
        hidden=512,
        layers=6,
        heads=8,
        kv_heads=8,
        intermediate=1376,
        vocab=1024,
        max_position_embeddings=2048,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """kaito-serve (or, with `anchor`, one of the Kaito anchors) as a subprocess on 127.0.0.1."""

    def __init__(
        self, model_dir: Path, extra: list[str], log: Path, anchor: str = "", threads: int = 0
    ) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if anchor == "pipeline":
            cmd = [sys.executable, str(Path(__file__).with_name("kaito_pipeline_server.py")),
                   "--model", str(model_dir), "--port", str(self.port)]  # fmt: skip
        elif anchor == "tserve":
            cmd = [str(Path(sys.executable).parent / "transformers"), "serve", str(model_dir),
                   "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
                   "--dtype", "float32"]  # fmt: skip
        else:
            script = Path(sys.executable).parent / "kaito-serve"
            cmd = [str(script)] if script.exists() else [sys.executable, "-m", "kaito_runtime.serve.cli"]
            cmd += ["--model", str(model_dir), "--served-model-name", "bench", "--host", "127.0.0.1",
                    "--port", str(self.port), "--dtype", "float32", *extra]  # fmt: skip
        if anchor and threads:
            # The anchors get kaito-serve's torch thread count (its CPU rule), not torch's default,
            # which stalls on a busy host (see the notes): a like-for-like, conservative comparison.
            env["OMP_NUM_THREADS"] = str(threads)
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{cmd[0]} did not become ready")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _cpu_threads(url: str) -> float:
    """kaito-serve's thread governor's current count, from its /metrics (NaN if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        if family.name == "kaito_serve_cpu_threads" and family.samples:
            return float(family.samples[0].value)
    return float("nan")


def load_bare(model_dir: Path) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def bare_generate(model: Any, prompt: list[int], out_len: int, repeats: int, threads: int) -> float:
    """Tokens/s of a plain greedy `model.generate` loop, one request at a time, same model and lengths."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    ids = torch.tensor([prompt])
    mask = torch.ones_like(ids)
    try:
        with torch.inference_mode():
            model.generate(ids, attention_mask=mask, max_new_tokens=2, min_new_tokens=2, do_sample=False)
            start = time.perf_counter()
            tokens = 0
            for _ in range(repeats):
                out = model.generate(
                    ids, attention_mask=mask, max_new_tokens=out_len, min_new_tokens=out_len, do_sample=False
                )
                tokens += out.shape[1] - ids.shape[1]
            return tokens / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)


def transformers_cb_probe(model_dir: Path, prompt: list[int], out_len: int, n: int) -> dict[str, float]:
    """transformers' own continuous batching (generate_batch) against padded generate, same batch."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = [prompt[i % 7 :] for i in range(n)]  # slightly different lengths
    out: dict[str, float] = {}
    cfg = GenerationConfig(max_new_tokens=out_len, do_sample=False, eos_token_id=-1, pad_token_id=0)
    try:
        model.generate_batch(
            inputs=prompts[:2],
            generation_config=GenerationConfig(
                max_new_tokens=2, do_sample=False, eos_token_id=-1, pad_token_id=0
            ),
        )
        start = time.perf_counter()
        model.generate_batch(inputs=prompts, generation_config=cfg)
        out["transformers_cb_tok_s"] = n * out_len / (time.perf_counter() - start)
    except Exception as exc:  # report, don't fail the benchmark
        print(f"generate_batch failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        out["transformers_cb_tok_s"] = float("nan")
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.inference_mode():
        start = time.perf_counter()
        model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=out_len,
            min_new_tokens=out_len,
            do_sample=False,
            pad_token_id=0,
        )
        out["padded_generate_tok_s"] = n * out_len / (time.perf_counter() - start)
    return out


# --------------------------------------------------------------------------- report


def _table(rows: list[LevelResult], medians: dict[int, float] | None = None) -> list[str]:
    lines = [
        "| streams | requests | tokens/s | median tokens/s | latency p50 | latency p99 | TTFT p50 | TTFT p99 | errors |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        med = f"{medians[r.concurrency]:.1f}" if medians else "-"
        lines.append(
            f"| {r.concurrency} | {r.requests} | {r.tokens_per_s:.1f} | {med} | {r.pct('latency', 0.5):.2f} s | "
            f"{r.pct('latency', 0.99):.2f} s | {r.pct('ttft', 0.5) * 1000:.0f} ms | "
            f"{r.pct('ttft', 0.99) * 1000:.0f} ms | {r.errors} |"
        )
    return lines


def write_section(path: Path, body: str) -> None:
    """Replace only our `<!-- BEGIN serve -->` ... `<!-- END serve -->` block (append it if absent)."""
    begin, end = f"<!-- BEGIN {SECTION} -->", f"<!-- END {SECTION} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def machine() -> str:
    import torch

    load = os.getloadavg()
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs; load average before the run "
        f"{load[0]:.2f}), torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}"
    )


def _level_json(r: LevelResult) -> dict[str, Any]:
    return {
        "concurrency": r.concurrency,
        "requests": r.requests,
        "wall": r.wall,
        "errors": r.errors,
        "samples": [[x.ttft, x.latency, x.tokens] for x in r.samples],
    }


def _level_from_json(d: dict[str, Any]) -> LevelResult:
    res = LevelResult(d["concurrency"], d["requests"], d["wall"], errors=d["errors"])
    res.samples = [Sample(ttft=a, latency=b, tokens=c) for a, b, c in d["samples"]]
    return res


def measure(prompt_len: int, output_len: int, levels: tuple[int, ...], rounds: int) -> dict[str, Any]:
    """All configurations, interleaved round by round, so that they see the same background load."""
    import torch
    from kaito_runtime.serve.loader import configure_cpu_threads

    prompt = [10 + (i * 37) % 1000 for i in range(prompt_len)]
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    model_dir = build_bench_model(work / "model")
    default_threads = torch.get_num_threads()
    budget = configure_cpu_threads()  # what kaito-serve starts with (its governor then follows the load)
    server_threads = budget.initial_threads() if budget is not None else default_threads
    torch.set_num_threads(default_threads)
    run: dict[str, Any] = {
        "machine": machine(),
        "started": time.time(),
        "prompt_len": prompt_len,
        "output_len": output_len,
        "rounds": rounds,
        "server_threads": server_threads,
        "default_threads": default_threads,
        "load_before": os.getloadavg()[0],
        "cores": os.cpu_count() or 1,
        "threads_seen": {"on": {str(c): [] for c in levels}, "off": {str(c): [] for c in levels}},
        "on": {str(c): [] for c in levels},
        "off": {str(c): [] for c in levels},
        "bare": [],  # torch's default threads: what kaito-serve runs on an otherwise idle host
        "bare_start_threads": [],
        "anchor_levels": [c for c in ANCHOR_LEVELS if c in levels],
        "pipeline": {str(c): [] for c in ANCHOR_LEVELS if c in levels},
        "chat": {str(c): [] for c in ANCHOR_LEVELS if c in levels},  # kaito-serve on /chat, as the pipeline
        "tserve": {str(c): [] for c in ANCHOR_LEVELS if c in levels},
    }
    from transformers import AutoTokenizer

    # One prompt for every server: words added while the text stays within `prompt_len` tokens;
    # kaito-serve gets its token ids, the anchors (string prompts only) the text itself.
    tok = AutoTokenizer.from_pretrained(model_dir)
    words = [
        "the",
        "kaito",
        "gpu",
        "model",
        "adapter",
        "token",
        "server",
        "request",
        "batch",
        "queue",
        "stream",
        "cluster",
        "node",
    ]
    text = words[0]
    for i in range(1, 10 * prompt_len):
        longer = f"{text} {words[i % len(words)]}"
        if len(tok(longer, add_special_tokens=False)["input_ids"]) > prompt_len:
            break
        text = longer
    prompt = tok(text, add_special_tokens=False)["input_ids"]
    run["prompt_len"] = run["anchor_prompt_tokens"] = len(prompt)
    bare_model = load_bare(model_dir)
    on = Server(model_dir, ["--max-batch-size", "64", "--max-queue", "256"], work / "on.log")
    off = Server(model_dir, ["--max-batch-size", "1", "--max-queue", "256"], work / "off.log")
    # The anchors run as Kaito runs them: no thread setting, so torch's default (one per core).
    pipe = Server(model_dir, [], work / "pipeline.log", anchor="pipeline")
    tserve = Server(model_dir, [], work / "tserve.log", anchor="tserve")
    # "chat": the batching server asked exactly what the pipeline anchor is asked (Kaito's /chat, one
    # JSON answer), so that pair compares the same request on the same endpoint.
    servers = (("on", on, "kaito", "bench"), ("off", off, "kaito", "bench"), ("chat", on, "pipeline", ""),
               ("pipeline", pipe, "pipeline", ""), ("tserve", tserve, "tserve", str(model_dir)))  # fmt: skip
    try:
        for r in range(rounds):
            for c in levels:
                for mode, srv, flavor, name in servers:
                    if flavor != "kaito" and c not in ANCHOR_LEVELS:
                        continue
                    res = asyncio.run(
                        run_level(srv.url, name, prompt, output_len, c, 2 if c == 1 else 1, flavor, text)
                    )
                    run[mode][str(c)].append(_level_json(res))
                    if flavor == "kaito":
                        run["threads_seen"][mode][str(c)].append(_cpu_threads(srv.url))
                    _print(f"round {r + 1} {mode}", res)
                if c == 1:
                    run["bare"].append(bare_generate(bare_model, prompt, output_len, 2, default_threads))
                    run["bare_start_threads"].append(
                        bare_generate(bare_model, prompt, output_len, 2, server_threads)
                    )
                    print(
                        f"[round {r + 1} bare generate] {run['bare'][-1]:.1f} tok/s with {default_threads} thread(s), "
                        f"{run['bare_start_threads'][-1]:.1f} with {server_threads}",
                        flush=True,
                    )
    finally:
        for _, srv, _, _ in servers:
            srv.stop()
    torch.set_num_threads(server_threads)
    run["cb"] = transformers_cb_probe(model_dir, prompt, output_len, 16)
    print(f"[transformers CB probe] {run['cb']}", flush=True)
    run["duration"] = time.time() - run["started"]
    run["load_after"] = os.getloadavg()[0]
    return run


def _best(runs: list[dict[str, Any]]) -> LevelResult:
    return max((_level_from_json(d) for d in runs), key=lambda r: r.tokens_per_s)


def _median_tps(runs: list[dict[str, Any]]) -> float:
    return statistics.median(_level_from_json(d).tokens_per_s for d in runs)


def render(run: dict[str, Any]) -> str:
    levels = [int(c) for c in run["on"]]
    best_on = [_best(run["on"][str(c)]) for c in levels]
    best_off = [_best(run["off"][str(c)]) for c in levels]
    med_on = {c: _median_tps(run["on"][str(c)]) for c in levels}
    med_off = {c: _median_tps(run["off"][str(c)]) for c in levels}
    bare_best, bare_med = max(run["bare"]), statistics.median(run["bare"])
    on1, off16, on16 = best_on[levels.index(1)], best_off[levels.index(16)], best_on[levels.index(16)]
    ratio16 = on16.tokens_per_s / off16.tokens_per_s
    single = on1.tokens_per_s / bare_best
    # Paired per-round ratios: both sides of a ratio ran back to back under the same background load.
    r16 = [
        _level_from_json(a).tokens_per_s / _level_from_json(b).tokens_per_s
        for a, b in zip(run["on"]["16"], run["off"]["16"], strict=True)
    ]
    r1 = [_level_from_json(a).tokens_per_s / b for a, b in zip(run["on"]["1"], run["bare"], strict=True)]
    cb = run["cb"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    report = [
        "## serve: kaito-serve throughput (CPU)",
        "",
        f"Generated by `python gpu-runtime/bench/serve_bench.py{_flags(run)} --write BENCHMARKS.md` "
        "(`make bench-serve` runs the default levels 1,4,16,64), "
        f"{time.strftime('%Y-%m-%d', time.gmtime(run['started']))}, {run['duration']:.0f} s. "
        f"Machine: {run['machine']}; load average after the run {run['load_after']:.2f} (the benchmark's own load "
        f"included). {_host_note(run)} "
        "No GPU was lent to this task, so the GPU part of the benchmark (phi-3-mini-shaped model in bf16, "
        "HBM roofline, batch 32) could not be run.",
        "",
        "Model: random-weight Llama, 6 layers, hidden 512, 8 heads, intermediate 1376, vocab 1024 (~20 M "
        f"parameters), float32. Every request: a {run['prompt_len']}-token prompt and exactly "
        f"{run['output_len']} generated tokens (greedy, `min_tokens` = `max_tokens`), streamed over HTTP from "
        "`/v1/completions`; TTFT is measured at the client, up to the first text chunk. The single-stream level "
        "sends 2 requests, the others 1 request per stream. All servers run side by side (an idle one costs "
        f"nothing) and every configuration is measured once per round, interleaved, {run['rounds']} rounds; "
        "tables show each configuration's best round (outside load only ever slows a run down) and the median. "
        f"kaito-serve starts with {run['server_threads']} torch thread(s) and its governor follows the other load "
        f"on the machine (threads it reported after each level, batching on: {_seen(run, 'on')}); the anchors run "
        f"with torch's default {run['default_threads']}, as Kaito sets none. The bare loop is measured with "
        f"torch's default {run['default_threads']} and with {run['server_threads']}.",
        "",
        "| target | best vs best | per-round ratio: median (min–max) | result |",
        "|---|--:|--:|---|",
        f"| aggregate tokens/s at 16 streams ≥ 3× batching off | {ratio16:.2f}× | "
        f"{statistics.median(r16):.2f}× ({min(r16):.2f}–{max(r16):.2f}) | "
        f"{verdict(ratio16 >= 3 and statistics.median(r16) >= 3)} |",
        f"| single stream within 10 % of a bare `model.generate` loop (tokens/s ≥ 91 % of its) | {single * 100:.0f} % | "
        f"{statistics.median(r1) * 100:.0f} % ({min(r1) * 100:.0f}–{max(r1) * 100:.0f} %) | "
        f"{verdict(single >= 1 / 1.1 and statistics.median(r1) >= 1 / 1.1)} |",
        *_anchor_targets(run, verdict),
        "",
        "### Batching on (`--max-batch-size 64`)",
        "",
        *_table(best_on, med_on),
        "",
        "### Batching off (`--max-batch-size 1`: one request at a time, as Kaito's transformers runtime serves)",
        "",
        *_table(best_off, med_off),
        "",
        *_anchor_tables(run),
        "### Baselines in the same run",
        "",
        f"- Bare `model.generate` loop, one request at a time, same prompt and output length, "
        f"torch's default {run['default_threads']} thread(s): best **{bare_best:.1f}**, median {bare_med:.1f} "
        f"tokens/s; with {run['server_threads']}: best {max(run['bare_start_threads']):.1f}, "
        f"median {statistics.median(run['bare_start_threads']):.1f} tokens/s.",
        "- transformers' own continuous batching (`generate_batch`, 16 requests at once, in-process): "
        f"{cb['transformers_cb_tok_s']:.1f} tokens/s, against padded `generate` on the same 16 prompts: "
        f"{cb['padded_generate_tok_s']:.1f} tokens/s.",
        "",
    ]
    notes = NOTES_FILE.read_text() if NOTES_FILE.exists() else ""
    return "\n".join(report) + ("\n" + notes if notes else "")


ANCHOR_NAMES = {
    "pipeline": 'Kaito seed-era style: `pipeline("text-generation")` per request behind FastAPI `/chat`',
    "tserve": "`transformers serve` (what Kaito v0.12 wraps)",
}
# (anchor, streams, minimum ratio of kaito-serve's tokens/s to the anchor's)
ANCHOR_TARGETS = (("pipeline", 1, 1.2), ("tserve", 1, 1.2), ("pipeline", 16, 20.0), ("tserve", 16, 5.0))


def _ours(run: dict[str, Any], anchor: str) -> str:
    """Which kaito-serve measurement faces `anchor`: the same endpoint and request body."""
    return "chat" if anchor == "pipeline" and run.get("chat") else "on"


def _paired(run: dict[str, Any], anchor: str, c: int) -> list[float]:
    """kaito-serve (batching on) / anchor, per round: both ran back to back under the same load."""
    return [
        _level_from_json(a).tokens_per_s / max(_level_from_json(b).tokens_per_s, 1e-9)
        for a, b in zip(run[_ours(run, anchor)][str(c)], run[anchor][str(c)], strict=True)
    ]


def _flags(run: dict[str, Any]) -> str:
    levels = ",".join(run["on"])
    return "" if levels == ",".join(map(str, LEVELS)) else f" --levels {levels}"


def _host_note(run: dict[str, Any]) -> str:
    cores = run.get("cores") or os.cpu_count() or 1  # the measuring machine's, when re-rendered from JSON
    before = run.get("load_before", float("nan"))
    if before < 0.25 * cores:
        return (f"The host was otherwise idle when the run began (load average {before:.2f}); other jobs can still "
                "share it, so each ratio is also shown per round (paired, back to back).")  # fmt: skip
    return (f"**The host was busy when the run began (load average {before:.2f} on {cores} cores), so absolute "
            "figures are noisy**; each ratio is also shown per round (paired, back to back).")  # fmt: skip


def _seen(run: dict[str, Any], mode: str) -> str:
    seen = run.get("threads_seen", {}).get(mode, {})
    parts = [f"{c} streams {'/'.join(f'{t:g}' for t in v)}" for c, v in seen.items() if v]
    return "; ".join(parts) or "not recorded"


def _anchor_targets(run: dict[str, Any], verdict: Any) -> list[str]:
    rows = []
    for anchor, c, goal in ANCHOR_TARGETS:
        if str(c) not in run.get(anchor, {}):
            continue
        ratios = _paired(run, anchor, c)
        best = _best(run[_ours(run, anchor)][str(c)]).tokens_per_s / _best(run[anchor][str(c)]).tokens_per_s
        what = "single-stream" if c == 1 else f"aggregate at {c} streams"
        name = (
            "the pipeline-per-request server (both on `/chat`)"
            if anchor == "pipeline"
            else "`transformers serve` (both streaming `/v1/completions`)"
        )
        rows.append(
            f"| {what} tokens/s ≥ {goal:g}× {name}, in every round | {best:.2f}× | "
            f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) | "
            f"{verdict(min(ratios) >= goal)} |"
        )
    return rows


def _anchor_tables(run: dict[str, Any]) -> list[str]:
    if not run.get("anchor_levels"):
        return []
    lines = [
        "### Kaito anchors in the same run (streams 1 and 16, interleaved with the rows above)",
        "",
        f"Both anchors get the same prompt as text ({run.get('anchor_prompt_tokens', '?')} tokens) and run with torch's default thread count, as in Kaito. The pipeline server "
        "answers `/chat` with one JSON body (TTFT = latency; "
        f"{run['output_len']} tokens forced with `min_new_tokens`); "
        "`transformers serve` streams `/v1/completions` and has no `min_tokens`, so its tokens are the "
        "`usage` it reports.",
        "",
    ]
    if run.get("chat"):
        rows = [_best(run["chat"][str(c)]) for c in run["anchor_levels"]]
        med = {c: _median_tps(run["chat"][str(c)]) for c in run["anchor_levels"]}
        lines += ["kaito-serve (batching on) asked the pipeline anchor's request: Kaito's `/chat`, one JSON answer:",
                  "", *_table(rows, med), ""]  # fmt: skip
    for anchor in ("pipeline", "tserve"):
        rows = [_best(run[anchor][str(c)]) for c in run["anchor_levels"]]
        med = {c: _median_tps(run[anchor][str(c)]) for c in run["anchor_levels"]}
        lines += [f"{ANCHOR_NAMES[anchor]}:", "", *_table(rows, med), ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="benchmark this OpenAI-compatible server only (no local comparison)")
    ap.add_argument("--model", default="bench", help="model name to send with --url")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--levels", default=",".join(map(str, LEVELS)))
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every configuration")
    ap.add_argument("--write", type=Path, help="write the `serve` section of this markdown file")
    ap.add_argument("--json", type=Path, help="also save the raw measurements here")
    ap.add_argument("--from-json", type=Path, help="re-render saved measurements instead of measuring")
    args = ap.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))

    if args.url:
        prompt = [10 + (i * 37) % 1000 for i in range(args.prompt_len)]
        rows = drive(args.url.rstrip("/"), args.model, prompt, args.output_len, levels, "server")
        print("\n".join(_table(rows)))
        return 0
    if args.from_json:
        run = json.loads(args.from_json.read_text())
    else:
        run = measure(args.prompt_len, args.output_len, levels, args.rounds)
        if args.json:
            args.json.write_text(json.dumps(run))
    body = render(run)
    print(body)
    if args.write:
        write_section(args.write, body)
        print(f"wrote section '{SECTION}' of {args.write}")
    return 0


# Hand-written analysis kept next to the script, appended under the generated tables.
NOTES_FILE = Path(__file__).with_name("serve_bench_notes.md")


if __name__ == "__main__":
    sys.exit(main())
