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


async def run_level(
    url: str, model: str, prompt: list[int], out_len: int, concurrency: int, per_stream: int
) -> LevelResult:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": out_len,
        "min_tokens": out_len,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    result = LevelResult(concurrency, concurrency * per_stream, 0.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits) as client:

        async def stream_worker() -> None:
            for _ in range(per_stream):
                try:
                    result.samples.append(await _one_request(client, url, body))
                except (httpx.HTTPError, RuntimeError) as exc:
                    result.errors += 1
                    print(f"  request failed: {exc}", file=sys.stderr)

        await _one_request(client, url, {**body, "max_tokens": 2, "min_tokens": 2})  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(stream_worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - start
    return result


def drive(
    url: str, model: str, prompt: list[int], out_len: int, levels: tuple[int, ...], label: str
) -> list[LevelResult]:
    results = []
    for c in levels:
        per_stream = 2 if c <= 16 else 1
        res = asyncio.run(run_level(url, model, prompt, out_len, c, per_stream))
        print(
            f"[{label}] {c:>3} streams: {res.tokens_per_s:8.1f} tok/s  p50 {res.pct('latency', 0.5):.2f}s "
            f"p99 {res.pct('latency', 0.99):.2f}s  TTFT p50 {res.pct('ttft', 0.5) * 1000:.0f}ms "
            f"p99 {res.pct('ttft', 0.99) * 1000:.0f}ms  errors {res.errors}",
            flush=True,
        )
        results.append(res)
    return results


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
    def __init__(self, model_dir: Path, extra: list[str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        script = Path(sys.executable).parent / "kaito-serve"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "kaito_runtime.serve.cli"]
        cmd += ["--model", str(model_dir), "--served-model-name", "bench", "--host", "127.0.0.1",
                "--port", str(self.port), "--dtype", "float32", *extra]  # fmt: skip
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kaito-serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("kaito-serve did not become ready")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def bare_generate(model_dir: Path, prompt: list[int], out_len: int, repeats: int) -> float:
    """Tokens/s of a plain greedy `model.generate` loop, one request at a time, same model and lengths."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    kwargs = {"max_new_tokens": out_len, "min_new_tokens": out_len, "do_sample": False}
    with torch.inference_mode():
        model.generate(
            ids, attention_mask=torch.ones_like(ids), **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2}
        )
        start = time.perf_counter()
        tokens = 0
        for _ in range(repeats):
            out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
            tokens += out.shape[1] - ids.shape[1]
    return tokens / (time.perf_counter() - start)


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


def _table(rows: list[LevelResult]) -> list[str]:
    lines = [
        "| streams | requests | tokens/s | latency p50 | latency p99 | TTFT p50 | TTFT p99 | errors |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.concurrency} | {r.requests} | {r.tokens_per_s:.1f} | {r.pct('latency', 0.5):.2f} s | "
            f"{r.pct('latency', 0.99):.2f} s | {r.pct('ttft', 0.5) * 1000:.0f} ms | {r.pct('ttft', 0.99) * 1000:.0f} ms | {r.errors} |"
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="benchmark this OpenAI-compatible server only (no local comparison)")
    ap.add_argument("--model", default="bench", help="model name to send with --url")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--levels", default=",".join(map(str, LEVELS)))
    ap.add_argument("--write", type=Path, help="write the `serve` section of this markdown file")
    args = ap.parse_args()
    levels = tuple(int(x) for x in args.levels.split(","))
    prompt = [10 + (i * 37) % 1000 for i in range(args.prompt_len)]

    if args.url:
        rows = drive(args.url.rstrip("/"), args.model, prompt, args.output_len, levels, "server")
        print("\n".join(_table(rows)))
        return 0

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    model_dir = build_bench_model(work / "model")
    env_note = machine()
    started = time.time()
    on = Server(model_dir, ["--max-batch-size", "64", "--max-queue", "256"], work / "on.log")
    try:
        rows_on = drive(on.url, "bench", prompt, args.output_len, levels, "batching on")
    finally:
        on.stop()
    off = Server(model_dir, ["--max-batch-size", "1", "--max-queue", "256"], work / "off.log")
    try:
        rows_off = drive(off.url, "bench", prompt, args.output_len, levels, "batching off")
    finally:
        off.stop()
    bare = bare_generate(model_dir, prompt, args.output_len, repeats=4)
    print(f"[bare generate] {bare:.1f} tok/s", flush=True)
    cb = transformers_cb_probe(model_dir, prompt, args.output_len, 16)
    print(f"[transformers CB probe] {cb}", flush=True)
    duration = time.time() - started

    by_on = {r.concurrency: r for r in rows_on}
    by_off = {r.concurrency: r for r in rows_off}
    ratio16 = (
        by_on[16].tokens_per_s / by_off[16].tokens_per_s if 16 in by_on and 16 in by_off else float("nan")
    )
    single = by_on[1].tokens_per_s / bare if 1 in by_on else float("nan")
    verdict16 = "met" if ratio16 >= 3 else "NOT met"
    verdict1 = "met" if single >= 0.9 else "NOT met"
    report = [
        "## serve: kaito-serve throughput (CPU)",
        "",
        f"Generated by `python gpu-runtime/bench/serve_bench.py --write BENCHMARKS.md` (`make bench-serve`), "
        f"{time.strftime('%Y-%m-%d', time.gmtime(started))}, {duration:.0f} s. Machine: {env_note}.",
        "",
        f"Model: random-weight Llama, 6 layers, hidden 512, 8 heads, intermediate 1376, vocab 1024 (~20 M parameters), "
        f"float32 on CPU. Every request: a {args.prompt_len}-token prompt, exactly {args.output_len} generated tokens "
        "(greedy, `min_tokens` = `max_tokens`), streamed over HTTP from `/v1/completions`; TTFT is measured at the "
        "client up to the first text chunk. 1/4/16 streams send 2 requests each, 64 streams 1 each.",
        "",
        "| target | measured | result |",
        "|---|--:|---|",
        f"| aggregate tokens/s at 16 streams ≥ 3× batching off | {ratio16:.2f}× | {verdict16} |",
        f"| single-stream tokens/s ≥ 90 % of a bare `model.generate` loop | {single * 100:.0f} % | {verdict1} |",
        "",
        "### Batching on (`--max-batch-size 64`)",
        "",
        *_table(rows_on),
        "",
        "### Batching off (`--max-batch-size 1`: one request at a time, as Kaito's transformers runtime serves)",
        "",
        *_table(rows_off),
        "",
        "### Baselines in the same run",
        "",
        f"- Bare `model.generate` loop, one request at a time, same prompt and output length: **{bare:.1f} tokens/s**.",
        f"- transformers' continuous batching (`generate_batch`, 16 requests): "
        f"{cb['transformers_cb_tok_s']:.1f} tokens/s, against padded `generate` on the same 16 prompts: "
        f"{cb['padded_generate_tok_s']:.1f} tokens/s.",
        "",
    ]
    notes = NOTES_FILE.read_text() if NOTES_FILE.exists() else ""
    body = "\n".join(report) + ("\n" + notes if notes else "")
    print(body)
    if args.write:
        write_section(args.write, body)
        print(f"wrote section '{SECTION}' of {args.write}")
    return 0


# Hand-written analysis kept next to the script, appended under the generated tables.
NOTES_FILE = Path(__file__).with_name("serve_bench_notes.md")


if __name__ == "__main__":
    sys.exit(main())
