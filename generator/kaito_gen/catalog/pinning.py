"""Revision pins: what render says about a catalog row whose HF commit is not known.

A row with ``revision: unpinned`` downloads whatever the repo's main branch holds when the pod
starts. Render warns and names the command that pins it; ``render --require-pinned`` (or
``requirePinned: true`` in kaito-gen.yaml) turns the warning into an error.
"""

from __future__ import annotations

from kaito_gen.models.presets import ModelPreset


def pin_command(model: ModelPreset) -> str:
    return f"kaito-gen presets pin {model.name}"


def unpinned_message(model: ModelPreset) -> str:
    """The diagnostic text for an unpinned model ('' when the model is pinned)."""
    if model.pinned:
        return ""
    return (
        f"model {model.name} ({model.hf_repo}) has no pinned revision: the weights are whatever "
        "its main branch holds when the pod starts"
    )


def unpinned_hint(model: ModelPreset, required: bool) -> str:
    tail = "" if required else "; `render --require-pinned` makes this an error"
    return f"run `{pin_command(model)}` to record the current commit in the preset table{tail}"
