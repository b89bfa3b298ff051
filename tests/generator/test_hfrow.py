"""hfrow: the pure half of `presets add` (row from config/params + listing) and its refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kaito_gen.catalog.hfrow import RowRefused, build_row, config_from_mistral_params, preset_name
from kaito_gen.models.presets import ModelPreset

SHA = "0123456789abcdef0123456789abcdef01234567"
LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 16,
    "max_position_embeddings": 8192,
    "torch_dtype": "float16",
}
FILES = [("model.safetensors", 2 * 2**30), ("config.json", 700)]


@pytest.mark.parametrize(
    ("params", "arch", "family"),
    [
        ({"dim": 4096, "n_layers": 2, "n_heads": 32, "n_kv_heads": 8}, "MistralForCausalLM", "mistral"),
        (
            {"dim": 4096, "n_layers": 2, "n_heads": 32, "moe": {"num_experts": 8}},
            "MixtralForCausalLM",
            "mixtral",
        ),
        (
            {"dim": 7168, "n_layers": 2, "n_heads": 128, "moe": {"num_shared_experts": 1}},
            "MistralLarge3ForCausalLM",
            "deepseek_v3",
        ),
        (
            {"dim": 5120, "n_layers": 2, "n_heads": 32, "vision_encoder": {"image_size": 1024}},
            "PixtralForConditionalGeneration",
            "pixtral",
        ),
    ],
    ids=["dense", "moe", "large-3", "vision"],
)
def test_mistral_params_map_as_vllm_maps_them(params: dict[str, object], arch: str, family: str) -> None:
    cfg = config_from_mistral_params(params)
    assert (cfg["architectures"], cfg["model_type"]) == ([arch], family)
    assert cfg["num_hidden_layers"] == 2 and cfg["max_position_embeddings"] == 128_000
    assert "dim" not in cfg and "n_heads" not in cfg


def test_row_validates_as_a_preset_and_reads_dtype_and_remote_code() -> None:
    row = build_row(
        "acme/My_Model-1B",
        SHA,
        config={**LLAMA, "auto_map": {"AutoConfig": "x.Y"}},
        params=None,
        files=FILES,
        gated=False,
    )
    preset = ModelPreset.model_validate(row)
    assert preset.name == preset_name("acme/My_Model-1B") == "my-model-1b"
    assert (preset.dtype, preset.weights_gib, preset.kv_bytes_per_token) == (
        "float16",
        Decimal("2.00"),
        32768,
    )
    assert preset.runtime.trust_remote_code and preset.supported_engines == ("vllm",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sha": "main"}, "not a 40-hex commit"),
        ({"config": None}, "neither config.json nor params.json"),
        ({"config": {**LLAMA, "architectures": []}}, "names no `architectures`"),
        ({"files": [("README.md", 10)]}, "no weight files"),
        ({"config": {"architectures": ["LlamaForCausalLM"]}}, "no attention shape"),
    ],
    ids=["sha", "no-config", "no-arch", "no-weights", "no-shape"],
)
def test_refusals(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"sha": SHA, "config": LLAMA, "params": None, "files": FILES, "gated": False}
    args.update(kwargs)
    sha = args.pop("sha")
    with pytest.raises(RowRefused, match=message.replace("(", r"\(")) as info:
        build_row("acme/m", str(sha), **args)
    assert info.value.hint
