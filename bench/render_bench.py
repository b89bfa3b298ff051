"""Render benchmark: kaito-gen on 100 / 1,000 / 10,000 generated Workspaces vs a libyaml floor.

Each measurement is a whole cold process (imports included), as CI runs it:

* kaito-gen: ``kaito-gen render SRC -o OUT -q``.
* floor: a bare Python process that parses the same input files with PyYAML's C
  loader and writes the same output documents to the same files with PyYAML's C
  dumper (the documents come from a JSON file prepared before timing; reading
  it is part of the floor's time).

Wall time is the best of ``--repeat`` runs; peak RSS is the child's ru_maxrss.
Usage: python bench/render_bench.py [--sizes 100,1000,10000] [--repeat 3] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SECTION = "render"

FLOOR = r"""
import json, os, sys, yaml
src, docs_json, out = sys.argv[1], sys.argv[2], sys.argv[3]
for dirpath, _, names in os.walk(src):
    for name in sorted(names):
        with open(os.path.join(dirpath, name)) as fh:
            list(yaml.load_all(fh, Loader=yaml.CSafeLoader))
with open(docs_json) as fh:
    files = json.load(fh)
made = set()
for rel, docs in files.items():
    path = os.path.join(out, rel)
    parent = os.path.dirname(path)
    if parent not in made:
        os.makedirs(parent, exist_ok=True)
        made.add(parent)
    with open(path, "w") as fh:
        yaml.dump_all(docs, fh, Dumper=yaml.CSafeDumper, sort_keys=False)
"""

MODELS = [
    "phi-3-mini-4k-instruct",
    "phi-3-mini-128k-instruct",
    "phi-3.5-mini-instruct",
    "qwen2.5-coder-7b-instruct",
]


def workspace(i: int) -> str:
    ns = f"team-{i % 37}"
    model = MODELS[i % len(MODELS)]
    head = (
        f"apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: ws-{i}\n  namespace: {ns}\n"
        f"resource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n    matchLabels:\n      apps: ws-{i}\n"
    )
    if i % 4 == 0:
        return vllm_input(i, ns)
    kind = i % 3
    if kind == 0:
        return head + f"inference:\n  preset:\n    name: {model}\n"
    if kind == 1:
        return head + (
            f"inference:\n  preset:\n    name: {model}\n  adapters:\n"
            f'    - source:\n        name: a{i}\n        image: registry.example.com/adapters/a{i}:1.0\n      strength: "0.5"\n'
            f"    - source:\n        name: b{i}\n        image: registry.example.com/adapters/b{i}:1.0\n"
        )
    return head + (
        "tuning:\n  preset:\n    name: phi-3-mini-128k-instruct\n  method: qlora\n"
        f"  input:\n    urls:\n      - https://data.example.com/sets/{i}.parquet\n"
        f"  output:\n    image: registry.example.com/tuned/ws-{i}:0.1.0\n    imagePushSecret: push\n"
    )


def vllm_input(i: int, ns: str) -> str:
    """A quarter of the inputs run on vLLM (issue 9): a vLLM-only preset on one node; every fifth of
    them llama-3.3-70b-instruct on three nodes (a LeaderWorkerSet); every third a KEDA-autoscaled
    InferenceSet."""
    selector = f"  labelSelector:\n    matchLabels:\n      apps: ws-{i}\n"
    if i % 20 == 0:
        return (
            f"apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: ws-{i}\n  namespace: {ns}\n"
            "  annotations:\n    kaito.sh/runtime: vllm\n"
            f"resource:\n  instanceType: Standard_NC24ads_A100_v4\n{selector}"
            "inference:\n  preset:\n    name: llama-3.3-70b-instruct\n    presetOptions:\n      modelAccessSecret: hf\n"
        )
    if i % 12 == 4:
        return (
            f"apiVersion: kaito.sh/v1beta1\nkind: InferenceSet\nmetadata:\n  name: ws-{i}\n  namespace: {ns}\n"
            '  annotations:\n    scaledobject.kaito.sh/auto-provision: "true"\n'
            '    scaledobject.kaito.sh/threshold: "10"\n    scaledobject.kaito.sh/max-replicas: "4"\n'
            f"spec:\n  replicas: 1\n  nodeCountLimit: 4\n{selector}"
            "  template:\n    resource:\n      instanceType: Standard_NC24ads_A100_v4\n"
            "    inference:\n      preset:\n        name: phi-4-mini-instruct\n"
        )
    return (
        f"apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: ws-{i}\n  namespace: {ns}\n"
        f"resource:\n  instanceType: Standard_NC24ads_A100_v4\n{selector}"
        "inference:\n  preset:\n    name: phi-4-mini-instruct\n"
    )


def generate(src: Path, n: int) -> None:
    src.mkdir(parents=True)
    per_file = 10
    for start in range(0, n, per_file):
        docs = [workspace(i) for i in range(start, min(n, start + per_file))]
        (src / f"ws-{start:06d}.yaml").write_text("---\n".join(docs))


def timed(cmd: list[str]) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed: {proc.stderr[-2000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(rss, before)


def peak_rss(cmd: list[str]) -> int:
    """Peak RSS (KiB) of one child, measured in a fresh wrapper so earlier children don't mask it."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def measure(n: int, repeat: int, work: Path) -> dict[str, float]:
    src, out, floor_out = work / f"src-{n}", work / f"out-{n}", work / f"floor-{n}"
    generate(src, n)
    exe = str(Path(sys.executable).with_name("kaito-gen"))
    render = [exe, "render", str(src), "-o", str(out), "-q"]
    subprocess.run(render, check=True, capture_output=True)  # warm the page cache
    files = {}
    for path in sorted(out.rglob("*.yaml")):
        files[path.relative_to(out).as_posix()] = [
            d for d in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)
        ]
    docs_json = work / f"docs-{n}.json"
    docs_json.write_text(json.dumps(files))
    floor = [sys.executable, "-c", FLOOR, str(src), str(docs_json), str(floor_out)]
    ours, base = [], []
    for _ in range(repeat):
        shutil.rmtree(floor_out, ignore_errors=True)
        base.append(timed(floor)[0])
        ours.append(timed(render)[0])
    return {
        "workspaces": n,
        "files": len(files),
        "ours_s": min(ours),
        "floor_s": min(base),
        "ours_rss_mb": peak_rss(render) / 1024,
        "floor_rss_mb": peak_rss(floor) / 1024,
    }


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| workspaces | files | kaito-gen (s) | libyaml floor (s) | ratio | kaito-gen peak RSS (MB) | floor peak RSS (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {int(r['workspaces']):,} | {int(r['files']):,} | {r['ours_s']:.2f} | {r['floor_s']:.2f} | "
            f"{r['ours_s'] / r['floor_s']:.2f}x | {r['ours_rss_mb']:.0f} | {r['floor_rss_mb']:.0f} |"
        )
    by = {int(r["workspaces"]): r for r in rows}
    if 1000 in by and 10000 in by:
        lines.append("")
        lines.append(
            f"Scaling 1,000 → 10,000 Workspaces: {by[10000]['ours_s'] / by[1000]['ours_s']:.1f}x the time (target ≤ 11x)."
        )
    return "\n".join(lines)


def replace_section(path: Path, name: str, body: str) -> None:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(int(n), args.repeat, Path(tmp)) for n in args.sizes.split(",")]
    result = table(rows)
    print(result)
    if args.write:
        body = (
            "## Render (kaito-gen render, whole cold process)\n\n"
            f"Machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
            f"{platform.machine()}. Best of {args.repeat} runs each; inputs are generated Workspaces, 10 per file: "
            "1/4 vLLM (phi-4-mini-instruct on one node; 1 in 5 of them llama-3.3-70b-instruct on three nodes as a "
            "LeaderWorkerSet; 1 in 3 a KEDA-autoscaled InferenceSet), the rest in thirds plain transformers "
            "inference, inference with two image adapters, QLoRA tuning. The floor is a bare "
            "Python process that parses the same inputs with PyYAML's C loader and writes the same output documents "
            "to the same files with PyYAML's C dumper. Targets: 1,000 Workspaces within 1.5x the floor and under 3 s; "
            "10,000 at most 11x the 1,000 time; peak RSS under 500 MB at 10,000. "
            "Reproduce: `make bench-render`.\n\n" + result
        )
        replace_section(args.write, SECTION, body)


if __name__ == "__main__":
    main()
