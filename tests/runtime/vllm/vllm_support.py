"""Start `.venv-vllm/bin/kaito-vllm` (a real vLLM, CPU build) on 127.0.0.1 and talk to it.

The suite runs under .venv; vLLM lives in its own venv (it pins an older transformers), made by
`make .venv-vllm/.done`, which `make unit`/`make test` depend on; a missing venv fails the tests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
VLLM_BIN = ROOT / ".venv-vllm" / "bin"
KAITO_VLLM = VLLM_BIN / "kaito-vllm"
STARTUP_TIMEOUT = 420.0  # 40-90 s quiet; much more while the 2 cores run other tests


def require_vllm_venv() -> Path:
    if KAITO_VLLM.exists():
        return KAITO_VLLM
    # Never a skip: `make unit` builds the venv first, so a missing one is a failure to fix.
    pytest.fail(f"{KAITO_VLLM} is missing: run `make .venv-vllm/.done` (make unit does)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vllm_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    env.update(
        {
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache: the CPU default (4) is too much here
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


# Flags every test server shares: small context and eager mode (no torch.compile: faster start).
BASE_FLAGS = ("--max-model-len=512", "--enforce-eager", "--dtype=float32")


@dataclass
class VllmServer:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kaito-vllm exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"kaito-vllm not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_server(
    model: Path, log_path: Path, *flags: str, binary: Path | None = None, env: dict[str, str] | None = None
) -> VllmServer:
    port = free_port()
    cmd = [
        str(binary or KAITO_VLLM),
        f"--model={model}",
        "--served-model-name=tiny",
        "--host=127.0.0.1",
        f"--port={port}",
        *BASE_FLAGS,
        *flags,
    ]
    with log_path.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env=env or vllm_env(), start_new_session=True
        )
    return VllmServer(proc, port, log_path)
