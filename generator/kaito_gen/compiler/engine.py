"""Which engine serves a Workspace, and Kaito's per-engine admission rules (KAITO.md §1.6, §1.7).

Precedence: the ``kaito.sh/runtime`` annotation > ``runtime.default`` in kaito-gen.yaml >
the preset's ``defaultEngine`` > transformers where kaito-gen's transformers runtime supports the
model and it fits one node, else vLLM.
Kaito v0.12 defaults to vLLM for everything; kaito-gen keeps its transformers runtime as the
preset default where it can serve the model, because adapter strength and the seeds' /chat
contract need it, and says so in ``explain``.
"""

from __future__ import annotations

from kaito_gen.models.presets import ModelPreset
from kaito_gen.models.target import Engine, Target
from kaito_gen.models.workspace import Workspace

RUNTIME_ANNOTATION = "kaito.sh/runtime"
ENGINES: tuple[Engine, ...] = ("transformers", "vllm")


def choose_engine(
    ws: Workspace, model: ModelPreset | None, target: Target, fits_one_node: bool = True
) -> tuple[Engine, str]:
    """(engine, why) for an inference Workspace. Tuning always runs on transformers."""
    if ws.tuning is not None:
        return "transformers", "tuning runs on the transformers runtime (kaito-tune)"
    annotated = ws.annotations.get(RUNTIME_ANNOTATION)
    for engine in ENGINES:
        if annotated == engine:
            return engine, f"annotation {RUNTIME_ANNOTATION}: {engine}"
    if target.default_engine is not None:
        return target.default_engine, f"runtime.default: {target.default_engine} in kaito-gen.yaml"
    if model is None:
        return "transformers", "template workspace: the user's own pod serves the model"
    if model.default_engine is not None:
        other = "transformers" if model.default_engine == "vllm" else "vllm"
        also = (
            f" (annotate {RUNTIME_ANNOTATION}: {other} for {other})"
            if other in model.supported_engines
            else ""
        )
        return model.default_engine, f"preset default: {model.engines_reason or model.default_engine}{also}"
    if model.runtime.transformers and not fits_one_node:
        return (
            "vllm",
            f"preset default: {model.name} needs more than one node of this SKU, "
            "and only vLLM serves a model across nodes",
        )
    if model.runtime.transformers:
        return (
            "transformers",
            f"preset default: kaito-gen's transformers runtime supports {model.name} "
            f"(annotate {RUNTIME_ANNOTATION}: vllm for vLLM)",
        )
    return "vllm", f"preset default: {model.name} has no transformers entry, so vLLM serves it"
