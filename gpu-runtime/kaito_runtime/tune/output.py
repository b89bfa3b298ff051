"""Kaito's tuning outputs: adapter files, metrics, and the sentinel, written last.

`fine_tuning_completed.txt` is what Kaito's pusher sidecar (and `kaito-adapter push`) wait for, so it is
written only after the adapter files and metrics are complete on disk, atomically.

`--compat-peft 0.11` rewrites adapter_config.json for peft 0.11.1 (Kaito's pinned runtime), which
rejects unknown keys (RUNTIME.md §2, 7d: "LoraConfig.__init__() got an unexpected keyword argument
'alora_invocation_tokens'"). It keeps exactly the fields peft 0.11.1's LoraConfig declares. A dropped key
must hold its default value: an adapter that relies on a newer feature (DoRA is fine, it exists in 0.11;
lora_bias, target_parameters, ... are not) cannot be represented and is an error, not a silent change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kaito_runtime.tune.checkpoints import SENTINEL, write_json_atomic
from kaito_runtime.tune.errors import TuneError

# peft 0.11.1 init fields of PeftConfigMixin, PeftConfig and LoraConfig (src/peft/config.py, lora/config.py).
PEFT_011_LORA_KEYS = frozenset(
    {
        "peft_type", "auto_mapping", "base_model_name_or_path", "revision", "task_type", "inference_mode",
        "r", "target_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias", "use_rslora",
        "modules_to_save", "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern",
        "alpha_pattern", "megatron_config", "megatron_core", "loftq_config", "use_dora", "layer_replication",
    }
)  # fmt: skip
# Metadata a newer peft adds that carries no training semantics.
_ALWAYS_DROP = frozenset({"peft_version"})
_PEFT_011_INIT = (True, False, "gaussian", "pissa", "loftq")
COMPAT_CHOICES = ("0.11",)


def compat_peft_011(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`config` reduced to what peft 0.11.1 accepts; TuneError if that would change its meaning."""
    kept: dict[str, Any] = {}
    lost: list[str] = []
    for key, value in config.items():
        if key in PEFT_011_LORA_KEYS:
            kept[key] = value
        elif key not in _ALWAYS_DROP and value != defaults.get(key) and value not in (None, False, {}, []):
            lost.append(f"{key}={value!r}")
    init = kept.get("init_lora_weights", True)
    if not (init in _PEFT_011_INIT or (isinstance(init, str) and init.startswith("pissa_niter_"))):
        lost.append(f"init_lora_weights={init!r}")
    if lost:
        raise TuneError(
            f"--compat-peft 0.11: peft 0.11.1 cannot represent {', '.join(lost)}",
            "drop those LoraConfig settings, or serve with a newer peft",
        )
    return kept


def rewrite_adapter_config(output_dir: Path, compat: str | None, defaults: dict[str, Any]) -> None:
    if compat is None:
        return
    path = output_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    write_json_atomic(path, compat_peft_011(config, defaults))


def write_metrics(output_dir: Path, metrics: dict[str, Any]) -> Path:
    path = output_dir / "training_metrics.json"
    write_json_atomic(path, metrics)
    return path


def write_sentinel(output_dir: Path, summary: str) -> Path:
    path = output_dir / SENTINEL
    tmp = path.with_name(f".{SENTINEL}.tmp-{os.getpid()}")
    tmp.write_text(summary + "\n")
    os.replace(tmp, path)
    return path
