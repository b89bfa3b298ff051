"""Load the base model, tokenizer and LoRA adapters (the only module that imports torch at load time).

`load_model(settings)` is the default `model_loader` given to `create_app`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cpu import CpuBudget
from .settings import AdapterSpec, Settings

if TYPE_CHECKING:
    import torch

log = logging.getLogger("kaito_runtime.serve")

COMBINED_ADAPTER = "combined_adapter"  # Kaito's name for the weighted sum of all adapters
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in mixed batches

# Used when neither the tokenizer, the config file nor --chat-template gives one.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.tiktoken", "*.txt", "tokenizer*"]


class ModelLoadError(RuntimeError):
    """Loading failed for a reason the operator can fix; the message says which."""


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel or peft PeftModel
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    max_model_len: int
    eos_token_ids: frozenset[int]
    pad_token_id: int
    chat_template: str
    adapters: tuple[AdapterSpec, ...] = ()
    # OpenAI model name -> peft adapter name (None means the default/combined model)
    adapter_routes: dict[str, str] = field(default_factory=dict)
    load_seconds: float = 0.0
    chat_template_is_fallback: bool = False
    cpu: CpuBudget | None = None  # CPU-only server processes: what the thread governor may use


def resolve_dtype(requested: str) -> torch.dtype:
    """auto: bf16 where the GPU supports it (capability >= 8), fp16 on older GPUs (V100), fp32 on CPU."""
    import torch

    if requested == "auto":
        if torch.cuda.is_available():
            major, _ = torch.cuda.get_device_capability(0)
            return torch.bfloat16 if major >= 8 else torch.float16
        return torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[requested]


def configure_cpu_threads() -> CpuBudget | None:
    """On CPU-only hosts: the CPU budget, with torch set to its starting thread count (cpu.py).

    Starts at all usable cores but one (the safe side on a busy host: OpenMP workers sharing a
    core with another process stall each other); the engine's ThreadGovernor then follows the
    other load on the machine. None (nothing changed) on GPU hosts or with an explicit
    OMP_NUM_THREADS.
    """
    import os

    import torch

    if torch.cuda.is_available() or os.environ.get("OMP_NUM_THREADS"):
        return None
    budget = CpuBudget.detect(max_threads=torch.get_num_threads())
    torch.set_num_threads(budget.initial_threads())
    return budget


def resolve_model_dir(
    model: str, revision: str | None, cache_dir: Path | None, trust_remote_code: bool
) -> Path:
    """A local directory as is; otherwise a hub repo id, downloaded at the pinned revision."""
    path = Path(model)
    if path.is_dir():
        if revision:
            log.info("--model %s is a local directory; --revision %s is ignored", model, revision)
        return path
    if path.is_absolute() or model.startswith((".", "~")):
        raise ModelLoadError(f"--model {model}: directory not found")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    if not revision:
        log.warning(
            "--model %s has no --revision: downloading the moving 'main' branch (pin a commit SHA)", model
        )
    patterns = [*_HUB_PATTERNS, "*.py"] if trust_remote_code else list(_HUB_PATTERNS)
    try:
        started = time.perf_counter()
        local = Path(
            snapshot_download(
                repo_id=model,
                revision=revision,
                cache_dir=str(cache_dir) if cache_dir else None,
                allow_patterns=patterns,
                ignore_patterns=["original/*", "metal/*"],
            )
        )
        if not any(local.glob("*.safetensors")):
            # Older repos ship only PyTorch pickles.
            local = Path(
                snapshot_download(
                    repo_id=model,
                    revision=revision,
                    cache_dir=str(cache_dir) if cache_dir else None,
                    allow_patterns=[*patterns, "*.bin"],
                    ignore_patterns=["original/*", "metal/*"],
                )
            )
        log.info(
            "downloaded %s@%s to %s in %.1fs", model, revision or "main", local, time.perf_counter() - started
        )
        return local
    except RepositoryNotFoundError:
        raise ModelLoadError(
            f"--model {model}: repository not found on the hub, "
            "or it is gated/private and HF_TOKEN is missing or lacks access"
        ) from None
    except LocalEntryNotFoundError as exc:
        raise ModelLoadError(
            f"--model {model}@{revision or 'main'}: not in the cache, "
            f"and the hub is unreachable or HF_HUB_OFFLINE is set ({exc})"
        ) from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise ModelLoadError(f"--model {model}@{revision or 'main'}: download failed: {exc}") from None


def _quantization_config(kind: str | None, dtype: torch.dtype) -> Any:
    if kind is None:
        return None
    from transformers import BitsAndBytesConfig as _BitsAndBytesConfig

    BitsAndBytesConfig: Any = _BitsAndBytesConfig  # its __init__ is untyped
    if kind == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


def _max_model_len(config: Any, tokenizer: Any, requested: int | None) -> int:
    limit = None
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            limit = value
            break
    if requested is not None:
        if limit is not None and requested > limit:
            log.warning("max-model-len %d exceeds the model's max_position_embeddings %d", requested, limit)
        return requested
    if limit is not None:
        return limit
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 10_000_000:
        return tok_max
    return 2048


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def load_model(settings: Settings) -> LoadedModel:
    """Load weights, tokenizer and adapters as `settings` says. Raises ModelLoadError on operator errors."""
    started = time.perf_counter()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    model_dir = resolve_model_dir(
        settings.model, settings.revision, settings.cache_dir, settings.trust_remote_code
    )
    dtype = resolve_dtype(settings.dtype)
    cuda = torch.cuda.is_available()
    cpu = configure_cpu_threads() if settings.tune_cpu_threads else None
    if cpu is not None:
        log.info(
            "CPU only: %d usable core(s)%s; starting with %d torch thread(s)%s",
            cpu.usable,
            f" (cgroup limit {cpu.limit:g} CPUs)" if cpu.limit is not None else "",
            cpu.initial_threads(),
            ", following the other load on them" if cpu.governed else "",
        )
    if not cuda and dtype == torch.float16:
        log.warning("float16 on CPU is slow and may overflow; prefer --dtype float32 or bfloat16 on CPU")
    try:
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=settings.trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=settings.trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(
            f"--model {settings.model}: cannot load config/tokenizer from {model_dir}: {exc}"
        ) from None

    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": settings.trust_remote_code}
    quant = _quantization_config(settings.quantization, dtype)
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = "auto" if cuda else "cpu"
    elif cuda:
        kwargs["device_map"] = "auto"
    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, config=config, **kwargs)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        raise ModelLoadError(
            f"--model {settings.model}: cannot load weights from {model_dir}: {exc}"
        ) from None
    model.eval()

    if tokenizer.pad_token_id is None:
        # Padding is only ever masked out; any real id works, eos is the usual choice.
        if tokenizer.eos_token is None:
            raise ModelLoadError(f"--model {settings.model}: tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    chat_template, fallback = _chat_template(settings, tokenizer)
    adapter_routes: dict[str, str] = {}
    if settings.adapters:
        model = _attach_adapters(model, settings)
        adapter_routes = {spec.name: spec.name for spec in settings.adapters}

    device = model.get_input_embeddings().weight.device
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        max_model_len=_max_model_len(config, tokenizer, settings.limits.max_model_len),
        eos_token_ids=_eos_ids(model, tokenizer),
        pad_token_id=int(tokenizer.pad_token_id),
        chat_template=chat_template,
        adapters=settings.adapters,
        adapter_routes=adapter_routes,
        chat_template_is_fallback=fallback,
        cpu=cpu,
    )
    loaded.load_seconds = time.perf_counter() - started
    log.info(
        "loaded %s (%s, %s%s) on %s in %.1fs; max model len %d",
        settings.model,
        type(model).__name__,
        str(dtype).removeprefix("torch."),
        f", {settings.quantization}" if settings.quantization else "",
        device,
        loaded.load_seconds,
        loaded.max_model_len,
    )
    return loaded


def _chat_template(settings: Settings, tokenizer: Any) -> tuple[str, bool]:
    if settings.chat_template:
        return settings.chat_template, False
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and template.strip():
        return template, False
    log.warning(
        "the tokenizer has no chat template and none was configured (--chat-template or "
        "transformers.chat-template); using a generic 'role: content' template"
    )
    return FALLBACK_CHAT_TEMPLATE, True


def _attach_adapters(model: Any, settings: Settings) -> Any:
    """Load every adapter, then add Kaito's `combined_adapter` (weighted by strength) as the default.

    The individual adapters stay loaded so that each can be selected by name per request.
    """
    from peft import PeftModel

    specs = settings.adapters
    peft_model: Any = None
    for spec in specs:
        try:
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(
                    model, str(spec.path), adapter_name=spec.name, is_trainable=False
                )
            else:
                peft_model.load_adapter(str(spec.path), adapter_name=spec.name, is_trainable=False)
        except (
            Exception
        ) as exc:  # peft raises many types (KeyError, RuntimeError size mismatch, ValueError ...)
            raise ModelLoadError(
                f"adapter {spec.path}: cannot be applied to {settings.model}: {type(exc).__name__}: {exc}"
                + (f" (it was trained on {spec.base_model})" if spec.base_model else "")
            ) from None
        log.info(
            "Adapter added: %s (strength %.3g from %s, rank %d)",
            spec.name,
            spec.strength,
            spec.strength_source,
            spec.rank,
        )
    combination = settings.limits.combination_type
    if combination == "linear" and len({s.rank for s in specs}) > 1:
        raise ModelLoadError(
            "transformers.combination-type linear needs adapters of equal rank; "
            f"ranks are {', '.join(f'{s.name}={s.rank}' for s in specs)} (use cat or svd)"
        )
    try:
        peft_model.add_weighted_adapter(
            adapters=[s.name for s in specs],
            weights=[s.strength for s in specs],
            adapter_name=COMBINED_ADAPTER,
            combination_type=combination,
        )
    except Exception as exc:
        raise ModelLoadError(
            f"cannot combine adapters ({combination}): {type(exc).__name__}: {exc}"
        ) from None
    peft_model.set_adapter(COMBINED_ADAPTER)
    peft_model.eval()
    return peft_model
