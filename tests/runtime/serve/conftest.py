"""Fixtures for the kaito-serve tests: LoRA adapters made with peft, and real server subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest


def _make_adapter(base_dir: Path, dest: Path, rank: int, targets: list[str], seed: int) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so it visibly changes the logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=targets, init_lora_weights=False, task_type="CAUSAL_LM"
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.normal_(0.0, 0.3)
    model.save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def lora_adapters_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/mnt/adapter-style dir with two LoRA adapters of different ranks and target modules."""
    root = tmp_path_factory.mktemp("adapters")
    _make_adapter(tiny_model_dir, root / "a1", 4, ["q_proj", "v_proj"], seed=1)
    _make_adapter(tiny_model_dir, root / "a2", 8, ["q_proj", "k_proj", "v_proj", "o_proj"], seed=2)
    (root / "not-an-adapter").mkdir()  # Kaito skips directories without adapter_config.json
    return root


@pytest.fixture(scope="session")
def phi3_adapter_dir(tiny_phi3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter trained for phi3's fused qkv_proj: incompatible with the llama test model."""
    root = tmp_path_factory.mktemp("phi3-adapters")
    _make_adapter(tiny_phi3_dir, root / "phi-3-adapter", 4, ["qkv_proj"], seed=3)
    return root
