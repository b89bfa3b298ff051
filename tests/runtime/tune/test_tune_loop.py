"""The whole loop users came for: tune -> push -> pull into an adapters dir -> kaito-serve at strength 0.5.

The adapter from the shared LoRA run is published to the real registry as a Kaito adapter image, pulled
back the way the inference pod's init container does, and served by three kaito-serve processes: the
base model, the adapter at strength 0.5 (flag), and at 1.0 (Kaito's env var named after the adapter).
Greedy completions of the same prompts must differ pairwise: a strength that were ignored would give
identical text for every prompt. (Per prompt, a well-trained adapter may make 0.5 and 1.0 agree on the
learned answer, so the check is over a few prompts, not one.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tune_support import BIN, Registry, Server, TuneRun, run_cli, start_serve

PROMPTS = (
    "<|user|>\nwhat does kaito do with item 7<|end|>\n<|assistant|>\n",  # like the training data
    "<|user|>\nhello there<|end|>\n<|assistant|>\n",
    "the gpu node pool",
    "karpenter scales the cluster",
)


@pytest.mark.xdist_group("tune_lora")
def test_tune_push_pull_serve(
    lora_run: TuneRun, registry: Registry, tmp_path: Path, env: dict[str, str]
) -> None:
    if not (BIN / "kaito-serve").exists():
        pytest.fail("kaito-serve console script missing: run `.venv/bin/pip install --no-deps -e .`")
    assert lora_run.returncode == 0, lora_run.stderr
    image = f"{registry.host}/adapters/tuned-loop:v1"
    creds = ("--docker-config", registry.docker_config)
    pushed = run_cli(
        "kaito-adapter", "push", lora_run.output, image, *creds, "--base-model", "tiny-llama", env=env
    )
    assert pushed.returncode == 0, pushed.stderr
    adapters = tmp_path / "adapter"  # Kaito mounts /mnt/adapter; one directory per adapter
    pulled = run_cli("kaito-adapter", "pull", image, adapters / "kaito-adapter", *creds, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == json.loads(pushed.stdout)["digest"]

    model = str(lora_run.model)
    servers: dict[str, Server] = {}
    try:
        servers["base"] = start_serve("--model", model, log=tmp_path / "base.log", env=env)
        servers["half"] = start_serve(
            "--model", model, "--adapters-dir", adapters, "--adapter-strength", "kaito-adapter=0.5",
            log=tmp_path / "half.log", env=env,
        )  # fmt: skip
        servers["full"] = start_serve(
            "--model",
            model,
            "--adapters-dir",
            adapters,
            log=tmp_path / "full.log",
            env={**env, "kaito-adapter": "1.0"},
        )
        for server in servers.values():
            server.wait_ready()
        outputs = {name: [server.complete(prompt) for prompt in PROMPTS] for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    print(outputs)  # shown with -s / on failure: what each strength produced
    assert all(all(texts) for texts in outputs.values()), outputs
    assert outputs["half"] != outputs["base"], outputs
    assert outputs["half"] != outputs["full"], outputs
    assert outputs["full"] != outputs["base"], outputs
    # What the run taught it ("kaito tunes it fast"); how much of the phrase a 12-step run reproduces
    # varies with CPU float order, so only its last word is checked.
    assert "fast" in outputs["full"][0], outputs
    assert "strength 0.5" in (tmp_path / "half.log").read_text()
