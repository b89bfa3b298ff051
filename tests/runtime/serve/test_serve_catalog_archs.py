"""The catalog's transformers claims, proved: kaito-serve loads a tiny random-weight model of each
architecture that presets/models.yaml lets the transformers engine serve beyond Kaito, through the
server's own loading path with the preset's settings, and generates; and it refuses, with a clear
error, the architectures the catalog keeps on vLLM for that reason.

The preset row is read from presets/models.yaml (YAML only: the runtime never imports the generator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kaito_runtime.serve.loader import ModelLoadError, load_model
from kaito_runtime.serve.sampling import SamplingParams
from kaito_runtime.serve.settings import Settings
from test_serve_model import _run_engine
from tiny_model import build_tiny_model

MODELS_YAML = Path(__file__).resolve().parents[3] / "presets" / "models.yaml"

# Phi-4-mini-instruct's config.json, scaled down: GQA (24 heads / 8 KV heads there), partial rotary
# embedding (0.75 of each head) and input/output embeddings tied; the architecture is Phi3ForCausalLM.
PHI4_MINI_SHAPE = {"partial_rotary_factor": 0.75, "tie_word_embeddings": True}


def preset(name: str) -> dict[str, Any]:
    rows = yaml.safe_load(MODELS_YAML.read_text())["models"]
    (row,) = [r for r in rows if r["name"] == name]
    assert isinstance(row, dict)
    return row


def test_phi_4_mini_loads_and_generates_as_the_server_would(tmp_path: Path) -> None:
    row = preset("phi-4-mini-instruct")
    assert row["architecture"] == "Phi3ForCausalLM"
    assert row["runtime"]["transformers"] is True and "transformers" in row["engines"]
    model_dir = build_tiny_model(
        tmp_path / "phi4mini", "phi3", hidden=96, heads=6, kv_heads=2, extra_config=PHI4_MINI_SHAPE
    )
    settings = Settings(
        model=str(model_dir),
        served_model_name=row["name"],
        dtype=row["runtime"]["dtype"],
        trust_remote_code=row["runtime"]["trustRemoteCode"],
    )
    assert settings.trust_remote_code is False  # transformers 5.x has Phi3 natively
    loaded = load_model(settings)
    assert type(loaded.model).__name__ == "Phi3ForCausalLM"
    config = loaded.model.config
    assert (config.num_attention_heads, config.num_key_value_heads) == (6, 2)
    assert config.partial_rotary_factor == 0.75 or config.rope_parameters["partial_rotary_factor"] == 0.75
    assert loaded.model.lm_head.weight.data_ptr() == loaded.model.get_input_embeddings().weight.data_ptr()
    events = _run_engine(loaded, [("hello kaito", SamplingParams(max_new_tokens=6, do_sample=False))])
    assert events[0][-1].kind == "done"
    assert events[0][-1].completion_tokens >= 1
    again = _run_engine(loaded, [("hello kaito", SamplingParams(max_new_tokens=6, do_sample=False))])
    assert [e.text for e in again[0]] == [e.text for e in events[0]]  # greedy is deterministic


def _tiny_mistral3(dest: Path) -> Path:
    """A tiny random Mistral3ForConditionalGeneration (Ministral-3's architecture) in HF format."""
    import torch
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    base = build_tiny_model(dest, "llama")  # the tokenizer; the weights are replaced below
    text = yaml.safe_load((base / "config.json").read_text())
    config = Mistral3Config(
        text_config={
            "model_type": "mistral",
            "vocab_size": text["vocab_size"],
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
        },
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 16,
            "head_dim": 16,
        },
    )
    torch.manual_seed(0)
    for stale in base.glob("*.safetensors"):
        stale.unlink()
    Mistral3ForConditionalGeneration(config).save_pretrained(base)
    return base


def test_ministral_3_architecture_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    # Why the catalog keeps ministral-3 on vLLM: its class is image-text-to-text in transformers 5.x,
    # and kaito-serve loads causal LMs only. The refusal is an operator error, not a traceback.
    row = preset("ministral-3-3b-instruct")
    assert row["architecture"] == "Mistral3ForConditionalGeneration"
    assert row["engines"] == ["vllm"] and "image-text-to-text" in row["enginesReason"]
    model_dir = _tiny_mistral3(tmp_path / "ministral3")
    settings = Settings(model=str(model_dir), served_model_name=row["name"], dtype="auto")
    with pytest.raises(ModelLoadError, match=r"cannot load weights .*Mistral3Config"):
        load_model(settings)
