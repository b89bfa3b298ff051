"""Shared fixtures for the gpu-runtime tests.

The hub is never reachable here, so the whole session runs offline with a
private HF_HOME. These variables are set at conftest import time, i.e. before
any test module can import transformers/huggingface_hub (which read them once).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HF_HOME = tempfile.mkdtemp(prefix="kaito-test-hf-home-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HOME": _HF_HOME,
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ[_key] = _value


@pytest.fixture(scope="session")
def hf_home() -> Iterator[Path]:
    """The private, empty HF_HOME this session runs with."""
    yield Path(_HF_HOME)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~1 MB random-weight Llama model + tokenizer with a chat template."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_phi3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~1 MB random-weight Phi-3 model + tokenizer with a chat template."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-phi3"), "phi3")
