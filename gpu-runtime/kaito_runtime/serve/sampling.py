"""Per-row token selection for a whole batch in a few vectorised torch ops.

Each row has its own temperature/top-k/top-p and its own seeded RNG. Sampling uses the
inverse CDF with one uniform draw per row from that row's `random.Random`, so a row's
randomness does not depend on which other requests share its batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: disabled
    do_sample: bool = True
    repetition_penalty: float = 1.0
    min_new_tokens: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = frozenset()  # extra end-of-sequence ids for this request
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # seed None: fresh OS entropy

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0.0


def select_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams],
    history: list[list[int]],
    generated_counts: list[int],
    eos_ids: frozenset[int],
) -> list[int]:
    """Pick the next token for each row of `logits` ([B, V])."""
    import torch

    logits = logits.float()
    vocab = logits.shape[-1]
    # Rare per-row adjustments first (python loop only over rows that need them).
    for i, p in enumerate(params):
        if p.repetition_penalty != 1.0 and history[i]:
            ids = torch.tensor(sorted(set(history[i])), device=logits.device)
            seen = logits[i, ids]
            logits[i, ids] = torch.where(seen > 0, seen / p.repetition_penalty, seen * p.repetition_penalty)
        if generated_counts[i] < p.min_new_tokens and (eos_ids or p.stop_token_ids):
            logits[i, [t for t in sorted(eos_ids | p.stop_token_ids) if t < vocab]] = float("-inf")

    greedy_tokens = logits.argmax(dim=-1)
    sample_rows = [i for i, p in enumerate(params) if not p.greedy]
    if not sample_rows:
        return [int(t) for t in greedy_tokens.tolist()]

    rows = torch.tensor(sample_rows, device=logits.device)
    sub = logits.index_select(0, rows)
    sp = [params[i] for i in sample_rows]
    temps = torch.tensor([p.temperature for p in sp], device=logits.device, dtype=sub.dtype)
    sub = sub / temps.unsqueeze(-1)
    top_ks = [p.top_k if 0 < p.top_k < vocab else vocab for p in sp]
    needs_filter = any(k < vocab for k in top_ks) or any(p.top_p < 1.0 for p in sp)
    if needs_filter:
        # topk is much cheaper than a full sort when every row has a small k (Kaito's /chat default k=10).
        k_max = max(top_ks)
        values, indices = (
            torch.topk(sub, k_max, dim=-1) if k_max < vocab else torch.sort(sub, dim=-1, descending=True)
        )
        probs = torch.softmax(values, dim=-1)
        ranks = torch.arange(values.shape[-1], device=logits.device).unsqueeze(0)
        keep = ranks < torch.tensor(top_ks, device=logits.device).unsqueeze(-1)
        top_ps = torch.tensor([p.top_p for p in sp], device=logits.device, dtype=probs.dtype).unsqueeze(-1)
        # Keep tokens until the mass before them reaches top_p; the first token is always kept.
        keep &= (torch.cumsum(probs, dim=-1) - probs) < top_ps
        keep[:, 0] = True
        probs = probs * keep
    else:
        probs = torch.softmax(sub, dim=-1)
        indices = None
    cdf = torch.cumsum(probs, dim=-1)
    uniforms = torch.tensor([p.rng.random() for p in sp], device=logits.device, dtype=cdf.dtype)
    picks = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1)).clamp_(max=cdf.shape[-1] - 1)
    if indices is not None:
        picks = indices.gather(-1, picks)
    out = [int(t) for t in greedy_tokens.tolist()]
    for row, tok in zip(sample_rows, picks.squeeze(-1).tolist(), strict=True):
        out[row] = int(tok)
    return out
