"""Build tiny random-weight causal LMs offline (shared by the serve and tune tests).

The model and tokenizer are generated from scratch with a fixed seed, so the
suite never touches the hub: a ByteLevel BPE tokenizer is trained with
`tokenizers` on generated text, wrapped in `PreTrainedTokenizerFast` with a
chat template and special tokens, and saved next to a randomly initialised
Llama or Phi-3 model with `save_pretrained` (about 1 MB in all).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

SPECIAL_TOKENS = ["<|pad|>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

# Phi-3 style template: every turn ends with <|end|>, the prompt ends with the
# assistant header when add_generation_prompt is set.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_WORDS_TEXT = (
    "the a an kaito gpu model adapter token server request batch queue stream cluster node pool "
    "karpenter workspace inference tuning weights layer tensor cache chat prompt answer question "
    "fast slow small large red green blue one two three four five six seven eight nine ten "
    "hello world what is how do you run deploy scale monitor metric latency throughput "
    "kubernetes pod service port health ready alive error retry limit bound secure"
)
_WORDS = _WORDS_TEXT.split()
_SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]


def _corpus(seed: int, lines: int = 2000) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        n = rng.randint(4, 16)
        # Real words give common merges; random syllable words give enough
        # distinct pairs for the BPE vocab to fill up to `vocab` entries.
        words = [
            rng.choice(_WORDS) if rng.random() < 0.6 else "".join(rng.choice(_SYLLABLES) for _ in range(3))
            for _ in range(n)
        ]
        if rng.random() < 0.3:
            words.append(str(rng.randint(0, 999)))
        sentence = " ".join(words)
        out.append(sentence[0].upper() + sentence[1:] + rng.choice([".", "?", "!"]))
    return out


def build_tiny_model(
    dest: Path,
    arch: Literal["llama", "phi3"] = "llama",
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    vocab: int = 1024,
    seed: int = 0,
    max_position_embeddings: int = 512,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """Write a random-weight model + tokenizer to `dest` and return `dest`.

    Imports torch/transformers lazily so that importing this module is free. ``extra_config``
    overrides config fields (e.g. Phi-4-mini's ``partial_rotary_factor`` and tied embeddings).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        Phi3Config,
        Phi3ForCausalLM,
        PreTrainedTokenizerFast,
    )

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(seed), trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<|pad|>",
        bos_token="<|endoftext|>",
        eos_token="<|end|>",
        unk_token=None,
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        model_max_length=max_position_embeddings,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    pad_id = tokenizer.convert_tokens_to_ids("<|pad|>")
    bos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    eos_id = tokenizer.convert_tokens_to_ids("<|end|>")
    # Every id the model can emit must decode to something: the corpus is large
    # enough for BPE to fill the vocab exactly.
    if len(tokenizer) != vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, expected vocab={vocab}")

    common = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": max_position_embeddings,
        "pad_token_id": pad_id,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "tie_word_embeddings": False,
        **(extra_config or {}),
    }
    torch.manual_seed(seed)
    model: torch.nn.Module
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "phi3":
        model = Phi3ForCausalLM(Phi3Config(**common))
    else:
        raise ValueError(f"unknown arch {arch!r}: use 'llama' or 'phi3'")
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


if __name__ == "__main__":  # handy for building a model by hand: python tiny_model.py DEST [arch]
    import sys

    print(build_tiny_model(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "llama"))  # type: ignore[arg-type]
