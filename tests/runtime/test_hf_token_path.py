"""The manifests mount the HF token as a file and set HF_TOKEN_PATH (never the token in an env var).
kaito-serve, kaito-tune and kaito-vllm all download through huggingface_hub, which reads that file
itself: check it in both runtime venvs (.venv for kaito-serve/kaito-tune, .venv-vllm for kaito-vllm)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "from huggingface_hub import get_token; print(get_token())"


@pytest.mark.parametrize(
    "python", [Path(sys.executable), ROOT / ".venv-vllm" / "bin" / "python"], ids=["serve-tune", "vllm"]
)
def test_huggingface_hub_reads_the_token_file(python: Path, tmp_path: Path) -> None:
    assert python.exists(), f"{python} missing: run `make .venv-vllm/.done`"
    token_file = tmp_path / "hf-token" / "token"
    token_file.parent.mkdir()
    token_file.write_text("hf_fromthemountedsecret\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_TOKEN_PATH=str(token_file), HF_HOME=str(tmp_path / "home"), HOME=str(tmp_path))
    out = subprocess.run(
        [str(python), "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "hf_fromthemountedsecret"
    env["HF_TOKEN_PATH"] = str(tmp_path / "absent")
    out = subprocess.run(
        [str(python), "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "None", "the probe must be able to fail"
