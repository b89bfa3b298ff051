"""Every catalog row's ``architecture`` and ``family`` agree: ``family`` is the config ``model_type``
that transformers' auto classes map to that architecture class (KAITO.md lists no architectures, so
the check is against the libraries that load the models). Classes transformers 5.x lacks are checked
against vLLM's config registry, recorded here with the version they were read from."""

from __future__ import annotations

import pytest
from kaito_gen.compiler.load import load_presets

CATALOG = load_presets()

# Architectures transformers 5.x has no class for: the model_type vLLM 0.32 registers for them
# (vllm.transformers_utils.config._CONFIG_REGISTRY, or the repo's own remote code).
NOT_IN_TRANSFORMERS = {
    # Mistral-format checkpoint (params.json), DeepSeek-V3-style MLA; served by vLLM's own class.
    "MistralLarge3ForCausalLM": {"mistral"},
    # Remote-code VL model; vLLM registers the class, the text backbone is NemotronH.
    "NemotronH_Nano_VL_V2": {"nemotron_h"},
    # vLLM: "kimi_k25" -> Kimi_K25Config (while "kimi_k2" is Kimi-K2's DeepseekV3Config).
    "KimiK25ForConditionalGeneration": {"kimi_k25"},
}


def _model_types_by_class() -> dict[str, set[str]]:
    from transformers.models.auto import modeling_auto

    out: dict[str, set[str]] = {}
    for name in dir(modeling_auto):
        if name.startswith("MODEL_") and name.endswith("_MAPPING_NAMES"):
            for model_type, classes in getattr(modeling_auto, name).items():
                for cls in classes if isinstance(classes, list | tuple) else [classes]:
                    out.setdefault(cls, set()).add(model_type)
    return out


BY_CLASS = _model_types_by_class()


@pytest.mark.parametrize("name", sorted(CATALOG.models), ids=str)
def test_family_is_the_model_type_of_the_architecture(name: str) -> None:
    model = CATALOG.models[name]
    expected = BY_CLASS.get(model.architecture) or NOT_IN_TRANSFORMERS.get(model.architecture)
    assert expected, f"{model.architecture} is known to neither transformers nor the exceptions table"
    assert model.family in expected, (model.architecture, model.family, sorted(expected))


def test_the_exceptions_are_still_needed() -> None:
    for cls in NOT_IN_TRANSFORMERS:
        assert cls not in BY_CLASS, f"transformers now has {cls}: drop it from NOT_IN_TRANSFORMERS"
        assert any(m.architecture == cls for m in CATALOG.models.values())


def test_moe_and_dense_qwen3_5_are_told_apart() -> None:
    for model in CATALOG.models.values():
        if model.family.startswith("qwen3_5"):
            moe = "Moe" in model.architecture
            assert model.family == ("qwen3_5_moe" if moe else "qwen3_5"), model.name
            # Kaito's MoE checkpoints are named <total>B-A<active>B.
            assert moe == ("-a" in model.name), model.name
