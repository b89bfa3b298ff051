"""The long fuzz run (`make fuzz`): N inputs over worker processes, counts of each outcome.

Each worker runs inputs in-process (fuzzlib.run_one, the calls the CLI makes); the parent gives
each input 5 s and counts a worker that dies as ``signal`` and one that overruns as ``hang``,
then starts a fresh worker. Findings are written, with their input, to --findings.

    python tests/fuzz/run_fuzz.py --count 100000 --workers 2 --findings /tmp/fuzz-findings
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzlib

TIME_LIMIT_S = 5.0


def _worker(conn: Connection) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a memory blow-up dies, not the machine
    while True:
        seed = conn.recv()
        if seed is None:
            return
        role, data = fuzzlib.make_input(seed)
        conn.send(("start",))  # the 5 s budget covers the run, not building the input
        start = time.perf_counter()
        outcome, detail = fuzzlib.run_one(role, data)
        conn.send((seed, outcome, detail, time.perf_counter() - start))


class Slot:
    def __init__(self, ctx: mp.context.BaseContext) -> None:
        self.ctx = ctx
        self.start()

    def start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        self.seed: int | None = None
        self.sent = 0.0

    def send(self, seed: int) -> None:
        self.seed, self.sent = seed, time.monotonic()
        self.conn.send(seed)

    def restart(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.start()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--workers", type=int, default=max(1, (mp.cpu_count() or 2)))
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    args = parser.parse_args()
    ctx = mp.get_context("fork")
    fuzzlib.seed_texts()
    fuzzlib._catalog()  # loaded once, before forking
    fuzzlib.run_one("source", b"a: 1\n")  # every module imported before forking: workers never mix versions
    slots = [Slot(ctx) for _ in range(args.workers)]
    counts: Counter[str] = Counter()
    slowest = 0.0
    seeds = iter(range(args.start, args.start + args.count))
    began = time.monotonic()
    pending = 0
    for slot in slots:
        seed = next(seeds, None)
        if seed is not None:
            slot.send(seed)
            pending += 1
    while pending:
        for slot in slots:
            if slot.seed is None:
                continue
            result = None
            if slot.conn.poll(0.01):
                try:
                    result = slot.conn.recv()
                    if result == ("start",):
                        slot.sent = time.monotonic()
                        continue
                except EOFError:
                    result = (slot.seed, "signal", f"worker exit code {slot.proc.exitcode}", 0.0)
                    slot.restart()
            elif not slot.proc.is_alive():
                result = (slot.seed, "signal", f"worker exit code {slot.proc.exitcode}", 0.0)
                slot.restart()
            elif time.monotonic() - slot.sent > TIME_LIMIT_S:
                result = (slot.seed, "hang", f"over {TIME_LIMIT_S} s", TIME_LIMIT_S)
                slot.restart()
            if result is None:
                continue
            seed, outcome, detail, took = result
            counts[outcome] += 1
            slowest = max(slowest, took)
            if outcome not in ("rendered", "refused"):
                args.findings.mkdir(parents=True, exist_ok=True)
                role, data = fuzzlib.make_input(seed)
                (args.findings / f"{seed}-{outcome}.{role}.yaml").write_bytes(data)
                (args.findings / f"{seed}-{outcome}.txt").write_text(detail)
            pending -= 1
            slot.seed = None
            nxt = next(seeds, None)
            if nxt is not None:
                slot.send(nxt)
                pending += 1
        done = sum(counts.values())
        if done and done % 5000 == 0 and pending:
            print(f"{done} inputs, {dict(counts)}", file=sys.stderr, flush=True)
    for slot in slots:
        slot.conn.send(None)
    elapsed = time.monotonic() - began
    total = sum(counts.values())
    print("| outcome | count |\n|---|---:|")
    for outcome in ("rendered", "refused", "unpositioned", "exception", "signal", "hang"):
        print(f"| {outcome} | {counts.get(outcome, 0):,} |")
    print(f"\n{total:,} inputs in {elapsed:.0f} s on {args.workers} workers; slowest input {slowest:.2f} s")
    bad = total - counts["rendered"] - counts["refused"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
