"""A KV cache that grows in place: each decode step writes one column instead of copying the cache.

transformers' `DynamicLayer.update` is `torch.cat([cache, new], dim=-2)`: every decode step copies
every layer's whole cache, O(batch x length) per step. On the bench model at 16 rows that copy was a
third of the step (BENCHMARKS.md, `serve`). `GrowingLayer` keeps each layer's keys and values in a
buffer with spare columns and exposes `keys`/`values` as views of the filled part, so a step writes
only the new column; the buffer is reallocated (with headroom) only when it is full, which makes the
copy amortised O(1) per token. Semantics are DynamicLayer's (the engine's greedy output equals
`generate` token for token, tested), so everything that reads `layer.keys` keeps working.

The engine's row surgery (merging newly prefilled rows, retiring finished ones) rebinds `keys` and
`values` as it does on a DynamicLayer; the next update moves them into a buffer with fresh headroom.

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
    """DynamicLayer without the per-step copy: writes land in preallocated spare columns.

    `keys`/`values` stay plain attributes, as in DynamicLayer: whoever rebinds them (the engine's row
    surgery, `crop`, `batch_select_indices`, `reset`) needs nothing else. While they are still views at
    the start of this layer's buffers, the next update appends in place; otherwise it first moves them
    into a fresh buffer with headroom.
    """

    def __init__(self, max_len: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.max_len = max_len  # never allocate more columns than this (the model's context)
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        start = self.keys.shape[-2] if self.keys.dim() == key_states.dim() else 0  # [] before the first
        end = start + key_states.shape[-2]
        in_place = self._in_buffer(self.keys, self._k) and self._in_buffer(self.values, self._v)
        if not in_place or self._k is None or end > self._k.shape[-2]:
            self._reserve(key_states, value_states, start, end)
        assert self._k is not None and self._v is not None
        self._k[..., start:end, :].copy_(key_states)
        self._v[..., start:end, :].copy_(value_states)
        self.keys = self._k[..., :end, :]
        self.values = self._v[..., :end, :]
        return self.keys, self.values

    @staticmethod
    def _in_buffer(view: torch.Tensor, buffer: torch.Tensor | None) -> bool:
        """`view` is `buffer[..., :n, :]` (what update() leaves, or a crop of it)."""
        return (
            buffer is not None
            and view.dim() == buffer.dim()
            and view.data_ptr() == buffer.data_ptr()
            and view.stride() == buffer.stride()
            and view.shape[:-2] == buffer.shape[:-2]
        )

    def _reserve(self, key_states: torch.Tensor, value_states: torch.Tensor, start: int, end: int) -> None:
        columns = _capacity(end, self.max_len)
        k = key_states.new_empty((*key_states.shape[:-2], columns, key_states.shape[-1]))
        v = value_states.new_empty((*value_states.shape[:-2], columns, value_states.shape[-1]))
        if start:
            assert self.keys is not None and self.values is not None
            k[..., :start, :].copy_(self.keys)
            v[..., :start, :].copy_(self.values)
        self._k, self._v = k, v


class GrowingCache(DynamicCache):
    """A DynamicCache whose layers are GrowingLayers (created lazily, one per attention layer)."""

    def __init__(self, max_len: int | None = None) -> None:
        # Annotated as a class, but only ever called with no arguments: a partial binds max_len.
        layer = partial(GrowingLayer, max_len=max_len)
        Cache.__init__(self, layer_class_to_replicate=layer)  # type: ignore[arg-type]
