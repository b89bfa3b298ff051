"""Multi-node vLLM over Ray (a LeaderWorkerSet): the leader starts the Ray head and waits for the
cluster, the workers join and block.

Replaces vLLM's `examples/ray_serving/multi-node-serving.sh` that Kaito fetches at image build:
the same `ray start` calls, with a bounded, logged wait instead of an endless loop.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable

from .args import RayArgs, UsageError

log = logging.getLogger("kaito_runtime.vllm.ray")


class ClusterTimeoutError(Exception):
    pass


def wait_for_nodes(
    count: Callable[[], int],
    want: int,
    timeout_s: float,
    *,
    interval_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Poll `count()` until it reports `want` alive nodes; log progress; raise after `timeout_s`.

    `count` may raise (the head is still starting): that counts as 0 nodes.
    """
    deadline = clock() + timeout_s
    last = -1
    while True:
        try:
            have = count()
        except Exception as exc:  # the Ray head answers only once it is up
            log.info("ray: cluster not answering yet (%s)", exc)
            have = 0
        if have != last:
            log.info("ray: %d of %d nodes joined", have, want)
            last = have
        if have >= want:
            return have
        if clock() >= deadline:
            raise ClusterTimeoutError(
                f"ray: only {have} of {want} nodes joined within {timeout_s:g} s; "
                "check that the worker pods run and can reach the leader's Ray port"
            )
        sleep(interval_s)


def _ray_binary() -> str:
    found = shutil.which("ray")
    if found is None:
        raise UsageError("ray is not installed in this image: multi-node serving needs the CUDA vLLM image")
    return found


def _alive_nodes() -> int:
    import ray

    if not ray.is_initialized():
        ray.init(address="auto", logging_level=logging.WARNING)
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def start_leader(args: RayArgs) -> None:
    binary = _ray_binary()
    cmd = [binary, "start", "--head", f"--port={args.port}", "--disable-usage-stats"]
    log.info("ray: starting the head: %s", " ".join(cmd))
    subprocess.run(cmd, check=True)
    wait_for_nodes(_alive_nodes, args.cluster_size, args.wait_seconds)


def run_worker(args: RayArgs) -> int:
    binary = _ray_binary()
    cmd = [binary, "start", "--block", f"--address={args.address}:{args.port}", "--disable-usage-stats"]
    log.info("ray: joining %s:%d", args.address, args.port)
    os.execv(binary, cmd)
    return 0  # not reached
