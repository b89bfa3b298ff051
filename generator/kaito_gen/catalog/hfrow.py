"""A reviewed preset row from what a Hugging Face repo holds at one commit (pure, no network).

Input: the repo id, the resolved commit, its config.json (or a Mistral-format params.json), the
file listing with sizes and whether the repo is gated. Output: a ``models.yaml`` row as an ordered
dict, in the key order of the shipped table, or a ``RowRefused`` saying why kaito-gen cannot serve
the model. The figures follow Kaito's generator (``catalog/hfderive.py``, KAITO.md §2.2); the vLLM
check follows Kaito's ``vllm_model_arch_list.txt`` rule (§2.1) against ``catalog/vllm_archs.json``,
which ``generator/scripts/gen_vllm_archs.py`` dumps from vLLM's own ModelRegistry.
``kaito-gen presets add`` (commands/) fetches the inputs and writes the row; this module computes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from kaito_gen.catalog.hfderive import Derived, derive
from kaito_gen.core.schema_errors import did_you_mean

# vLLM serves a params.json-only repo only with --load-format/--config-format mistral, which
# kaito-gen (like Kaito, catalog/vllmparams.py) passes for names starting with these.
MISTRAL_FORMAT_PREFIXES = ("mistral", "ministral")
HF_REPO_RE = r"[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*"
_DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32", "half": "float16"}


class RowRefused(Exception):
    """The repo cannot become a preset row: ``message`` says why, ``hint`` what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class VllmArchs:
    version: str
    architectures: frozenset[str]
    previously: Mapping[str, str]  # architecture -> last vLLM version that served it


@cache
def vllm_archs() -> VllmArchs:
    text = resources.files("kaito_gen.catalog").joinpath("vllm_archs.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    return VllmArchs(doc["vllmVersion"], frozenset(doc["architectures"]), doc["previouslySupported"])


def preset_name(repo: str) -> str:
    """Kaito's Metadata.Name: the lowercased last path segment (``_`` → ``-``: preset names are DNS-ish)."""
    return repo.rsplit("/", 1)[-1].lower().replace("_", "-")


def unknown_model(name: str, mode: str, candidates: Iterable[str]) -> tuple[str, str]:
    """(message, hint) for a Workspace preset name that no table holds.

    Kaito v0.12 accepts any ``org/model`` id and fetches its config from the Hub while reconciling
    (``IsValidPreset``, KAITO.md §2.1); kaito-gen compiles offline, so the hint names the command
    that adds the row, pinned, at the CLI edge.
    """
    message = f"Unsupported {mode} preset name {name!r}"
    if not re.fullmatch(HF_REPO_RE, name):
        return message, did_you_mean(
            name, candidates
        ) or "run `kaito-gen presets list`; add models with --presets DIR"
    # Ids share org names and size suffixes, so only a near-identical one is worth suggesting.
    close = did_you_mean(name, candidates, cutoff=0.9)
    message += (
        ": a Hugging Face id that is not in the preset tables (Kaito would fetch its config from the"
        " Hub; kaito-gen compiles offline)"
    )
    add = f"run `kaito-gen presets add {name}` to add it to presets/models.yaml, pinned to its current commit"
    return message, f"{close} Otherwise {add}" if close else add


def config_from_mistral_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """An HF-style config from a Mistral ``params.json``, as vLLM's ``adapt_config_dict`` maps it
    (vllm/transformers_utils/configs/mistral.py, vLLM 0.32): key renames, the 128000-token
    default context, fp8 quantization and the architecture it picks."""
    cfg = dict(params)
    renames = {
        "dim": "hidden_size",
        "n_kv_heads": "num_key_value_heads",
        "n_layers": "num_hidden_layers",
        "n_heads": "num_attention_heads",
        "hidden_dim": "intermediate_size",
    }
    for old, new in renames.items():
        if old in cfg:
            cfg[new] = cfg.pop(old)
    cfg["max_position_embeddings"] = cfg.get("max_position_embeddings", 128_000)
    cfg.pop("max_seq_len", None)
    quant = cfg.pop("quantization", None)
    if isinstance(quant, Mapping):
        if quant.get("qformat_weight") == "fp8_e4m3":
            cfg["quantization_config"] = {"quant_method": "fp8"}
        elif quant.get("quant_method"):
            cfg["quantization_config"] = {"quant_method": str(quant["quant_method"]).lower()}
    moe = cfg.get("moe")
    vision = (cfg.get("multimodal") or {}).get("vision_encoder_args") or cfg.get("vision_encoder")
    if isinstance(moe, Mapping) and (moe.get("num_shared_experts") or 0) > 0:
        arch, family = "MistralLarge3ForCausalLM", "deepseek_v3"
    elif moe:
        arch, family = "MixtralForCausalLM", "mixtral"
    elif vision:
        arch, family = "PixtralForConditionalGeneration", "pixtral"
    else:
        arch, family = "MistralForCausalLM", "mistral"
    cfg["architectures"] = [arch]
    cfg.setdefault("model_type", family)
    return cfg


def _dtype(config: Mapping[str, Any]) -> str:
    raw = config.get("torch_dtype") or config.get("dtype")
    text_config = config.get("text_config")
    if raw is None and isinstance(text_config, Mapping):
        raw = text_config.get("torch_dtype") or text_config.get("dtype")
    return _DTYPES.get(str(raw), "bfloat16")


def _check_vllm(repo: str, config: Mapping[str, Any]) -> str:
    archs = [str(a) for a in config.get("architectures") or []]
    if not archs:
        raise RowRefused(
            f"{repo}: config.json names no `architectures`, so kaito-gen cannot tell which engine serves it",
            "add the row by hand to a table of your own (`--presets DIR`, see presets/README.md)",
        )
    known = vllm_archs()
    supported = [a for a in archs if a in known.architectures]
    if supported:
        return supported[0]
    dropped = [f"{a} (last served by vLLM {known.previously[a]})" for a in archs if a in known.previously]
    named = ", ".join(dropped) if dropped else ", ".join(archs)
    raise RowRefused(
        f"{repo}: architecture {named} is not supported by vLLM {known.version}, the engine kaito-gen "
        "serves catalog models with (Kaito refuses it too: vllm_model_arch_list.txt)",
        "pick a model whose config.json `architectures` vLLM supports "
        "(generator/kaito_gen/catalog/vllm_archs.json lists them)",
    )


def _check_weights(derived: Derived) -> None:
    if derived.weights_gib <= 0:
        raise RowRefused(
            "no weight files (*.safetensors, *.bin or consolidated*.safetensors) at this commit",
            "check the repo and revision; kaito-gen sizes models from their weight files",
        )


def build_row(
    repo: str,
    sha: str,
    *,
    config: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
    files: Iterable[tuple[str, int]],
    gated: bool,
) -> dict[str, Any]:
    """The models.yaml row for ``repo`` at commit ``sha``. Raises RowRefused."""
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise RowRefused(f"{repo}: the Hub answered revision {sha!r}, not a 40-hex commit", "retry")
    name = preset_name(repo)
    if config is None:
        if params is None:
            raise RowRefused(
                f"{repo}: neither config.json nor params.json at this commit",
                "kaito-gen reads config.json (or a Mistral-format params.json) to size the model",
            )
        if not name.startswith(MISTRAL_FORMAT_PREFIXES):
            raise RowRefused(
                f"{repo}: Mistral format (params.json, no config.json), but kaito-gen passes vLLM "
                "--load-format/--config-format mistral only to models named mistral*/ministral* (as Kaito does)",
                "use a revision or mirror of the model that has a config.json",
            )
        config = config_from_mistral_params(params)
    arch = _check_vllm(repo, config)
    derived = derive(config, files)
    _check_weights(derived)
    if derived.kv_bytes_per_token <= 0:
        raise RowRefused(
            f"{repo}: config.json gives no attention shape (layers, heads), so the KV cache cannot be sized",
            "add the row by hand to a table of your own (`--presets DIR`)",
        )
    reason = f"added by `kaito-gen presets add`: vLLM {vllm_archs().version} supports {arch}"
    row: dict[str, Any] = {
        "name": name,
        "hfRepo": repo,
        "revision": sha,
        "architecture": arch,
        "family": derived.family or "unknown",
        "weightsGiB": derived.weights_gib,
        "contextLength": derived.context_length,
        "kvBytesPerToken": derived.kv_bytes_per_token,
        "attention": derived.attention,
        "dtype": _dtype(config),
        "quantization": derived.quantization,
        "downloadAuthRequired": gated,
        "deprecated": False,
        "engines": ["vllm"],
        "enginesReason": reason + "; the transformers engine is not checked for added models",
        "runtime": {
            "transformers": False,
            "dtype": "bfloat16",
            "trustRemoteCode": bool(config.get("auto_map")),
            "chatTemplate": None,
        },
        "tuning": None,
    }
    return row


# Fields `presets add` refreshes on a row that already exists; the rest (engines, runtime, tuning,
# reasons) are reviewed by people and kept.
DERIVED_FIELDS = (
    "revision",
    "architecture",
    "family",
    "weightsGiB",
    "contextLength",
    "kvBytesPerToken",
    "attention",
    "dtype",
    "quantization",
    "downloadAuthRequired",
)
