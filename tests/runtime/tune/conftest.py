"""Fixtures for the tuning, dataset-fetch and adapter-image tests (issue 5).

The tiny models come from tests/runtime/conftest.py (`tiny_model_dir`, `tiny_phi3_dir`), which also runs
the session offline with a private HF_HOME. Registries are real `docker-registry` processes on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tune_data import write_rows
from tune_support import HTTPServer, Registry, TuneRun, cli_env, run_http_server, run_registry, tune


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1, plain HTTP, htpasswd auth (one per xdist worker)."""
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1 that only speaks TLS (self-signed certificate), htpasswd auth."""
    with run_registry(tmp_path_factory.mktemp("tls-registry"), tls=True) as reg:
        yield reg


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    with run_http_server() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """CLI environment with a private HOME, so no developer ~/.docker/config.json leaks in."""
    home = tmp_path / "home"
    home.mkdir()
    return cli_env(home)


LORA_CONFIG = """\
training_config:
  ModelConfig:
    torch_dtype: "float32"
    local_files_only: true
  QuantizationConfig:
    load_in_4bit: false
  LoraConfig:
    r: 8
    lora_alpha: 16
  TrainingArguments:
    per_device_train_batch_size: 4
    max_steps: 12
    learning_rate: 0.01
    logging_steps: 1
    save_strategy: "no"
  DataCollator:
    mlm: true
  DatasetConfig:
    shuffle_seed: 3
    train_test_split: 0.8
"""


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> TuneRun:
    """kaito-tune LoRA on the tiny llama: chat `messages` split over two parquet files, batch 4, eval split.

    Shared by the output checks and the whole-loop test. It is trained once per test session, also under
    xdist: the first worker to get here trains while holding a lock in the workers' common temp dir, the
    others read the result (xdist_group alone cannot promise that: pytest 9.2 broke --dist loadgroup,
    pytest-dev/pytest-xdist#1386).
    """
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's basetemp (…/pytest-N/gw0) shares this session's parent directory.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tune-lora-run"
    shared.mkdir(exist_ok=True)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = shared / "run.json"
        if record.exists():
            return TuneRun.from_json(record.read_text())
        rows = [
            {
                "messages": [
                    {"role": "user", "content": f"what does kaito do with item {i}"},
                    {"role": "assistant", "content": "kaito tunes it fast"},
                ]
            }
            for i in range(40)
        ]
        write_rows(shared / "data" / "part-0.parquet", rows[:25])
        write_rows(shared / "data" / "part-1.parquet", rows[25:])
        home = shared / "home"
        home.mkdir()
        run = tune(shared, LORA_CONFIG, tiny_model_dir, "--method", "lora", env=cli_env(home))
        record.write_text(run.to_json())
        return run
