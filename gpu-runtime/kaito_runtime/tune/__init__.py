"""`kaito-tune`: LoRA / QLoRA fine-tuning from Kaito's tuning ConfigMap, resumable, with Kaito's outputs.

Stages, one module each, in the order the CLI runs them (nothing below the CLI reads the environment):
`config` (load + Kaito's rules) -> `dataset` (files, record shape, split) -> `tokenize` (token ids and
loss masks) -> `train` (model, LoRA, Trainer, checkpoints, resume) -> `output` (adapter files, metrics,
sentinel). The data and config stages import no torch, so bad inputs fail in a fraction of a second.
"""
