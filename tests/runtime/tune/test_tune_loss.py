"""The chunked loss equals transformers' own causal-LM loss, in value and in gradients, on both architectures."""

from __future__ import annotations

from pathlib import Path

import pytest
from kaito_runtime.tune.tokenize import IGNORE


@pytest.mark.parametrize("arch", ["llama", "phi3"])
@pytest.mark.parametrize("chunk", [3, 1024], ids=["many-chunks", "one-chunk"])
def test_chunked_loss_matches_the_stock_loss(
    arch: str, chunk: int, tiny_model_dir: Path, tiny_phi3_dir: Path
) -> None:
    import torch
    from kaito_runtime.tune.collate import PadCollator
    from kaito_runtime.tune.loss import chunked_causal_lm_loss, supports_chunked_loss
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model_dir = tiny_model_dir if arch == "llama" else tiny_phi3_dir
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights="gaussian")
    )
    assert supports_chunked_loss(model)
    # Rows of different lengths, prompts masked, right padding: what kaito-tune's collator produces.
    rows = [
        {"input_ids": [5, 9, 14, 22, 31, 40, 51], "labels": [IGNORE, IGNORE, IGNORE, 22, 31, 40, 51]},
        {"input_ids": [7, 8, 9], "labels": [IGNORE, 8, 9]},
        {"input_ids": [11, 12, 13, 14, 15], "labels": [11, 12, 13, 14, 15]},
    ]
    batch = PadCollator(pad_id=0)(rows)

    stock = model(**batch).loss
    stock.backward()
    stock_grads = {
        n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None
    }
    model.zero_grad()

    total, count = chunked_causal_lm_loss(model, batch, chunk=chunk)
    ours = total / count
    ours.backward()
    assert int(count) == 4 + 2 + 4  # labelled positions after the shift
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)
    assert stock_grads
    for name, grad in stock_grads.items():
        param = dict(model.named_parameters())[name]
        assert param.grad is not None
        torch.testing.assert_close(param.grad, grad, rtol=1e-4, atol=1e-6)
