"""Derive a catalog row from a Hugging Face repo's config.json and file listing (pure, no network).

The rules are Kaito's generator (KAITO.md §2.2, ``presets/workspace/generator/generator.go``):
weights = sum of ``consolidated*.safetensors`` (Mistral format) else ``*.safetensors`` else ``*.bin``,
in GiB (2^30) rounded to 2 decimals; token limit = first of the listed keys (nested
``text_config``/``llm_config`` merged), default 2048; KV bytes per token in fp16 for MHA/GQA/MQA/MLA.
The CLI edge (``presets add``/``pin``) fetches the inputs; this module only computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

TOKEN_LIMIT_KEYS = (
    "max_position_embeddings",
    "n_ctx",
    "seq_length",
    "max_seq_len",
    "max_sequence_length",
    "model_max_length",
)
DEFAULT_TOKEN_LIMIT = 2048


@dataclass(frozen=True)
class Derived:
    architecture: str | None
    family: str | None
    weights_gib: Decimal
    context_length: int
    kv_bytes_per_token: int
    attention: str  # MHA | GQA | MQA | MLA
    quantization: str | None
    mistral_format: bool


def merged_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys, with a multimodal config's ``text_config``/``llm_config`` keys merged in."""
    out = dict(config)
    for nested in ("text_config", "llm_config"):
        sub = config.get(nested)
        if isinstance(sub, Mapping):
            for key, value in sub.items():
                out.setdefault(key, value)
    return out


def weights_gib(files: Iterable[tuple[str, int]]) -> tuple[Decimal, bool]:
    """(size in GiB to 2 decimals, Mistral consolidated format?) from (path, bytes) pairs."""
    listing = list(files)
    base = [(p.rsplit("/", 1)[-1], size) for p, size in listing]
    consolidated = [s for n, s in base if n.startswith("consolidated") and n.endswith(".safetensors")]
    if consolidated:
        chosen, mistral = consolidated, True
    else:
        chosen = [s for n, s in base if n.endswith(".safetensors")] or [
            s for n, s in base if n.endswith(".bin")
        ]
        mistral = False
    gib = (Decimal(sum(chosen)) / Decimal(2**30)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    return gib, mistral


def token_limit(cfg: Mapping[str, Any]) -> int:
    for key in TOKEN_LIMIT_KEYS:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_TOKEN_LIMIT


def kv_bytes_per_token(cfg: Mapping[str, Any]) -> tuple[int, str]:
    """(bytes per token of fp16 KV cache, attention kind)."""
    layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 0)
    if cfg.get("kv_lora_rank"):
        elements = int(cfg["kv_lora_rank"]) + int(cfg.get("qk_rope_head_dim") or 0)
        return elements * layers * 2, "MLA"
    heads = int(cfg.get("num_attention_heads") or cfg.get("n_head") or 0)
    hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or 0)
    head_dim = int(cfg.get("head_dim") or (hidden // heads if heads else 0))
    kv = cfg.get("num_key_value_heads")
    kv_heads = int(kv) if kv else (1 if cfg.get("multi_query") else heads)
    kind = "MHA" if kv_heads == heads else "MQA" if kv_heads == 1 else "GQA"
    return 2 * kv_heads * head_dim * layers * 2, kind


def quantization(cfg: Mapping[str, Any]) -> str | None:
    q = cfg.get("quantization_config")
    if not isinstance(q, Mapping) or not q.get("quant_method"):
        return None
    bits = q.get("bits")
    return f"{q['quant_method']}/{bits}" if bits else str(q["quant_method"])


def derive(config: Mapping[str, Any], files: Iterable[tuple[str, int]]) -> Derived:
    cfg = merged_config(config)
    size, mistral = weights_gib(files)
    bpt, attention = kv_bytes_per_token(cfg)
    archs = config.get("architectures") or cfg.get("architectures") or []
    return Derived(
        architecture=str(archs[0]) if archs else None,
        family=str(config["model_type"]) if config.get("model_type") else None,
        weights_gib=size,
        context_length=token_limit(cfg),
        kv_bytes_per_token=bpt,
        attention=attention,
        quantization=quantization(cfg),
        mistral_format=mistral,
    )
