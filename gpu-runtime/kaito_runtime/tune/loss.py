"""Trainer with a memory-bounded causal-LM loss: logits only where a label is, a chunk at a time.

The stock path materialises `[batch, seq, vocab]` logits (upcast to fp32 for the loss) and keeps them for
the backward pass: at batch 8 x 2048 tokens x phi-3's 32k vocabulary that is 2 GB per copy, more than
the LoRA weights, activations and optimizer together, and the reason a larger batch used to cost more
memory than Kaito's batch size 1. Here the decoder's hidden states are gathered at the positions that
carry a label (prompt tokens and padding are dropped before the vocabulary projection) and the
projection + cross-entropy run in chunks of ~32 MiB of logits under activation checkpointing, so at most one
chunk's logits exist at a time, forward or backward. The loss is the same sum over labelled tokens,
normalised like Trainer's (by `num_items_in_batch` across gradient accumulation when given).

Only for architectures whose head is exactly `lm_head(hidden)`; anything else (logit soft-capping,
scaling) takes Trainer's own path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers import Trainer

from kaito_runtime.tune.tokenize import IGNORE

# fp32 logits per chunk: 2**23 elements = 32 MiB (256 rows at phi-3's 32k vocabulary, 2048 at 4k).
CHUNK_ELEMENTS = 2**23
PLAIN_HEAD_MODELS = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "phi3", "phi"})


def _base_model(model: torch.nn.Module) -> Any:
    inner: Any = model
    while hasattr(inner, "module") and isinstance(inner.module, torch.nn.Module):  # DDP / accelerate wrappers
        inner = inner.module
    return inner.get_base_model() if hasattr(inner, "get_base_model") else inner


def supports_chunked_loss(model: torch.nn.Module) -> bool:
    base = _base_model(model)
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    return (
        model_type in PLAIN_HEAD_MODELS
        and hasattr(base, "get_decoder")
        and base.get_output_embeddings() is not None
        and getattr(base.config, "final_logit_softcapping", None) is None
    )


def chunked_causal_lm_loss(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token cross-entropies over labelled positions, number of labelled positions)."""
    base = _base_model(model)
    mask = inputs.get("attention_mask")
    if mask is not None and _right_padded(mask):
        # With padding only at the end, the causal mask alone is exact for every real token (a real token
        # never sees a later pad) and the pads' own outputs carry no label. Dropping the padding mask lets
        # SDPA take its fused causal kernel instead of materialising [batch, heads, seq, seq] scores.
        mask = None
    outputs = base.get_decoder()(input_ids=inputs["input_ids"], attention_mask=mask, use_cache=False)
    hidden = outputs[0]
    targets = inputs["labels"][:, 1:]
    keep = targets.ne(IGNORE)
    selected = hidden[:, :-1][keep]  # [labelled tokens, hidden]
    wanted = targets[keep]
    head = base.get_output_embeddings()
    if chunk is None:
        chunk = min(max(CHUNK_ELEMENTS // int(head.weight.shape[0]), 64), 8192)

    def piece(states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head(states).float(), labels, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, selected.shape[0], chunk):
        states, labels = selected[start : start + chunk], wanted[start : start + chunk]
        if torch.is_grad_enabled():
            total = total + checkpoint(piece, states, labels, use_reentrant=False)
        else:
            total = total + piece(states, labels)
    if selected.shape[0] == 0:
        total = total + hidden.sum() * 0.0  # keep the graph connected for a batch without labels
    return total, keep.sum()


def _right_padded(mask: torch.Tensor) -> bool:
    """True when every row is ones then zeros (kaito-tune's collator pads on the right)."""
    return bool(torch.equal(mask.cumprod(dim=1), mask))


class KaitoTrainer(Trainer):
    """`transformers.Trainer` whose loss never materialises full-vocabulary logits for the whole batch."""

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        if (return_outputs and not self.args.prediction_loss_only) or not supports_chunked_loss(model):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        total, count = chunked_causal_lm_loss(model, inputs)
        denominator = num_items_in_batch if num_items_in_batch is not None else count.clamp(min=1)
        loss = total / denominator
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # num_items_in_batch counts every process's tokens
        return (loss, {}) if return_outputs else loss
