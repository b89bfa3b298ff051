"""Kaito's per-model vLLM parameters (KAITO.md §2.2 generator rules, §2.3 table columns).

Kaito derives these in code (``presets/workspace/generator/generator.go``) from the model's
name and architecture; so does this module, from the same catalog row. Parsers and chat
templates are picked by name prefix first, then by architecture, as Kaito does. A preset row
that carries its own ``vllm`` section (a later catalog version) wins over these rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from kaito_gen.models.presets import ModelPreset

CHAT_TEMPLATE_DIR = "/workspace/chat_templates"

# (name prefix, tool-call parser, reasoning parser, chat template file stem), first match wins.
_BY_PREFIX: tuple[tuple[str, str | None, str | None, str | None], ...] = (
    ("deepseek-r1", "deepseek_v3", "deepseek_r1", "tool-chat-deepseekr1"),
    ("deepseek-v3.2", "deepseek_v32", "deepseek_v3", "tool-chat-deepseekv3"),
    ("deepseek-v3", "deepseek_v3", "deepseek_v3", "tool-chat-deepseekv3"),
    ("deepseek-v4", "deepseek_v4", "deepseek_v4", None),
    ("phi-4-mini", None, None, "tool-chat-phi4-mini"),
    ("qwen2.5", "hermes", None, "tool-chat-hermes"),
    ("qwen3-8b-awq", "hermes", "qwen3", None),
    ("qwen3", "qwen3_coder", "qwen3", None),
    ("gpt-oss", "openai", "openai_gptoss", None),
    ("llama-3", "llama3_json", None, "tool-chat-llama3.1-json"),
    ("ministral-3", None, None, None),
    ("mistral-large-3", "mistral", None, None),
    ("mistral-small-4", "mistral", "mistral", None),
    ("mistral-medium-3.5", "mistral", "mistral", None),
    ("mistral", "mistral", None, None),
    ("gemma-3", "functiongemma", None, None),
    ("gemma-4", "gemma4", "gemma4", "tool-chat-gemma4"),
    ("kimi-k2", "kimi_k2", "kimi_k2", None),
    ("minimax-m2", "minimax_m2", "minimax_m2_append_think", None),
    ("glm-5", "glm47", "glm45", None),
    ("granite-4", "granite4", "granite", None),
    ("nvidia-nemotron", "qwen3_coder", "nemotron_v3", None),
    ("nemotron", "qwen3_coder", "nemotron_v3", None),
)
# Hybrid-KV architectures, GPT-OSS and DeepSeek's sparse-attention (V3.2, V4) models: Kaito turns
# the LMCache CPU offload off for them (KAITO.md §2.3 "no-LMCache").
_NO_LMCACHE_FAMILIES = frozenset(
    {"gpt_oss", "gemma4", "qwen3_5", "qwen3_5_moe", "qwen3_next", "nemotron_h", "deepseek_v4", "deepseek_v32"}
)
# DeepSeek-V4 / V3.2 and GLM's DSA MoE run their FP8 GEMMs on DeepGEMM: Kaito sets
# VLLM_USE_DEEP_GEMM=1 for them (0 for every other model; KAITO.md §5.4). Kaito also installs a
# CUDA toolkit from an init container for DeepGEMM's JIT; the vllm/vllm-openai image kaito-vllm
# is built on is a CUDA *devel* image with DeepGEMM, so nvcc is already there.
_DEEP_GEMM_FAMILIES = frozenset({"deepseek_v4", "deepseek_v32", "glm_moe_dsa"})
# Gated-delta-net (linear attention) prefill: Kaito pins vLLM's Triton kernel for Qwen3.5+.
_GDN_TRITON_PREFIXES = ("qwen3.5", "qwen3.6", "qwen3.8")


@dataclass(frozen=True)
class VllmParams:
    load_format: str
    config_format: str
    tokenizer_mode: str
    dtype: str  # "auto" for quantized checkpoints, else bfloat16
    tool_call_parser: str | None
    reasoning_parser: str | None
    chat_template: str | None  # path inside the image
    no_lmcache: bool
    deep_gemm: bool  # VLLM_USE_DEEP_GEMM=1
    extra: tuple[tuple[str, str], ...]  # (flag, value); value "" → bare flag


def _short(model: ModelPreset) -> str:
    """Kaito's Metadata.Name: the lowercased last path segment of the HF id."""
    return model.hf_repo.rsplit("/", 1)[-1].lower()


def vllm_params(model: ModelPreset) -> VllmParams:
    names = (model.name.lower(), _short(model))
    tool = reasoning = template = None
    for prefix, t, r, c in _BY_PREFIX:
        if any(n.startswith(prefix) for n in names):
            tool, reasoning, template = t, r, c
            break
    mistral_format = any(n.startswith(("mistral", "ministral")) for n in names)
    fmt = "mistral" if mistral_format else "auto"
    tokenizer = fmt
    if any(n.startswith(("deepseek-r1", "deepseek-v3")) for n in names):
        tokenizer = "deepseek_v32"
    elif any(n.startswith("deepseek-v4") for n in names):
        tokenizer = "deepseek_v4"
    extra: list[tuple[str, str]] = []
    if any(n.startswith(("deepseek-v4", "glm-5.2-fp8")) for n in names):
        extra.append(("kv-cache-dtype", "fp8"))
    if any(n.startswith(_GDN_TRITON_PREFIXES) for n in names):
        extra.append(("gdn-prefill-backend", "triton"))
    if any(n.startswith("minimax-m2") for n in names):
        extra.append(("enable-expert-parallel", ""))
    if any(n.startswith("deepseek-v3.2") for n in names):
        # vLLM's KernelConfig field (a dotted --kernel-config.<field> override), as Kaito passes it.
        extra.append(("kernel-config.enable_flashinfer_autotune", "False"))
    return VllmParams(
        load_format=fmt,
        config_format=fmt,
        tokenizer_mode=tokenizer,
        dtype="auto" if model.quantization else "bfloat16",
        tool_call_parser=tool,
        reasoning_parser=reasoning,
        chat_template=f"{CHAT_TEMPLATE_DIR}/{template}.jinja" if template else None,
        no_lmcache=model.family in _NO_LMCACHE_FAMILIES,
        deep_gemm=model.family in _DEEP_GEMM_FAMILIES,
        extra=tuple(extra),
    )
