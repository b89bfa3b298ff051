"""What the `kaito-vllm` modes share: the Kaito flags' values, Ray settings, constants.

A module of its own so that cli.py (parsing), server.py, ray.py and middleware.py all import it and
none of them imports another (no cycle).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KAITO_PREFIX = "--kaito-"
DEFAULT_ADAPTERS_DIR = "/mnt/adapter"
DEFAULT_PORT = 5000
DEFAULT_RAY_PORT = 6379
MIDDLEWARE = "kaito_runtime.vllm.middleware.KaitoMiddleware"
SETTINGS_ENV = "KAITO_VLLM_SETTINGS"
ADAPTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Top-level keys of Kaito's inference_config.yaml that the vLLM wrapper understands (KAITO.md §7.2).
CONFIG_KEYS = ("vllm", "max_probe_steps", "kv_cache_cpu_memory_utilization")


class UsageError(Exception):
    """A bad command line or config file: printed as one `kaito-vllm: error: ...` line, exit 2."""


@dataclass
class KaitoArgs:
    adapters_dir: Path = Path(DEFAULT_ADAPTERS_DIR)
    config_file: Path | None = None
    max_probe_steps: int = 6  # parsed for Kaito compatibility; vLLM's --max-model-len=auto replaces probing
    kv_cache_cpu_memory_utilization: float | None = None
    disable_rate_limit: bool = False
    max_waiting: int | None = None  # default: max_num_seqs (Kaito)
    max_body_bytes: int = 4 * 1024 * 1024
    retry_after_seconds: int = 1


@dataclass
class RayArgs:
    role: str  # "leader" | "worker"
    port: int = DEFAULT_RAY_PORT
    cluster_size: int = 1
    address: str = ""
    wait_seconds: float = 600.0


@dataclass
class Command:
    kaito: KaitoArgs
    rest: list[str]
    ray: RayArgs | None = None
    extra: dict[str, Any] = field(default_factory=dict)
