"""The training stage: tokenizer, base model (quantized for QLoRA), LoRA, transformers Trainer, resume.

Plain `transformers.Trainer` (no TRL): the dataset is already tokenized with its loss masks, the
collator pads labels as well as inputs, and Trainer brings gradient checkpointing, accumulation,
schedulers, checkpoint save/resume and token counting. One override (`loss.KaitoTrainer`) computes the
loss without full-batch vocabulary logits, which is what lets batches larger than 1 fit in the memory
Kaito's batch-size-1 job needs.

QLoRA = BitsAndBytes 4-bit NF4 with double quantisation (or 8-bit) + `prepare_model_for_kbit_training`
+ LoRA; LoRA = the same without quantisation. Default target modules per architecture: phi-3's fused
projections (`qkv_proj`, `gate_up_proj`), llama-style q/k/v/o/gate/up/down for the llama family, peft's
"all-linear" otherwise. Kaito's `DEFAULT_TARGET_MODULES` env var is deliberately not read: for phi-3 it
names llama-style modules that phi-3 does not have.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PrinterCallback,
    TrainingArguments,
)

from kaito_runtime.tune.checkpoints import latest_complete
from kaito_runtime.tune.collate import ExampleDataset, PadCollator
from kaito_runtime.tune.config import LoadedConfig
from kaito_runtime.tune.errors import ConfigError, ModelError, TuneError
from kaito_runtime.tune.events import emit
from kaito_runtime.tune.loss import KaitoTrainer
from kaito_runtime.tune.memory import MemoryWatch
from kaito_runtime.tune.progress import JsonProgressCallback, TimedCheckpointCallback
from kaito_runtime.tune.schema import Method
from kaito_runtime.tune.tokenize import Example

LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    **{
        name: LLAMA_STYLE
        for name in (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen3",
            "qwen2_moe",
            "gemma",
            "gemma2",
            "gemma3_text",
        )
    },
}
DEFAULT_MAX_LENGTH = 1024
# glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
# activation-sized tensors come from the heap and freed heap pages stay in the process. Pinning the
# threshold (KAITO_TUNE_MMAP_THRESHOLD, bytes) keeps larger tensors in their own mappings, returned on
# free: on CPU hosts it buys peak RSS with speed (1 MiB: about -100 MB at batch 8 on the bench model,
# about -30 % tokens/s; BENCHMARKS.md, tuning), so it is opt-in. 0 or unset: glibc's default.
_M_MMAP_THRESHOLD = -3  # mallopt parameter, glibc's malloc.h


@dataclass(frozen=True)
class ModelSpec:
    name_or_path: str
    revision: str | None
    cache_dir: str | None
    local_files_only: bool
    token: str | None


@dataclass(frozen=True)
class TrainResult:
    global_step: int
    epoch: float
    train_loss: float | None
    eval_loss: float | None
    session_tokens: int  # non-padding tokens trained in this process (resumed steps excluded)
    session_seconds: float
    resumed_from: str | None
    memory: dict[str, float]  # memory.MemoryWatch.report(): whole-process peak and the training increment


def has_cuda() -> bool:
    return bool(torch.cuda.is_available())


def load_tokenizer(loaded: LoadedConfig, spec: ModelSpec) -> Any:
    model_cfg = loaded.config.ModelConfig
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            spec.name_or_path,
            revision=spec.revision,
            cache_dir=spec.cache_dir,
            local_files_only=spec.local_files_only,
            trust_remote_code=model_cfg.trust_remote_code,
            token=spec.token,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load the tokenizer of {spec.name_or_path}: {_first_line(exc)}", _hint(spec)
        ) from None
    if model_cfg.chat_template:
        tokenizer.chat_template = _chat_template(model_cfg.chat_template)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # Kaito's rule; padding is masked out anyway
    return tokenizer


def _chat_template(value: str) -> str:
    """Kaito's ModelConfig.chat_template: inline when it contains `{` or a newline, else a file path."""
    if "{" in value or "\n" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise TuneError(f"ModelConfig.chat_template {value!r} is neither a template nor a readable file")
    return path.read_text(encoding="utf-8")


def sequence_limit(loaded: LoadedConfig, tokenizer: Any, model_max: int | None) -> int:
    configured = loaded.config.TrainingArguments.sequence_limit
    if configured:
        return configured
    limits = [DEFAULT_MAX_LENGTH]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    if model_max:
        limits.append(model_max)
    return min(limits)


def load_model(loaded: LoadedConfig, spec: ModelSpec, method: Method, bits: int | None) -> PreTrainedModel:
    model_cfg = loaded.config.ModelConfig
    dtype = _dtype(model_cfg.torch_dtype)
    kwargs: dict[str, Any] = {
        "revision": spec.revision,
        "cache_dir": spec.cache_dir,
        "local_files_only": spec.local_files_only,
        "trust_remote_code": model_cfg.trust_remote_code,
        "token": spec.token,
        "force_download": model_cfg.force_download,
    }
    if model_cfg.proxies:
        kwargs["proxies"] = {"http": model_cfg.proxies, "https": model_cfg.proxies}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if method == Method.QLORA:
        kwargs["quantization_config"] = _bnb_config(loaded, bits, dtype)
        kwargs["device_map"] = model_cfg.device_map if has_cuda() else "cpu"  # bitsandbytes places weights
    elif has_cuda() and model_cfg.device_map:
        kwargs["device_map"] = model_cfg.device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(spec.name_or_path, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelError(
            f"cannot load the model {spec.name_or_path}: {_first_line(exc)}", _hint(spec)
        ) from None
    model.config.use_cache = False  # incompatible with gradient checkpointing, useless in training
    return model


def _bnb_config(loaded: LoadedConfig, bits: int | None, dtype: torch.dtype | None) -> BitsAndBytesConfig:
    quant = loaded.config.QuantizationConfig
    compute = _dtype(quant.bnb_4bit_compute_dtype if quant else None) or dtype or torch.float32
    if quant is None:  # ModelConfig.load_in_4bit/8bit alone: the QLoRA defaults
        return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=bits == 4,
            load_in_8bit=bits == 8,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute,
        )
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=bits == 4,
        load_in_8bit=bits == 8,
        llm_int8_threshold=quant.llm_int8_threshold,
        llm_int8_skip_modules=quant.llm_int8_skip_modules,
        llm_int8_enable_fp32_cpu_offload=quant.llm_int8_enable_fp32_cpu_offload,
        llm_int8_has_fp16_weight=quant.llm_int8_has_fp16_weight,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_type=quant.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=quant.bnb_4bit_use_double_quant,
        bnb_4bit_quant_storage=_dtype(quant.bnb_4bit_quant_storage),
    )


def _dtype(name: str | None) -> Any:
    if name is None or name == "auto":
        return name if name == "auto" else None
    return getattr(torch, name)


def attach_lora(
    model: PreTrainedModel, loaded: LoadedConfig, method: Method
) -> tuple[PeftModel, dict[str, Any]]:
    lora = loaded.config.LoraConfig
    gradient_checkpointing = loaded.config.TrainingArguments.gradient_checkpointing
    if method == Method.QLORA:
        model = prepare_model_for_kbit_training(  # type: ignore[no-untyped-call]
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    model_type = str(getattr(model.config, "model_type", ""))
    target = lora.target_modules or DEFAULT_TARGET_MODULES.get(model_type, "all-linear")
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=target,
        bias=lora.bias,
        task_type="CAUSAL_LM",
        init_lora_weights=cast(Any, lora.init_lora_weights),  # validated by peft itself
        **(lora.model_extra or {}),
    )
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as exc:
        linear = sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if _is_linear(mod)})
        raise ModelError(
            f"LoraConfig.target_modules {target!r} do not match the {model_type or 'model'}: {_first_line(exc)}",
            f"its linear modules are: {', '.join(linear[:20])}",
        ) from None
    return peft_model, LoraConfig().to_dict()  # type: ignore[no-untyped-call]


def _is_linear(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear) or type(module).__name__.startswith("Linear")


def training_arguments(loaded: LoadedConfig, output_dir: Path, has_eval: bool) -> TrainingArguments:
    section = loaded.config.TrainingArguments
    args: dict[str, Any] = section.passthrough()
    args.update(
        output_dir=str(output_dir),
        per_device_train_batch_size=section.per_device_train_batch_size,
        per_device_eval_batch_size=section.per_device_eval_batch_size or section.per_device_train_batch_size,
        gradient_accumulation_steps=section.gradient_accumulation_steps,
        num_train_epochs=section.num_train_epochs,
        max_steps=section.max_steps,
        learning_rate=section.learning_rate,
        logging_steps=section.logging_steps,
        save_strategy=section.save_strategy,
        save_steps=section.save_steps,
        save_total_limit=section.save_total_limit,
        eval_strategy=section.eval_strategy if has_eval else "no",
        # transformers 5.23 renamed gradient_checkpointing; Kaito's configs use the old name.
        activation_checkpointing=section.gradient_checkpointing,
        seed=section.seed,
        # Batches of similar length waste less compute on padding; only matters above batch size 1.
        train_sampling_strategy=section.train_sampling_strategy
        or ("group_by_length" if section.per_device_train_batch_size > 1 else "random"),
        include_num_input_tokens_seen="non_padding",
        label_names=["labels"],
        remove_unused_columns=False,
        do_train=True,
        disable_tqdm=True,
        use_cpu=not has_cuda(),
    )
    args.setdefault("logging_first_step", True)
    args.setdefault("prediction_loss_only", True)  # eval needs the loss only; never gather eval logits
    args.setdefault("report_to", "none")
    if section.gradient_checkpointing and "gradient_checkpointing_kwargs" not in args:
        args.setdefault("activation_checkpointing_kwargs", {"use_reentrant": False})
    try:
        return TrainingArguments(**args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            [loaded.diagnostic(("training_config", "TrainingArguments"), f"rejected by transformers: {exc}")]
        ) from None


def train(
    *,
    model: PeftModel,
    args: TrainingArguments,
    train_examples: Sequence[Example],
    eval_examples: Sequence[Example],
    pad_id: int,
    pad_to_multiple_of: int | None,
    checkpoint_minutes: float,
    log: Callable[[str], None],
) -> TrainResult:
    progress = JsonProgressCallback()
    trainer = KaitoTrainer(
        model=model,
        args=args,
        train_dataset=ExampleDataset(train_examples),
        eval_dataset=ExampleDataset(eval_examples) if eval_examples else None,
        data_collator=PadCollator(pad_id, pad_to_multiple_of),
        callbacks=[progress, TimedCheckpointCallback(checkpoint_minutes)],
    )
    trainer.remove_callback(PrinterCallback)  # our JSON lines replace its dict prints
    output_dir = Path(args.output_dir or ".")
    resume = latest_complete(output_dir, log)
    resumed_from = None
    if resume is not None:
        step, path = resume
        resumed_from = path.name
        emit("resume", checkpoint=str(path), global_step=step)
        log(f"resuming from {path.name} at global_step {step}")
    watch = MemoryWatch()
    result = trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)
    memory = watch.report()
    session_tokens, session_seconds = progress.session(trainer.state)
    eval_loss = None
    if eval_examples:
        eval_loss = float(trainer.evaluate()["eval_loss"])  # logged as an `eval` line by the callback
    train_loss = float(result.training_loss) if result.training_loss is not None else None
    return TrainResult(
        global_step=int(trainer.state.global_step),
        epoch=float(trainer.state.epoch or 0),
        train_loss=train_loss,
        eval_loss=eval_loss,
        session_tokens=session_tokens,
        session_seconds=session_seconds,
        resumed_from=resumed_from,
        memory=memory,
    )


def limit_host_heap() -> int | None:
    """On CPU-only glibc hosts, pin malloc's mmap threshold when asked to (see above); returns it."""
    value = int(os.environ.get("KAITO_TUNE_MMAP_THRESHOLD") or 0)
    if value <= 0 or has_cuda() or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return None  # turned off, GPU (activations are not in the heap), or set for glibc directly
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc (musl, macOS): nothing to tune
    return value if libc.mallopt(_M_MMAP_THRESHOLD, value) == 1 else None


def count_quantized_linear(model: torch.nn.Module) -> int:
    """How many linear layers bitsandbytes quantized (Linear4bit / Linear8bitLt): evidence QLoRA is real."""
    return sum(1 for module in model.modules() if type(module).__name__ in {"Linear4bit", "Linear8bitLt"})


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return int(trainable), int(total)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:400] if text else type(exc).__name__


def _hint(spec: ModelSpec) -> str:
    if spec.local_files_only or Path(spec.name_or_path).is_absolute():
        return "check --model / ModelConfig.pretrained_model_name_or_path points at a model directory"
    return "check the model id, --revision, HF_TOKEN for gated models, and network access to the hub"
