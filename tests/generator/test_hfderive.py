"""hfderive: Kaito's generator rules reproduce catalog figures from config.json + file listings."""

from __future__ import annotations

from decimal import Decimal

from kaito_gen.catalog.hfderive import derive, kv_bytes_per_token, token_limit, weights_gib
from kaito_gen.compiler.load import load_presets

CATALOG = load_presets()
GIB = 2**30


def test_phi3_mini_mha_matches_the_catalog() -> None:
    cfg = {
        "architectures": ["Phi3ForCausalLM"],
        "model_type": "phi3",
        "hidden_size": 3072,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "num_hidden_layers": 32,
        "max_position_embeddings": 4096,
    }
    files = [
        ("model-00001-of-00002.safetensors", int(4.5 * GIB)),
        ("model-00002.safetensors", int(2.62 * GIB)),
    ]
    files += [("pytorch_model.bin", 99 * GIB), ("config.json", 1000)]
    d = derive(cfg, files)
    row = CATALOG.find_model("phi-3-mini-4k-instruct")
    assert row is not None
    assert (d.architecture, d.family, d.attention) == (row.architecture, row.family, row.attention)
    assert d.kv_bytes_per_token == row.kv_bytes_per_token
    assert d.context_length == row.context_length
    assert d.weights_gib == row.weights_gib and not d.mistral_format


def test_mla_gqa_mqa_and_quantization() -> None:
    # DeepSeek-V3: kv_lora_rank 512 + rope 64, 61 layers → 70272 (KAITO.md row 24).
    assert kv_bytes_per_token({"kv_lora_rank": 512, "qk_rope_head_dim": 64, "num_hidden_layers": 61}) == (
        70272,
        "MLA",
    )
    # Qwen2.5-Coder-7B: 28 layers, 4 KV heads of 128 → 57344 GQA.
    gqa = {"hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4, "num_hidden_layers": 28}
    assert kv_bytes_per_token(gqa) == (57344, "GQA")
    assert (
        kv_bytes_per_token(
            {"hidden_size": 4544, "num_attention_heads": 71, "multi_query": True, "num_hidden_layers": 32}
        )[1]
        == "MQA"
    )
    d = derive({"quantization_config": {"quant_method": "awq", "bits": 4}}, [])
    assert d.quantization == "awq/4" and d.weights_gib == Decimal("0.00")


def test_mistral_consolidated_format_and_nested_token_limit() -> None:
    size, mistral = weights_gib(
        [("consolidated.safetensors", 13 * GIB), ("model-00001.safetensors", 14 * GIB)]
    )
    assert (size, mistral) == (Decimal("13.00"), True)
    assert token_limit({"text_config": {"max_position_embeddings": 262144}}) == 2048  # not merged here
    assert derive({"text_config": {"max_position_embeddings": 262144}}, []).context_length == 262144
    assert token_limit({}) == 2048
    assert token_limit({"n_ctx": 0, "seq_length": 8192}) == 8192
