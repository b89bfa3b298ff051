"""Batches of any size: right padding with the pad id, attention mask 0 and label -100 on padding.

Kaito's job pads `input_ids` but not the variable-length `labels` TRL builds, which is why it only works
at batch size 1 (RUNTIME.md §2, 7c). Here both are padded to the longest row of the batch (rounded up
to `pad_to_multiple_of`), so per_device_train_batch_size is a free choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from kaito_runtime.tune.tokenize import IGNORE, Example


class ExampleDataset(Dataset[dict[str, list[int]]]):
    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        example = self.examples[index]
        # `input_ids` is also what Trainer's length-grouped sampler measures.
        return {"input_ids": example.input_ids, "labels": example.labels}


@dataclass(frozen=True)
class PadCollator:
    pad_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            multiple = self.pad_to_multiple_of
            longest = (longest + multiple - 1) // multiple * multiple
        count = len(features)
        input_ids = torch.full((count, longest), self.pad_id, dtype=torch.long)
        labels = torch.full((count, longest), IGNORE, dtype=torch.long)
        attention = torch.zeros((count, longest), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :length] = torch.tensor(feature["labels"], dtype=torch.long)
            attention[row, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
