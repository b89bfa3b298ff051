"""The tuning pipeline: config -> dataset -> tokenize -> train -> outputs, in that order, once.

Everything that can be judged without torch (config, Kaito's rules, files, columns, split) is judged
first, so a bad ConfigMap or an empty dataset fails in well under a second instead of after loading a
model. The heavy imports happen only once the inputs are known to be usable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kaito_runtime.tune.checkpoints import fingerprint as run_fingerprint
from kaito_runtime.tune.checkpoints import prepare_output
from kaito_runtime.tune.config import load_config, quantization_bits, resolve_method, resolve_output_dir
from kaito_runtime.tune.dataset import (
    DatasetConfigView,
    detect_shape,
    find_files,
    read_rows,
    shuffle_and_split,
)
from kaito_runtime.tune.errors import DataError, ModelError
from kaito_runtime.tune.events import emit
from kaito_runtime.tune.schema import Method
from kaito_runtime.tune.tokenize import TokenizeOptions, tokenize_rows

Logger = Callable[[str], None]


@dataclass(frozen=True)
class TuneOptions:
    config: Path
    data: Path
    output: Path
    model: str | None = None
    revision: str | None = None
    method: Method | None = None
    cache_dir: str | None = None
    compat_peft: str | None = None
    checkpoint_minutes: float = 30.0
    token: str | None = None  # HF_TOKEN, read by the CLI


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.absolute()))
    except ValueError:  # dataset_path through a symlink: the name still identifies the file
        return path.name


def tune(options: TuneOptions, log: Logger) -> dict[str, Any]:
    """Run one tuning job; return its metrics. Raises TuneError subclasses for anything the user can fix."""
    loaded = load_config(options.config)
    method = resolve_method(loaded, options.method)
    bits = quantization_bits(loaded)
    output_dir = resolve_output_dir(loaded, options.output)
    cfg = loaded.config
    files = find_files(options.data, cfg.DatasetConfig)
    rows = read_rows(files)
    view = DatasetConfigView(
        messages_column=cfg.DatasetConfig.messages_column,
        context_column=cfg.DatasetConfig.context_column,
        response_column=cfg.DatasetConfig.response_column,
        response_column_set=loaded.is_set("DatasetConfig", "response_column"),
        text_field=cfg.TrainingArguments.dataset_text_field,
    )
    shape = detect_shape(rows, view)
    split = shuffle_and_split(rows, cfg.DatasetConfig)

    model_ref = options.model or cfg.ModelConfig.pretrained_model_name_or_path
    revision = options.revision or cfg.ModelConfig.revision
    fingerprint = run_fingerprint(
        {
            "config": hashlib.sha256(options.config.read_bytes()).hexdigest(),
            "method": method.value,
            "model": model_ref,
            "revision": revision,
            "data": [(_relative(p, options.data), p.stat().st_size) for p in files],
            "compat_peft": options.compat_peft,
        }
    )
    preparation = prepare_output(output_dir, fingerprint)
    if preparation.already_completed:
        emit("completed_already", output_dir=str(output_dir))
        log(f"{output_dir} already holds the finished adapter of this exact run; nothing to do")
        return {}
    if preparation.discarded:
        log(f"removed outputs of a different earlier run: {', '.join(preparation.discarded)}")
    emit(
        "start",
        method=method.value,
        quantization_bits=bits,
        model=model_ref,
        revision=revision,
        record_shape=shape.shape.value,
        columns=shape.columns,
        shape_from=shape.reason,
        files=[p.name for p in files],
        train_rows=len(split.train),
        eval_rows=len(split.eval),
        output_dir=str(output_dir),
    )

    from transformers import AutoConfig

    from kaito_runtime.tune import train as training
    from kaito_runtime.tune.output import rewrite_adapter_config, write_metrics, write_sentinel

    spec = training.ModelSpec(
        name_or_path=model_ref,
        revision=revision,
        cache_dir=options.cache_dir or cfg.ModelConfig.cache_dir,
        # The Kaito templates say local_files_only: true because Kaito pulls weights in an init
        # container; an explicit --model is ours to download.
        local_files_only=cfg.ModelConfig.local_files_only and options.model is None,
        token=options.token,
    )
    tokenizer = training.load_tokenizer(loaded, spec)
    try:
        model_config = AutoConfig.from_pretrained(
            spec.name_or_path,
            revision=spec.revision,
            cache_dir=spec.cache_dir,
            local_files_only=spec.local_files_only,
            trust_remote_code=cfg.ModelConfig.trust_remote_code,
            token=spec.token,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the config of {model_ref}: {exc}") from None
    limit = training.sequence_limit(loaded, tokenizer, getattr(model_config, "max_position_embeddings", None))
    tokenize_options = TokenizeOptions(
        max_length=limit,
        assistant_only_loss=cfg.TrainingArguments.assistant_only_loss is not False,
        completion_only_loss=cfg.TrainingArguments.completion_only_loss is not False,
    )
    train_examples, report = tokenize_rows(split.train, shape, tokenizer, tokenize_options)
    eval_examples, eval_report = tokenize_rows(split.eval, shape, tokenizer, tokenize_options)
    for warning in report.warnings() + [f"eval: {w}" for w in eval_report.warnings()]:
        emit("warning", message=warning)
        log(f"warning: {warning}")
    if not train_examples:
        raise DataError(
            f"no trainable rows left: all {len(split.train)} training rows exceed the sequence limit of {limit} "
            "tokens before reaching a trainable token",
            "raise TrainingArguments.max_length, or shorten the prompts",
        )

    training.limit_host_heap()
    model = training.load_model(loaded, spec, method, bits)
    quantized_layers = training.count_quantized_linear(model)
    peft_model, lora_defaults = training.attach_lora(model, loaded, method)
    trainable, total = training.count_parameters(peft_model)
    args = training.training_arguments(loaded, output_dir, has_eval=bool(eval_examples))
    result = training.train(
        model=peft_model,
        args=args,
        train_examples=train_examples,
        eval_examples=eval_examples,
        pad_id=int(tokenizer.pad_token_id),
        pad_to_multiple_of=cfg.DataCollator.pad_to_multiple_of,
        checkpoint_minutes=options.checkpoint_minutes,
        log=log,
    )

    peft_model.save_pretrained(str(output_dir))
    rewrite_adapter_config(output_dir, options.compat_peft, lora_defaults)
    metrics: dict[str, Any] = {
        "method": method.value,
        "quantization_bits": bits,
        "quantized_linear_layers": quantized_layers,
        "base_model": model_ref,
        "revision": revision,
        "record_shape": shape.shape.value,
        "train_rows": len(train_examples),
        "eval_rows": len(eval_examples),
        "sequence_limit": limit,
        "truncated_rows": len(report.truncated),
        "dropped_rows": len(report.dropped),
        "global_step": result.global_step,
        "epoch": result.epoch,
        "train_loss": result.train_loss,
        "eval_loss": result.eval_loss,
        "train_tokens_this_run": result.session_tokens,
        "train_seconds_this_run": round(result.session_seconds, 3),
        "tokens_per_s": round(result.session_tokens / max(result.session_seconds, 1e-9), 1),
        "resumed_from": result.resumed_from,
        "trainable_params": trainable,
        "total_params": total,
        "per_device_train_batch_size": cfg.TrainingArguments.per_device_train_batch_size,
        "compat_peft": options.compat_peft,
        **result.memory,
    }
    write_metrics(output_dir, metrics)
    write_sentinel(output_dir, f"kaito-tune {method.value} finished at global_step {result.global_step}")
    emit("done", **metrics, output_dir=str(output_dir))
    return metrics
