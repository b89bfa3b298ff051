"""Server settings: CLI flags, the inference ConfigMap file, and adapter discovery.

Everything here is plain Python (no torch), so bad input is rejected in well under a
second, before the expensive imports. Every problem raises `SettingsError` with a
message that names the flag/key/file and says how to fix it.

The config file (`--config`, Kaito's `inference_config.yaml`)::

    vllm: {...}                          # Kaito's vLLM runtime: ignored here (logged)
    max_probe_steps: 6                   # Kaito's vLLM runtime: ignored here (logged)
    kv_cache_cpu_memory_utilization: 0.5 # Kaito's vLLM runtime: ignored here (logged)
    transformers:                        # ours, optional; '_' and '-' are interchangeable
      max-model-len: 4096        # int [16, 1e7]   prompt + completion tokens
      max-batch-size: 16         # int [1, 1024]   rows per decode step
      max-queue: 64              # int [0, 1e5]    waiting requests beyond the batch
      max-tokens-limit: 4096     # int [1, 1e7]    largest max_tokens a request may ask for
      max-request-bytes: 1048576 # int [1 KiB, 64 MiB]
      drain-seconds: 30          # number [0, 3600] SIGTERM drain bound
      retry-after-seconds: 1     # int [1, 3600]   Retry-After on 503
      combination-type: cat      # cat | svd | linear  (how adapters combine)
      chat-template: "..."       # inline Jinja, overrides the tokenizer's

Any other top-level key is ignored with a warning; an unknown key inside `transformers:`
is an error. A key set in the file overrides the same command-line flag (as in Kaito,
whose config is applied after the operator's flags); the override is logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("kaito_runtime.serve")

Dtype = Literal["auto", "bfloat16", "float16", "float32"]
Quantization = Literal["4bit", "8bit"]
CombinationType = Literal["cat", "svd", "linear"]

DTYPES: tuple[Dtype, ...] = ("auto", "bfloat16", "float16", "float32")
COMBINATION_TYPES: tuple[CombinationType, ...] = ("cat", "svd", "linear")
# Model / adapter names end up in URLs, metrics labels and the OpenAI `model` field.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:]{0,127}$")
ADAPTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
MAX_ADAPTER_CONFIG_BYTES = 1024 * 1024

# Top-level keys of Kaito's inference_config.yaml that belong to other runtimes: tolerated
# so one ConfigMap works for both, but logged so nobody thinks they take effect here.
KAITO_FOREIGN_KEYS = ("vllm", "max_probe_steps", "kv_cache_cpu_memory_utilization")


class SettingsError(ValueError):
    """A startup configuration problem, reported to the user without a traceback."""


@dataclass(frozen=True)
class AdapterSpec:
    """One LoRA adapter directory found under --adapters-dir."""

    name: str
    path: Path
    strength: float
    strength_source: str  # "flag", "env" or "default": shown in logs
    rank: int
    base_model: str | None


@dataclass(frozen=True)
class Limits:
    """Knobs of our own `transformers:` section (and the matching CLI flags)."""

    max_batch_size: int = 16
    max_queue: int = 64
    max_model_len: int | None = None
    max_tokens_limit: int = 4096
    max_request_bytes: int = 1024 * 1024
    drain_seconds: float = 30.0
    retry_after_seconds: int = 1
    combination_type: CombinationType = "cat"


@dataclass(frozen=True)
class Settings:
    model: str
    revision: str | None = None
    served_model_name: str = ""
    adapters_dir: Path | None = None
    adapters: tuple[AdapterSpec, ...] = ()
    config_path: Path | None = None
    host: str = "0.0.0.0"
    port: int = 5000
    dtype: Dtype = "auto"
    quantization: Quantization | None = None
    limits: Limits = field(default_factory=Limits)
    api_keys: tuple[str, ...] = ()
    cache_dir: Path | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    log_level: str = "info"
    # The CLI sets this: a server process owns the machine. Tests loading models in-process don't.
    tune_cpu_threads: bool = False

    def with_limits(self, **changes: Any) -> Settings:
        return replace(self, limits=replace(self.limits, **changes))


# --------------------------------------------------------------------------- config file

# key in `transformers:` -> (Limits field or special, validator)
_INT_KEYS: dict[str, tuple[str, int, int]] = {
    "max-model-len": ("max_model_len", 16, 10_000_000),
    "max-batch-size": ("max_batch_size", 1, 1024),
    "max-queue": ("max_queue", 0, 100_000),
    "max-tokens-limit": ("max_tokens_limit", 1, 10_000_000),
    "max-request-bytes": ("max_request_bytes", 1024, 64 * 1024 * 1024),
    "retry-after-seconds": ("retry_after_seconds", 1, 3600),
}
_FLOAT_KEYS: dict[str, tuple[str, float, float]] = {
    "drain-seconds": ("drain_seconds", 0.0, 3600.0),
}
_OTHER_KEYS = ("combination-type", "chat-template")
CONFIG_KEYS = tuple(sorted([*_INT_KEYS, *_FLOAT_KEYS, *_OTHER_KEYS]))


@dataclass(frozen=True)
class FileConfig:
    """What the config file asked for; `limits` holds only the keys that were set."""

    limits: dict[str, Any]
    chat_template: str | None = None


def _load_yaml(path: Path) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise SettingsError(f"--config {path}: file is larger than {MAX_CONFIG_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(
            f"--config {path}: file not found (mount the inference ConfigMap there, or drop --config)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--config {path}: cannot read: {exc}") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise SettingsError(f"--config {path}: not valid YAML: {exc}") from None


def parse_config_file(path: Path) -> FileConfig:
    """Read Kaito's inference_config.yaml plus our optional `transformers:` section."""
    doc = _load_yaml(path)
    if doc is None:
        return FileConfig(limits={})
    if not isinstance(doc, Mapping):
        raise SettingsError(f"--config {path}: top level must be a mapping, got {type(doc).__name__}")
    for key in doc:
        if key == "transformers":
            continue
        if key in KAITO_FOREIGN_KEYS:
            log.info("config %s: key %r is for Kaito's vLLM runtime; ignored by kaito-serve", path, key)
        else:
            log.warning(
                "config %s: unknown top-level key %r ignored (kaito-serve reads 'transformers:')", path, key
            )
    section = doc.get("transformers")
    if section is None:
        return FileConfig(limits={})
    if not isinstance(section, Mapping):
        raise SettingsError(
            f"--config {path}: 'transformers' must be a mapping, got {type(section).__name__}"
        )
    limits: dict[str, Any] = {}
    template: str | None = None
    for raw_key, value in section.items():
        key = str(raw_key).replace("_", "-")
        where = f"--config {path}: transformers.{raw_key}"
        if key in _INT_KEYS:
            attr, lo, hi = _INT_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise SettingsError(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")
            limits[attr] = value
        elif key in _FLOAT_KEYS:
            attr, flo, fhi = _FLOAT_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not flo <= value <= fhi:
                raise SettingsError(f"{where} must be a number in [{flo}, {fhi}], got {value!r}")
            limits[attr] = float(value)
        elif key == "combination-type":
            if value not in COMBINATION_TYPES:
                raise SettingsError(f"{where} must be one of {', '.join(COMBINATION_TYPES)}, got {value!r}")
            limits["combination_type"] = value
        elif key == "chat-template":
            if not isinstance(value, str) or not value.strip():
                raise SettingsError(f"{where} must be a non-empty Jinja template string")
            if len(value.encode()) > MAX_TEMPLATE_BYTES:
                raise SettingsError(f"{where} is larger than {MAX_TEMPLATE_BYTES} bytes")
            template = value
        else:
            raise SettingsError(f"{where}: unknown key; supported keys: {', '.join(CONFIG_KEYS)}")
    return FileConfig(limits=limits, chat_template=template)


# --------------------------------------------------------------------------- adapters


def parse_strength(value: str, where: str) -> float:
    try:
        strength = float(value)
    except ValueError:
        raise SettingsError(f"{where}: strength {value!r} is not a number (use a value in [0, 1])") from None
    if not math.isfinite(strength) or not 0.0 <= strength <= 1.0:
        raise SettingsError(f"{where}: strength {value!r} must lie in [0, 1]")
    return strength


def parse_strength_flags(values: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise SettingsError(f"--adapter-strength {item!r}: expected NAME=VALUE, e.g. phi-3-adapter=0.5")
        if name in out:
            raise SettingsError(f"--adapter-strength: adapter {name!r} given twice")
        out[name] = parse_strength(raw, f"--adapter-strength {item}")
    return out


def discover_adapters(
    adapters_dir: Path | None,
    flag_strengths: Mapping[str, float],
    environ: Mapping[str, str],
    served_model_name: str,
) -> tuple[AdapterSpec, ...]:
    """Kaito semantics: every subdirectory with adapter_config.json is an adapter.

    Strength: --adapter-strength NAME=V, else the env var named after the directory
    (as Kaito's operator sets it), else 1.0.
    """
    if adapters_dir is None:
        if flag_strengths:
            raise SettingsError("--adapter-strength given without --adapters-dir")
        return ()
    if not adapters_dir.exists():
        # Kaito mounts an emptyDir at /mnt/adapter even with no adapters; a missing dir is "none".
        log.info("adapters dir %s does not exist; serving the base model only", adapters_dir)
        found: list[Path] = []
    elif not adapters_dir.is_dir():
        raise SettingsError(f"--adapters-dir {adapters_dir}: not a directory")
    else:
        try:
            found = sorted(p for p in adapters_dir.iterdir() if (p / "adapter_config.json").exists())
        except OSError as exc:
            raise SettingsError(f"--adapters-dir {adapters_dir}: cannot list: {exc}") from None
    unknown = set(flag_strengths) - {p.name for p in found}
    if unknown:
        raise SettingsError(
            f"--adapter-strength names {', '.join(sorted(unknown))} but {adapters_dir} has no such adapter "
            f"(found: {', '.join(p.name for p in found) or 'none'})"
        )
    specs = []
    for path in found:
        name = path.name
        if not ADAPTER_NAME_RE.match(name):
            raise SettingsError(
                f"adapter {path}: directory name {name!r} is not a valid model name "
                "(letters, digits, '.', '_', '-'; at most 63 characters)"
            )
        if name == served_model_name:
            raise SettingsError(f"adapter {path}: name {name!r} collides with --served-model-name")
        rank, base = _read_adapter_config(path)
        if name in flag_strengths:
            strength, source = flag_strengths[name], "flag"
        elif name in environ:
            strength, source = parse_strength(environ[name], f"env var {name} (adapter {path})"), "env"
        else:
            strength, source = 1.0, "default"
        specs.append(AdapterSpec(name, path, strength, source, rank, base))
    return tuple(specs)


def _read_adapter_config(path: Path) -> tuple[int, str | None]:
    cfg_path = path / "adapter_config.json"
    try:
        if cfg_path.stat().st_size > MAX_ADAPTER_CONFIG_BYTES:
            raise SettingsError(
                f"adapter {path}: adapter_config.json is larger than {MAX_ADAPTER_CONFIG_BYTES} bytes"
            )
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"adapter {path}: cannot read adapter_config.json: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(f"adapter {path}: adapter_config.json is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict):
        raise SettingsError(f"adapter {path}: adapter_config.json must be a JSON object")
    peft_type = cfg.get("peft_type")
    if peft_type != "LORA":
        raise SettingsError(
            f"adapter {path}: peft_type {peft_type!r} is not supported (only LoRA adapters are)"
        )
    rank = cfg.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise SettingsError(
            f"adapter {path}: adapter_config.json 'r' must be a positive integer, got {rank!r}"
        )
    if not any((path / f).exists() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise SettingsError(
            f"adapter {path}: no adapter_model.safetensors (or adapter_model.bin) next to the config"
        )
    base = cfg.get("base_model_name_or_path")
    return rank, base if isinstance(base, str) else None


# --------------------------------------------------------------------------- assembly


def read_api_keys(path: Path) -> tuple[str, ...]:
    """One token per non-empty line, so keys can be rotated without downtime."""
    try:
        if path.stat().st_size > 64 * 1024:
            raise SettingsError(f"--api-key-file {path}: larger than 64 KiB")
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SettingsError(f"--api-key-file {path}: cannot read: {exc}") from None
    keys = tuple(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    if not keys:
        raise SettingsError(f"--api-key-file {path}: no key found (one token per line)")
    if any(len(k) < 8 or any(c.isspace() for c in k) for k in keys):
        raise SettingsError(f"--api-key-file {path}: keys must be at least 8 characters without spaces")
    return keys


def read_template_file(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            raise SettingsError(f"--chat-template {path}: larger than {MAX_TEMPLATE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--chat-template {path}: cannot read: {exc}") from None
    if not text.strip():
        raise SettingsError(f"--chat-template {path}: file is empty")
    return text


def default_served_name(model: str) -> str:
    path = Path(model)
    looks_local = path.exists() or path.is_absolute() or model.startswith((".", "~"))
    name = path.name if looks_local else model  # a hub id like org/name is kept whole
    return name or "model"


def merge_limits(
    cli: Mapping[str, Any], file_limits: Mapping[str, Any], source: Path | None
) -> tuple[Limits, list[str]]:
    """Config file > CLI flag > default, like Kaito (whose config is applied after operator flags).

    Returns the limits and human-readable notes about overrides, for the startup log.
    """
    notes = []
    values: dict[str, Any] = {}
    for key, value in cli.items():
        if value is not None:
            values[key] = value
    for key, value in file_limits.items():
        if key in values and values[key] != value:
            notes.append(f"config {source}: {key}={value!r} overrides the command-line value {values[key]!r}")
        values[key] = value
    return Limits(**values), notes


def settings_environ() -> Mapping[str, str]:
    """The process environment (adapter strengths are env vars named after each adapter)."""
    return os.environ
