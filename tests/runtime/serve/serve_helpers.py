"""Start `kaito-serve` as a real subprocess on 127.0.0.1 and talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

STARTUP_TIMEOUT = 180.0  # a cold import of torch+transformers on a busy 2-core box can take a while


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_command(*args: str) -> list[str]:
    """The `kaito-serve` console script of this environment (what the image runs)."""
    script = Path(sys.executable).parent / "kaito-serve"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "kaito_runtime.serve.cli", *args]


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    health_codes: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kaito-serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                code = httpx.get(f"{self.url}/health", timeout=2.0).status_code
                self.health_codes.append(code)
                if code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"kaito-serve not ready after {timeout}s:\n{self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def start_server(args: list[str], log_path: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    log = log_path.open("wb")
    proc = subprocess.Popen(
        serve_command(*args, "--host", "127.0.0.1", "--port", str(port)),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    return ServerProcess(proc=proc, port=port, log_path=log_path)
