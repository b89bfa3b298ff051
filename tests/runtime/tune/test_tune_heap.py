"""KAITO_TUNE_MMAP_THRESHOLD pins glibc's mmap threshold on CPU hosts (BENCHMARKS.md, tuning: it buys
batch-8 peak RSS with speed); by default, or when glibc's own variable is set, the allocator is left alone."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json
from kaito_runtime.tune import train
applied = train.limit_host_heap()
# The threshold is in force: a 1.5 MiB block is its own mapping, far above the brk heap's top.
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.sbrk.restype = ctypes.c_void_p
block = libc.malloc(1536 * 1024)
in_heap = block < libc.sbrk(0)
libc.free(ctypes.c_void_p(block))
print(json.dumps({"applied": applied, "in_heap": in_heap}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    import json
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAITO_TUNE_MMAP", "MALLOC_MMAP"))}
    # Free then re-malloc a large block first, as training does, so glibc's dynamic threshold rises.
    warm = "import ctypes; l=ctypes.CDLL('libc.so.6'); l.malloc.restype=ctypes.c_void_p; l.free(ctypes.c_void_p(l.malloc(8<<20)))\n"
    out = subprocess.run(
        [sys.executable, "-c", warm + PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**base, "CUDA_VISIBLE_DEVICES": "", **env},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(autouse=True)
def _glibc() -> None:
    ctypes.CDLL("libc.so.6")  # these hosts (and the runtime image) are glibc; fail loudly if not


def test_asked_for_one_mebibyte_gets_a_fixed_threshold() -> None:
    result = _probe({"KAITO_TUNE_MMAP_THRESHOLD": "1048576"})
    assert result == {"applied": 1 << 20, "in_heap": False}


@pytest.mark.parametrize("value", [None, "0"])
def test_default_leaves_glibcs_dynamic_threshold(value: str | None) -> None:
    result = _probe({} if value is None else {"KAITO_TUNE_MMAP_THRESHOLD": value})
    assert result == {"applied": None, "in_heap": True}


def test_glibcs_own_variable_wins() -> None:
    env = {"MALLOC_MMAP_THRESHOLD_": "4194304", "KAITO_TUNE_MMAP_THRESHOLD": "1048576"}
    assert _probe(env)["applied"] is None
