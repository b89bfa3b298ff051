"""Typed models of Kaito's tuning ConfigMap (`training_config.yaml`), read unchanged.

Shape (KAITO.md §6.4, §7.3; Kaito's `cli.py`):

    training_config:
      ModelConfig:        {pretrained_model_name_or_path, torch_dtype, local_files_only, device_map, ...}
      QuantizationConfig: {load_in_4bit, load_in_8bit, bnb_4bit_quant_type, ...}   (BitsAndBytesConfig)
      LoraConfig:         {r, lora_alpha, lora_dropout, target_modules, ...}        (peft LoraConfig)
      TrainingArguments:  {output_dir, per_device_train_batch_size, ...}           (+ TRL SFTConfig keys)
      DatasetConfig:      {shuffle_dataset, shuffle_seed, train_test_split, messages_column, ...}
      DataCollator:       {mlm, pad_to_multiple_of, ...}

Every section forbids unknown keys. `TrainingArguments` and `LoraConfig` also accept any field of the
installed transformers `TrainingArguments` / peft `LoraConfig` (the name lists below; a test checks they
match the pinned libraries), passed through untouched; the fields kaito-tune itself reads are typed.

Defaults that differ from the libraries', and why:
- QuantizationConfig: `nf4` + double quantisation (the issue's QLoRA definition and Kaito's own qlora
  template); Kaito's dataclass would default to fp4 without double quant when a user sets only
  `load_in_4bit`.
- TrainingArguments: TRL SFTConfig's defaults where Kaito's job relied on them (learning_rate 2e-5,
  logging_steps 10, max_length 1024, gradient_checkpointing on); loss on completion/assistant tokens
  only; per_device_train_batch_size 2 when a ConfigMap leaves it out (Kaito's templates set 1, which
  is honoured; BENCHMARKS.md, tuning). Checkpointing is the knob that
  buys speed with memory: `gradient_checkpointing: false` keeps every layer's activations (fine for short
  rows on small models, an OOM risk for long rows on many-layer models on a GPU).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

STRICT = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())
PASSTHROUGH = ConfigDict(frozen=True, extra="allow", protected_namespaces=())

SECTIONS = (
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DatasetConfig",
    "DataCollator",
)
DTYPES = frozenset({"auto", "float32", "float", "float16", "half", "bfloat16", "float64", "double"})


class Method(StrEnum):
    LORA = "lora"
    QLORA = "qlora"


class ModelSection(BaseModel):
    """Kaito's `ModelConfig` dataclass (`cli.py`), field for field."""

    model_config = STRICT

    pretrained_model_name_or_path: str = "/workspace/tfs/weights"
    state_dict: None = None  # declared by Kaito; a YAML file cannot carry tensors
    cache_dir: str | None = None
    from_tf: Literal[False] = False
    force_download: bool = False
    resume_download: bool = False  # accepted for compatibility; downloads always resume now
    proxies: str | None = None
    output_loading_info: bool = False
    local_files_only: bool = False
    revision: str = "main"
    trust_remote_code: bool = False
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    torch_dtype: str | None = None
    device_map: str | None = "auto"
    chat_template: str | None = None

    @field_validator("torch_dtype")
    @classmethod
    def _dtype(cls, value: str | None) -> str | None:
        if value is not None and value not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; use one of {', '.join(sorted(DTYPES))}")
        return value


class QuantizationSection(BaseModel):
    """Kaito's `QuantizationConfig` (a transformers BitsAndBytesConfig)."""

    model_config = STRICT

    quant_method: Literal["bitsandbytes"] = "bitsandbytes"
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    llm_int8_threshold: float = 6.0
    llm_int8_skip_modules: list[str] | None = None
    llm_int8_enable_fp32_cpu_offload: bool = False
    llm_int8_has_fp16_weight: bool = False
    bnb_4bit_compute_dtype: str | None = None  # None: the model's dtype, else float32
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_use_double_quant: bool = True
    bnb_4bit_quant_storage: str | None = None

    @field_validator("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage")
    @classmethod
    def _dtype(cls, value: str | None) -> str | None:
        if value is not None and value not in DTYPES - {"auto"} | {"uint8"}:
            raise ValueError(f"unknown dtype {value!r}")
        return value


class LoraSection(BaseModel):
    """peft's `LoraConfig` (Kaito's `ExtLoraConfig`); other peft fields pass through."""

    model_config = PASSTHROUGH

    r: int = Field(8, ge=1, le=4096)
    lora_alpha: int = Field(8, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str | None = None
    bias: Literal["none", "all", "lora_only"] = "none"
    task_type: Literal["CAUSAL_LM"] | None = None
    init_lora_weights: bool | str = True


class TrainingSection(BaseModel):
    """transformers `TrainingArguments` plus the TRL `SFTConfig` keys Kaito's job accepted."""

    model_config = PASSTHROUGH

    output_dir: str | None = None
    per_device_train_batch_size: int = Field(2, ge=1, le=65536)
    per_device_eval_batch_size: int | None = Field(None, ge=1, le=65536)
    gradient_accumulation_steps: int = Field(1, ge=1)
    num_train_epochs: float = Field(3.0, gt=0)
    max_steps: int = Field(-1, ge=-1)
    learning_rate: float = Field(2e-5, gt=0)
    logging_steps: float = Field(10, gt=0)
    save_strategy: Literal["no", "steps", "epoch", "best"] = "steps"
    save_steps: float = Field(500, gt=0)
    save_total_limit: int | None = Field(2, ge=1)
    eval_strategy: Literal["no", "steps", "epoch"] = "no"
    gradient_checkpointing: bool = True
    seed: int = 42
    train_sampling_strategy: Literal["random", "sequential", "group_by_length", "batch_rebalance"] | None = (
        None
    )
    resume_from_checkpoint: None = Field(None, description="resume is automatic: kaito-tune picks the latest")
    push_to_hub: Literal[False] = False
    # TRL SFTConfig keys (Kaito ran SFTTrainer); max_seq_length is TRL's old name for max_length.
    max_length: int | None = Field(None, ge=8)
    max_seq_length: int | None = Field(None, ge=8)
    packing: Literal[False] = False
    dataset_text_field: str | None = None
    completion_only_loss: bool | None = None
    assistant_only_loss: bool | None = None

    @property
    def sequence_limit(self) -> int | None:
        return self.max_length or self.max_seq_length

    def passthrough(self) -> dict[str, Any]:
        """The keys kaito-tune does not interpret, for `transformers.TrainingArguments(**...)`."""
        return dict(self.model_extra or {})


class DatasetSection(BaseModel):
    """Kaito's `DatasetConfig` (`cli.py`). Kaito declares the column fields and ignores them; we use them."""

    model_config = STRICT

    dataset_path: str | None = None
    dataset_extension: str | None = None
    shuffle_dataset: bool = True
    shuffle_seed: int = 42
    context_column: str | None = None
    response_column: str = "text"
    messages_column: str | None = None
    train_test_split: float = Field(0.8, gt=0, le=1)


class CollatorSection(BaseModel):
    """Kaito's `DataCollator` (DataCollatorForLanguageModeling). Causal LM: `mlm` is accepted and ignored,
    as Kaito itself downgrades it when the tokenizer has no mask token."""

    model_config = STRICT

    mlm: bool = False
    mlm_probability: float = Field(0.15, ge=0, le=1)
    mask_replace_prob: float = Field(0.8, ge=0, le=1)
    random_replace_prob: float = Field(0.1, ge=0, le=1)
    pad_to_multiple_of: int | None = Field(None, ge=1, le=4096)
    tf_experimental_compile: bool = False
    return_tensors: Literal["pt"] = "pt"
    seed: int | None = None
    tokenizer: str | None = None


class TrainingConfig(BaseModel):
    """The `training_config:` mapping."""

    model_config = STRICT

    ModelConfig: ModelSection = Field(default_factory=ModelSection)
    QuantizationConfig: QuantizationSection | None = None
    LoraConfig: LoraSection = Field(default_factory=LoraSection)
    TrainingArguments: TrainingSection = Field(default_factory=TrainingSection)
    DatasetConfig: DatasetSection = Field(default_factory=DatasetSection)
    DataCollator: CollatorSection = Field(default_factory=CollatorSection)


class ConfigFile(BaseModel):
    model_config = STRICT

    training_config: TrainingConfig


# Field names of transformers 5.23.0 `TrainingArguments` (init fields). tests/runtime/tune checks this
# against the installed library, so a version bump cannot silently change which keys are accepted.
TRAINING_ARGUMENT_NAMES = frozenset(
    [
        "accelerator_config",
        "activation_checkpointing",
        "activation_checkpointing_kwargs",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "auto_find_batch_size",
        "average_tokens_across_devices",
        "batch_eval_metrics",
        "bf16",
        "bf16_full_eval",
        "data_seed",
        "dataloader_drop_last",
        "dataloader_in_order",
        "dataloader_multiprocessing_context",
        "dataloader_num_workers",
        "dataloader_persistent_workers",
        "dataloader_pin_memory",
        "dataloader_prefetch_factor",
        "ddp_backend",
        "ddp_broadcast_buffers",
        "ddp_bucket_cap_mb",
        "ddp_find_unused_parameters",
        "ddp_static_graph",
        "ddp_timeout",
        "debug",
        "deepspeed",
        "disable_tqdm",
        "do_eval",
        "do_predict",
        "do_train",
        "enable_jit_checkpoint",
        "eval_accumulation_steps",
        "eval_delay",
        "eval_do_concat_batches",
        "eval_on_start",
        "eval_steps",
        "eval_strategy",
        "eval_use_gather_object",
        "fp16",
        "fp16_full_eval",
        "fsdp",
        "fsdp_config",
        "full_determinism",
        "gradient_accumulation_steps",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "greater_is_better",
        "hub_always_push",
        "hub_model_id",
        "hub_private_repo",
        "hub_revision",
        "hub_strategy",
        "hub_token",
        "ignore_data_skip",
        "include_for_metrics",
        "include_num_input_tokens_seen",
        "label_names",
        "label_smoothing_factor",
        "learning_rate",
        "length_column_name",
        "liger_kernel_config",
        "load_best_model_at_end",
        "local_rank",
        "log_level",
        "log_level_replica",
        "log_on_each_node",
        "logging_first_step",
        "logging_nan_inf_filter",
        "logging_steps",
        "logging_strategy",
        "lr_scheduler_kwargs",
        "lr_scheduler_type",
        "max_grad_norm",
        "max_steps",
        "metric_for_best_model",
        "neftune_noise_alpha",
        "num_train_epochs",
        "optim",
        "optim_args",
        "optim_target_modules",
        "output_dir",
        "parallelism_config",
        "per_device_eval_batch_size",
        "per_device_train_batch_size",
        "prediction_loss_only",
        "project",
        "push_to_hub",
        "remove_unused_columns",
        "report_to",
        "restore_callback_states_from_checkpoint",
        "resume_from_checkpoint",
        "run_name",
        "save_on_each_node",
        "save_only_model",
        "save_steps",
        "save_strategy",
        "save_total_limit",
        "seed",
        "skip_memory_metrics",
        "tf32",
        "torch_compile",
        "torch_compile_backend",
        "torch_compile_mode",
        "torch_empty_cache_steps",
        "trackio_bucket_id",
        "trackio_space_id",
        "trackio_static_space_id",
        "train_sampling_strategy",
        "use_cache",
        "use_cpu",
        "use_liger_kernel",
        "warmup_steps",
        "weight_decay",
    ]
)

# Keys kaito-tune sets itself; a config may not pass them through.
RESERVED_TRAINING_KEYS = frozenset(
    {
        "do_train",
        "do_eval",
        "do_predict",
        "label_names",
        "include_num_input_tokens_seen",
        "remove_unused_columns",
    }
)

# Field names of peft 0.21.2 `LoraConfig` (init fields); checked by a test like the list above.
LORA_NAMES = frozenset(
    [
        "alora_invocation_tokens",
        "alpha_pattern",
        "arrow_config",
        "auto_mapping",
        "base_model_name_or_path",
        "bias",
        "corda_config",
        "ensure_weight_tying",
        "eva_config",
        "exclude_modules",
        "fan_in_fan_out",
        "inference_mode",
        "init_lora_weights",
        "kasa_config",
        "layer_replication",
        "layers_pattern",
        "layers_to_transform",
        "loftq_config",
        "lora_alpha",
        "lora_bias",
        "lora_dropout",
        "lora_ga_config",
        "megatron_config",
        "megatron_core",
        "modules_to_save",
        "monteclora_config",
        "peft_type",
        "peft_version",
        "qalora_group_size",
        "r",
        "rank_pattern",
        "revision",
        "runtime_config",
        "target_modules",
        "target_parameters",
        "task_type",
        "trainable_token_indices",
        "use_bdlora",
        "use_dora",
        "use_qalora",
        "use_rslora",
        "velora_config",
    ]
)


def allowed_keys(section: str) -> frozenset[str]:
    """Every key a section accepts: typed fields, plus passed-through library fields."""
    models: dict[str, type[BaseModel]] = {
        "ModelConfig": ModelSection,
        "QuantizationConfig": QuantizationSection,
        "LoraConfig": LoraSection,
        "TrainingArguments": TrainingSection,
        "DatasetConfig": DatasetSection,
        "DataCollator": CollatorSection,
    }
    typed = frozenset(models[section].model_fields)
    if section == "TrainingArguments":
        return typed | (TRAINING_ARGUMENT_NAMES - RESERVED_TRAINING_KEYS)
    if section == "LoraConfig":
        return typed | LORA_NAMES
    return typed
