"""Checks of the ConfigMaps a Workspace references (inference and training configs).

A controller can only look these up once the Workspace is applied; kaito-gen
has them in the same commit, so it checks them at compile time. Default
training configs are Kaito's chart templates (KAITO.md §6.4).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kaito_gen.compiler.configschema import schema_diagnostics, unknown_top_level
from kaito_gen.compiler.validate import ObjectInput
from kaito_gen.core.blockmap import BlockMap, block_map
from kaito_gen.core.errors import Diagnostic, FieldPath, SourcePos
from kaito_gen.core.yamlsrc import parse_documents

INFERENCE_KEY = "inference_config.yaml"
TRAINING_KEY = "training_config.yaml"
TRAINING_SECTIONS = (
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DatasetConfig",
    "DataCollator",
)
DEFAULT_OUTPUT_DIR = "/mnt/results"

# Kaito's chart templates lora-params-template / qlora-params-template, unchanged in meaning.
_DEFAULT_TRAINING = """\
training_config:
  ModelConfig:
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"

  QuantizationConfig:
{quantization}

  LoraConfig:
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0

  TrainingArguments:
    output_dir: "/mnt/results"
    ddp_find_unused_parameters: false
    save_strategy: "no"
    per_device_train_batch_size: 1

  DataCollator:
    mlm: true

  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"""
_LORA_QUANT = "    load_in_4bit: false"
_QLORA_QUANT = """\
    load_in_4bit: true
    bnb_4bit_quant_type: "nf4"
    bnb_4bit_compute_dtype: "bfloat16"
    bnb_4bit_use_double_quant: true"""


def default_training_config(method: str, *, bf16: bool) -> str:
    text = _DEFAULT_TRAINING.format(quantization=_QLORA_QUANT if method == "qlora" else _LORA_QUANT)
    if not bf16:
        # GPUs before Ampere (the seeds' V100) have no bf16: train and compute in fp16.
        text = text.replace('"bfloat16"', '"float16"')
    return text


@dataclass(frozen=True)
class ConfigCheck:
    parsed: Mapping[str, Any] | None
    diagnostics: tuple[Diagnostic, ...]


class EmbeddedMapping(dict[str, Any]):
    """An embedded config, parsed, that knows where each of its keys sits in the
    ConfigMap's own file (see :mod:`kaito_gen.core.blockmap`)."""

    file: str = ""
    positions: Mapping[FieldPath, tuple[int, int]] = {}
    blocks: BlockMap | None = None
    fallback: SourcePos = SourcePos("")  # the ConfigMap key, when the block cannot be mapped
    bad: frozenset[FieldPath] = frozenset()  # inner paths with a schema error: later rules skip them

    def at(self, line: int, col: int) -> SourcePos:
        if self.blocks is None:
            return self.fallback
        return SourcePos(self.file, *self.blocks.pos(line, col))

    def pos(self, path: FieldPath) -> SourcePos | None:
        for cut in range(len(path), 0, -1):
            hit = self.positions.get(path[:cut])
            if hit is not None:
                return self.at(*hit)
        return None

    def locate(self, path: FieldPath) -> SourcePos:
        return self.pos(path) or self.fallback

    def flagged(self, path: FieldPath) -> bool:
        return touches(self.bad, path)


def touches(bad: Iterable[FieldPath], path: FieldPath) -> bool:
    """Whether a schema error at one of ``bad`` concerns ``path``, a part of it or something in it."""
    return any(b[: len(path)] == path or path[: len(b)] == b for b in bad)


def _embedded(
    obj: ObjectInput, key: str, ws_pos: SourcePos, ws_path: FieldPath
) -> tuple[str | None, list[Diagnostic]]:
    data = obj.data.get("data")
    if not isinstance(data, dict) or key not in data:
        have = ", ".join(sorted(data)) if isinstance(data, dict) and data else "no data keys"
        return None, [
            Diagnostic(
                ws_pos,
                ws_path,
                f"ConfigMap {obj.name!r} ({obj.doc.file}) has no key {key!r} (it has {have})",
                hint=f"put the configuration under data.{key}",
                code="configmap-key",
            )
        ]
    text = data[key]
    if not isinstance(text, str):
        return None, [
            Diagnostic(
                obj.doc.pos(("data", key)),
                ("data", key),
                f"{key} must be a string (a YAML document)",
                code="configmap-key",
            )
        ]
    return text, []


def parse_embedded(obj: ObjectInput, key: str, ws_pos: SourcePos, ws_path: FieldPath) -> ConfigCheck:
    """Parse the YAML stored under ``data[key]``; positions point into the ConfigMap file.

    The inference config is also checked against kaito-serve's schema here (its problems
    come with the parsed mapping); the training config is, in :func:`check_training_config`.
    """
    text, problems = _embedded(obj, key, ws_pos, ws_path)
    if text is None:
        return ConfigCheck(None, tuple(problems))
    embedded = EmbeddedMapping()
    embedded.file = obj.doc.file
    embedded.fallback = obj.doc.pos(("data", key))
    embedded.blocks = block_map(obj.doc, ("data", key), text)
    docs, errs = parse_documents(obj.doc.file, text)
    shifted = [
        Diagnostic(
            embedded.at(d.pos.line, d.pos.col), ("data", key), f"{key}: {d.message}", d.hint, code=d.code
        )
        for d in errs
    ]
    if shifted:
        return ConfigCheck(None, tuple(shifted))
    parsed = docs[0].data if docs else {}
    if not isinstance(parsed, dict):
        return ConfigCheck(
            None,
            (
                Diagnostic(
                    embedded.fallback,
                    ("data", key),
                    f"{key} must hold a YAML mapping",
                    code="configmap-parse",
                ),
            ),
        )
    embedded.update(parsed)
    embedded.positions = docs[0].positions if docs else {}
    if key != INFERENCE_KEY:
        return ConfigCheck(embedded, ())
    base: FieldPath = ("data", key)
    found, bad = schema_diagnostics(embedded, "inference_config", base, embedded.locate, "inference-config")
    found += unknown_top_level(
        embedded, "inference_config", base, embedded.locate, "inference-config", "the runtime"
    )
    embedded.bad = frozenset(bad)
    return ConfigCheck(embedded, tuple(found))


def check_training_config(
    parsed: Mapping[str, Any], method: str, where: SourcePos
) -> tuple[str, list[Diagnostic]]:
    """Kaito's tuning ConfigMap rules (KAITO.md §1.7 item 9) and kaito-tune's schema.

    Returns (output_dir, problems). A rule that needs a field with a schema error is skipped:
    the schema's diagnostic already says what is wrong with it.
    """
    problems: list[Diagnostic] = []
    path: FieldPath = ("data", TRAINING_KEY)

    def err(message: str, hint: str = "", at: FieldPath = ()) -> None:
        pos = parsed.pos(("training_config", *at)) if isinstance(parsed, EmbeddedMapping) else None
        problems.append(Diagnostic(pos or where, path, message, hint=hint, code="training-config"))

    root = parsed.get("training_config")
    if not isinstance(root, dict):
        err("training_config.yaml must have a top-level `training_config:` mapping")
        return DEFAULT_OUTPUT_DIR, problems
    locate = parsed.locate if isinstance(parsed, EmbeddedMapping) else (lambda _path: where)
    found, bad = schema_diagnostics(
        parsed, "training_config", path, locate, "training-config", sections=("training_config",)
    )
    problems.extend(found)

    def flagged(*at: str | int) -> bool:
        return touches(bad, ("training_config", *at))

    quant = root.get("QuantizationConfig")
    q4 = q8 = False
    if quant is not None and not flagged("QuantizationConfig"):
        if not isinstance(quant, dict):
            err("QuantizationConfig must be a mapping")
        else:
            q4, q8 = quant.get("load_in_4bit") is True, quant.get("load_in_8bit") is True
            if q4 and q8:
                err("load_in_4bit and load_in_8bit cannot both be true")
    if flagged("QuantizationConfig"):
        pass  # the method rules need the quantization flags; the schema error comes first
    elif method == "lora" and (q4 or q8):
        err(
            "method lora must not quantize (load_in_4bit/load_in_8bit are true)",
            "use method: qlora, or set both to false",
        )
    elif method == "qlora":
        if quant is None:
            err(
                "method qlora needs a QuantizationConfig section",
                "add QuantizationConfig with load_in_4bit: true",
            )
        elif not (q4 or q8):
            flag = "load_in_4bit" if isinstance(quant, dict) and "load_in_4bit" in quant else "load_in_8bit"
            err(
                "method qlora needs load_in_4bit or load_in_8bit set to true", at=("QuantizationConfig", flag)
            )
    out_dir = DEFAULT_OUTPUT_DIR
    args = root.get("TrainingArguments")
    if isinstance(args, dict) and "output_dir" in args and not flagged("TrainingArguments", "output_dir"):
        value = args["output_dir"]
        if not isinstance(value, str) or not value:
            err(
                "TrainingArguments.output_dir must be a non-empty string",
                at=("TrainingArguments", "output_dir"),
            )
        else:
            resolved = posixpath.normpath(value if value.startswith("/") else posixpath.join("/mnt", value))
            if resolved == "/mnt" or not resolved.startswith("/mnt/"):
                err(
                    f"TrainingArguments.output_dir {value!r} must resolve below /mnt (not /mnt itself)",
                    at=("TrainingArguments", "output_dir"),
                )
            else:
                out_dir = resolved
    return out_dir, problems


def inference_max_model_len(parsed: Mapping[str, Any]) -> tuple[int | None, str]:
    """``max-model-len`` from the vllm section (Kaito) or our transformers section. (value, problem).

    Both runtimes take ``max_model_len`` for ``max-model-len``. A value the schema already
    refused gives ``(None, "")``: its diagnostic says what is wrong.
    """
    flagged = parsed.flagged if isinstance(parsed, EmbeddedMapping) else (lambda _path: False)
    for section in ("transformers", "vllm"):
        block = parsed.get(section)
        if block is None or (flagged((section,)) and not isinstance(block, dict)):
            continue
        if not isinstance(block, dict):
            return None, f"section {section!r} must be a mapping"
        key = next((k for k in block if str(k).replace("_", "-") == "max-model-len"), None)
        if key is None:
            continue
        if flagged((section, key)):
            return None, ""
        value = block[key]
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
            return None, f"{section}.{key} must be a positive integer, got {value!r}"
        return int(value), ""
    return None, ""
