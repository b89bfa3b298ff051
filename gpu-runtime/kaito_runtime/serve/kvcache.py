"""A KV cache that grows in place: each decode step writes one column instead of copying the cache.

transformers' `DynamicLayer.update` is `torch.cat([cache, new], dim=-2)`: every decode step copies
every layer's whole cache, O(batch x length) per step. On the bench model at 16 rows that copy was a
third of the step (BENCHMARKS.md, `serve`). `GrowingLayer` keeps each layer's keys and values in a
buffer with spare columns and exposes `keys`/`values` as views of the filled part, so a step writes
only the new column; the buffer is reallocated (with headroom) only when it is full, which makes the
copy amortised O(1) per token. Semantics are DynamicLayer's (the engine's greedy output equals
`generate` token for token, tested), so everything that reads `layer.keys` keeps working.

The engine's row surgery (merging newly prefilled rows, retiring finished ones) goes through
`GrowingLayer.replace`, which stores the rebuilt tensors with fresh headroom.

Memory: the spare part is at most `max(MIN_SPARE, length // 2)` columns per layer, rounded up to
`ALIGN`; the KV budget in the server's memory model (max-batch-size x max-model-len) already bounds
what the filled part can reach, and the spare is capped by the same `max_len` when the engine knows it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

ALIGN = 64
MIN_SPARE = 64


def _capacity(needed: int, max_len: int | None) -> int:
    want = -(-(needed + max(MIN_SPARE, needed // 2)) // ALIGN) * ALIGN
    return max(needed, min(want, max_len)) if max_len else want


# transformers' cache_utils is untyped: the two calls into it below are the only unchecked ones.
class GrowingLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    """DynamicLayer without the per-step copy: writes land in preallocated spare columns."""

    def __init__(self, max_len: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.max_len = max_len  # never allocate more columns than this (the model's context)
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._len = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._k = self._v = None
        self._len = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        end = self._len + n
        if self._k is None or self._v is None or end > self._k.shape[-2] or not self._fits(key_states):
            self._reserve(key_states, value_states, end)
        assert self._k is not None and self._v is not None
        self._k[..., self._len : end, :].copy_(key_states)
        self._v[..., self._len : end, :].copy_(value_states)
        self._len = end
        self.keys = self._k[..., :end, :]
        self.values = self._v[..., :end, :]
        return self.keys, self.values

    def replace(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Store rebuilt tensors (rows merged or removed, columns trimmed) with fresh headroom."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        self._k = self._v = None
        self._len = 0
        length = keys.shape[-2]
        self._reserve(keys, values, length, copy=False)
        assert self._k is not None and self._v is not None
        self._k[..., :length, :].copy_(keys)
        self._v[..., :length, :].copy_(values)
        self._len = length
        self.keys = self._k[..., :length, :]
        self.values = self._v[..., :length, :]

    def _fits(self, states: torch.Tensor) -> bool:
        assert self._k is not None
        return self._k.shape[:-2] == states.shape[:-2] and self._k.shape[-1] == states.shape[-1]

    def _reserve(
        self, key_states: torch.Tensor, value_states: torch.Tensor, needed: int, copy: bool = True
    ) -> None:
        columns = _capacity(needed, self.max_len)
        k = key_states.new_empty((*key_states.shape[:-2], columns, key_states.shape[-1]))
        v = value_states.new_empty((*value_states.shape[:-2], columns, value_states.shape[-1]))
        if copy and self._k is not None and self._v is not None and self._len:
            if self._k.shape[:-2] != key_states.shape[:-2]:
                raise ValueError("GrowingLayer: the batch changed without replace()")
            k[..., : self._len, :].copy_(self._k[..., : self._len, :])
            v[..., : self._len, :].copy_(self._v[..., : self._len, :])
        self._k, self._v = k, v

    # DynamicLayer's other mutators rebind keys/values; keep the buffer in step with them.
    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if self.is_initialized and self.keys is not None and self.values is not None:
            self.replace(self.keys, self.values)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        if self.is_initialized and self.keys is not None and self.values is not None and self.keys.numel():
            self.replace(self.keys, self.values)

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        if self.is_initialized and self.keys is not None and self.values is not None and self.keys.numel():
            self.replace(self.keys, self.values)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        if self.is_initialized and self.keys is not None and self.values is not None and self.keys.numel():
            self.replace(self.keys, self.values)

    def reset(self) -> None:
        super().reset()
        self._k = self._v = None
        self._len = 0


class GrowingCache(DynamicCache):
    """A DynamicCache whose layers are GrowingLayers (created lazily, one per attention layer)."""

    def __init__(self, max_len: int | None = None) -> None:
        # Annotated as a class, but only ever called with no arguments: a partial binds max_len.
        layer = partial(GrowingLayer, max_len=max_len)
        Cache.__init__(self, layer_class_to_replicate=layer)  # type: ignore[arg-type]
