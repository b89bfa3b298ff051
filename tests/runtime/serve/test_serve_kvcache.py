"""The in-place KV cache: DynamicLayer's values, without copying the cache on every decode step."""

from __future__ import annotations

import torch
from kaito_runtime.serve.kvcache import ALIGN, GrowingCache, GrowingLayer, _capacity
from transformers.cache_utils import DynamicLayer


def _states(batch: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, n, 8, generator=g), torch.randn(batch, 2, n, 8, generator=g)


def test_growing_layer_returns_what_dynamic_layer_returns() -> None:
    grow, dyn = GrowingLayer(), DynamicLayer()
    lengths = [17, *([1] * 200), 5, 1, 1]  # a prefill, 200 decode steps (several reallocations), a chunk
    for i, n in enumerate(lengths):
        k, v = _states(3, n, i)
        gk, gv = grow.update(k, v)
        dk, dv = dyn.update(k, v)
        assert torch.equal(gk, dk) and torch.equal(gv, dv)
        assert grow.get_seq_length() == dyn.get_seq_length() == gk.shape[-2]


def test_a_decode_step_writes_in_place_until_the_buffer_is_full() -> None:
    layer = GrowingLayer()
    layer.update(*_states(2, 10, 0))
    storage = layer.keys.untyped_storage().data_ptr()
    capacity = _capacity(10, None)
    for step in range(capacity - 10):
        layer.update(*_states(2, 1, step + 1))
        assert layer.keys.untyped_storage().data_ptr() == storage, f"reallocated at step {step}"
    layer.update(*_states(2, 1, 999))  # one past capacity: now it must grow
    assert layer.keys.untyped_storage().data_ptr() != storage
    assert layer.get_seq_length() == capacity + 1


def test_capacity_has_headroom_and_respects_the_context_limit() -> None:
    assert _capacity(10, None) % ALIGN == 0 and _capacity(10, None) >= 10 + 64
    assert _capacity(1000, None) >= 1500
    assert _capacity(100, 128) == 128  # never past the model's context
    assert _capacity(200, 128) == 200  # but always what is needed


def test_rebound_rows_are_kept_and_later_updates_append_to_them() -> None:
    grow, dyn = GrowingLayer(), DynamicLayer()
    for i, n in enumerate([9, 1, 1]):
        k, v = _states(4, n, i)
        grow.update(k, v)
        dyn.update(k, v)
    index = torch.tensor([0, 2])
    grow.keys = grow.keys.index_select(0, index)[
        :, :, 2:
    ]  # the engine's row surgery rebinds, as on DynamicLayer
    grow.values = grow.values.index_select(0, index)[:, :, 2:]
    dyn.keys = dyn.keys.index_select(0, index)[:, :, 2:]
    dyn.values = dyn.values.index_select(0, index)[:, :, 2:]
    k, v = _states(2, 1, 7)
    gk, gv = grow.update(k, v)
    dk, dv = dyn.update(k, v)
    assert torch.equal(gk, dk) and torch.equal(gv, dv)


def test_growing_cache_makes_one_growing_layer_per_model_layer() -> None:
    cache = GrowingCache(max_len=256)
    for layer_idx in range(3):
        cache.update(*_states(1, 4, layer_idx), layer_idx)
    assert len(cache.layers) == 3
    assert all(isinstance(layer, GrowingLayer) and layer.max_len == 256 for layer in cache.layers)
    assert cache.get_seq_length() == 4
