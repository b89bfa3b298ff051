"""Load `training_config.yaml` with source positions, validate it, and apply Kaito's rules.

Input: the file the tuning Job mounts from the user's ConfigMap (or Kaito's lora/qlora template).
Output: a frozen `TrainingConfig` plus a map from key path to (line, col), so that every problem, even
one found by a later rule, points at its line: `training_config.yaml:12:5: error:
training_config.TrainingArguments.learnig_rate: unknown key (hint: did you mean 'learning_rate'?)`.
All problems are reported at once.

Kaito's rules (`tuning_config_validation.go`, KAITO.md §1.7 item 9):
- sections are a subset of ModelConfig, QuantizationConfig, LoraConfig, TrainingArguments, DatasetConfig,
  DataCollator;
- `load_in_4bit` and `load_in_8bit` are not both true; qlora needs one of them, lora neither;
- `TrainingArguments.output_dir` resolves under `/mnt` (relative paths are joined to `/mnt`) and is not
  `/mnt` itself. kaito-tune adds: it must also be the `--output` root or inside it, since that is the
  only directory the Job mounts for results.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from kaito_runtime.tune.errors import ConfigError, Diagnostic
from kaito_runtime.tune.schema import SECTIONS, ConfigFile, Method, TrainingConfig, allowed_keys

MAX_CONFIG_BYTES = 1 << 20
KAITO_MOUNT_ROOT = PurePosixPath("/mnt")
Path_ = tuple[str, ...]

# Extra words for errors on keys that exist but hold a value kaito-tune does not support.
_FIELD_HINTS = {
    "resume_from_checkpoint": "remove it: kaito-tune resumes from the latest checkpoint in the output dir",
    "packing": "packing is not supported; batches are padded per batch instead (any batch size works)",
    "push_to_hub": "publish the adapter with `kaito-adapter push` (tuning.output.image)",
    "from_tf": "only PyTorch/safetensors weights are supported",
    "state_dict": "weights come from pretrained_model_name_or_path / --model",
}


@dataclass(frozen=True)
class LoadedConfig:
    config: TrainingConfig
    file: str
    positions: Mapping[Path_, tuple[int, int]]
    present: frozenset[Path_]  # key paths written in the file (to tell defaults from explicit values)

    def diagnostic(self, path: Path_, message: str, hint: str = "") -> Diagnostic:
        return _diagnostic(self.file, self.positions, path, message, hint)

    def is_set(self, *path: str) -> bool:
        return ("training_config", *path) in self.present


def load_config(path: Path) -> LoadedConfig:
    """Read and validate `path`; raise ConfigError listing every problem."""
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise _single(file, f"file is {size} bytes; a training config is at most {MAX_CONFIG_BYTES}")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _single(file, "file does not exist", "mount the tuning ConfigMap at --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _single(file, f"cannot read: {exc}") from None
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or str(exc).splitlines()[0]
        raise ConfigError([Diagnostic(file, line, col, "", f"invalid YAML: {problem}")]) from None
    except YAMLError as exc:
        raise _single(file, f"invalid YAML: {exc}") from None
    positions: dict[Path_, tuple[int, int]] = {(): (1, 1)}
    _record_positions(document, (), positions)
    diagnostics = _check_keys(document, file, positions)
    if diagnostics:
        raise ConfigError(diagnostics)
    plain = _plain(document)
    sections = plain.get("training_config") or {}
    # An empty section (`LoraConfig:` followed only by comments, as in Kaito's templates) means defaults.
    plain["training_config"] = {name: body for name, body in sections.items() if body is not None}
    try:
        parsed = ConfigFile.model_validate(plain)
    except ValidationError as exc:
        found = [_from_pydantic(error, file, positions) for error in exc.errors()]
        raise ConfigError(sorted(found, key=lambda d: (d.line, d.col))) from None
    loaded = LoadedConfig(parsed.training_config, file, positions, frozenset(positions))
    rule_problems = _check_quantization(loaded)
    if rule_problems:
        raise ConfigError(rule_problems)
    return loaded


def quantization_bits(loaded: LoadedConfig) -> int | None:
    """4, 8 or None: what the config asks for (QuantizationConfig, or Kaito's ModelConfig flags)."""
    quant = loaded.config.QuantizationConfig
    model = loaded.config.ModelConfig
    if (quant and quant.load_in_4bit) or model.load_in_4bit:
        return 4
    if (quant and quant.load_in_8bit) or model.load_in_8bit:
        return 8
    return None


def resolve_method(loaded: LoadedConfig, requested: Method | None) -> Method:
    """The tuning method: inferred from quantization, cross-checked against `--method` (Kaito's rule)."""
    bits = quantization_bits(loaded)
    inferred = Method.QLORA if bits else Method.LORA
    if requested is None or requested == inferred:
        return inferred
    quant_path: Path_ = ("training_config", "QuantizationConfig")
    if requested == Method.QLORA:
        raise ConfigError(
            [
                loaded.diagnostic(
                    quant_path,
                    "method qlora needs a quantized base model; neither load_in_4bit nor load_in_8bit is set",
                    "set QuantizationConfig.load_in_4bit: true (NF4), or tune with method lora",
                )
            ]
        )
    bit_key = "load_in_4bit" if bits == 4 else "load_in_8bit"
    raise ConfigError(
        [
            loaded.diagnostic(
                (*quant_path, bit_key),
                f"method lora does not allow a quantized base model ({bit_key} is true)",
                f"set {bit_key}: false, or tune with method qlora",
            )
        ]
    )


def resolve_output_dir(loaded: LoadedConfig, output_root: Path) -> Path:
    """Where results go: `--output`, or `TrainingArguments.output_dir` when it lies inside it.

    A relative output_dir means what it means to Kaito: a path below /mnt.
    """
    value = loaded.config.TrainingArguments.output_dir
    root = Path(output_root).absolute()
    if value is None:
        return root
    key: Path_ = ("training_config", "TrainingArguments", "output_dir")
    posix = PurePosixPath(value)
    candidate = _normpath(posix if posix.is_absolute() else KAITO_MOUNT_ROOT / posix)
    under_mnt = KAITO_MOUNT_ROOT in candidate.parents
    if candidate != KAITO_MOUNT_ROOT and _inside(Path(candidate), root):
        return Path(candidate)
    if not under_mnt:
        raise ConfigError(
            [
                loaded.diagnostic(
                    key,
                    f"{value!r} resolves to {candidate}, which is not below /mnt (Kaito's rule)",
                    "use /mnt/results, or leave output_dir out",
                )
            ]
        )
    raise ConfigError(
        [
            loaded.diagnostic(
                key,
                f"{value!r} is outside the output root {root} given by --output",
                "leave output_dir out, or point --output at it (the Job mounts only --output)",
            )
        ]
    )


def _normpath(path: PurePosixPath) -> PurePosixPath:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if len(parts) > 1:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_quantization(loaded: LoadedConfig) -> list[Diagnostic]:
    quant = loaded.config.QuantizationConfig
    model = loaded.config.ModelConfig
    four = bool((quant and quant.load_in_4bit) or model.load_in_4bit)
    eight = bool((quant and quant.load_in_8bit) or model.load_in_8bit)
    if four and eight:
        section = "QuantizationConfig" if quant and quant.load_in_8bit else "ModelConfig"
        return [
            loaded.diagnostic(
                ("training_config", section, "load_in_8bit"),
                "load_in_4bit and load_in_8bit are both true",
                "choose one: 4-bit NF4 is the QLoRA default",
            )
        ]
    return []


# ---------------------------------------------------------------- YAML plumbing


def _single(file: str, message: str, hint: str = "") -> ConfigError:
    return ConfigError([Diagnostic(file, 0, 0, "", message, hint)])


def _record_positions(node: Any, path: Path_, out: dict[Path_, tuple[int, int]]) -> None:
    if isinstance(node, CommentedMap):
        for key in node:
            line, col = node.lc.key(key)
            child = (*path, str(key))
            out[child] = (line + 1, col + 1)
            _record_positions(node[key], child, out)
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            child = (*path, str(index))
            out[child] = (line + 1, col + 1)
            _record_positions(item, child, out)


def _plain(node: Any) -> Any:
    """ruamel's round-trip types -> plain Python for pydantic."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _diagnostic(
    file: str, positions: Mapping[Path_, tuple[int, int]], path: Path_, message: str, hint: str = ""
) -> Diagnostic:
    probe = path
    while probe not in positions and probe:
        probe = probe[:-1]
    line, col = positions.get(probe, (0, 0))
    return Diagnostic(file, line, col, ".".join(path), message, hint)


def _did_you_mean(key: str, candidates: frozenset[str] | tuple[str, ...]) -> str:
    matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else ""


def _check_keys(document: Any, file: str, positions: Mapping[Path_, tuple[int, int]]) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if not isinstance(document, dict):
        return [Diagnostic(file, 1, 1, "", "the file must be a mapping with the key training_config")]
    for key in document:
        if key != "training_config":
            hint = (
                _did_you_mean(str(key), ("training_config",)) or "the only top-level key is training_config"
            )
            found.append(_diagnostic(file, positions, (str(key),), "unknown key", hint))
    config = document.get("training_config")
    if "training_config" not in document:
        found.append(
            Diagnostic(file, 1, 1, "training_config", "missing", "Kaito's layout: training_config: {...}")
        )
        return found
    if config is None:
        return found
    if not isinstance(config, dict):
        found.append(_diagnostic(file, positions, ("training_config",), "must be a mapping of sections"))
        return found
    for raw_section, body in config.items():
        section = str(raw_section)
        path = ("training_config", section)
        if section not in SECTIONS:
            hint = _did_you_mean(section, SECTIONS) or f"sections are {', '.join(SECTIONS)}"
            found.append(_diagnostic(file, positions, path, "unknown section", hint))
            continue
        if body is None:
            continue
        if not isinstance(body, dict):
            found.append(_diagnostic(file, positions, path, "must be a mapping"))
            continue
        allowed = allowed_keys(section)
        for key in body:
            if str(key) not in allowed:
                found.append(
                    _diagnostic(
                        file, positions, (*path, str(key)), "unknown key", _did_you_mean(str(key), allowed)
                    )
                )
    return found


def _from_pydantic(error: Any, file: str, positions: Mapping[Path_, tuple[int, int]]) -> Diagnostic:
    loc = tuple(str(part) for part in error["loc"])
    field = loc[-1] if loc else ""
    message = str(error["msg"])
    if error["type"] == "missing":
        message = "missing"
    return _diagnostic(file, positions, loc, message, _FIELD_HINTS.get(field, ""))
