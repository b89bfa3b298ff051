"""training_config.yaml: Kaito's templates unchanged, every error with its line, Kaito's rules, peft compat."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from kaito_runtime.tune.config import load_config, quantization_bits, resolve_method, resolve_output_dir
from kaito_runtime.tune.errors import ConfigError, TuneError
from kaito_runtime.tune.output import PEFT_011_LORA_KEYS, compat_peft_011
from kaito_runtime.tune.schema import LORA_NAMES, TRAINING_ARGUMENT_NAMES, Method

FIXTURES = Path(__file__).parent / "fixtures"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "training_config.yaml"
    path.write_text(text)
    return path


def _errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [d.render() for d in caught.value.diagnostics]


def test_kaitos_qlora_template_loads_unchanged() -> None:
    loaded = load_config(FIXTURES / "kaito_qlora_template.yaml")
    cfg = loaded.config
    assert resolve_method(loaded, None) == Method.QLORA
    assert resolve_method(loaded, Method.QLORA) == Method.QLORA
    assert quantization_bits(loaded) == 4
    assert cfg.QuantizationConfig is not None
    assert (cfg.QuantizationConfig.bnb_4bit_quant_type, cfg.QuantizationConfig.bnb_4bit_use_double_quant) == (
        "nf4",
        True,
    )
    assert cfg.TrainingArguments.per_device_train_batch_size == 1
    assert cfg.TrainingArguments.passthrough() == {"ddp_find_unused_parameters": False}
    assert cfg.DatasetConfig.train_test_split == 1
    assert resolve_output_dir(loaded, Path("/mnt/results")) == Path("/mnt/results")


def test_kaitos_lora_template_loads_unchanged() -> None:
    loaded = load_config(FIXTURES / "kaito_lora_template.yaml")
    assert resolve_method(loaded, Method.LORA) == Method.LORA
    assert quantization_bits(loaded) is None


def test_a_typo_names_the_key_its_line_and_the_fix(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "training_config:\n"
        "  TrainingArguments:\n"
        "    per_device_train_batch_size: 2\n"
        "    learnig_rate: 0.001\n"
        "  LoraConfig:\n"
        "    lora_alhpa: 16\n"
        "  DatasetConfg:\n"
        "    shuffle_dataset: false\n",
    )
    assert _errors(path) == [
        f"{path}:4:5: error: training_config.TrainingArguments.learnig_rate: unknown key "
        "(hint: did you mean 'learning_rate'?)",
        f"{path}:6:5: error: training_config.LoraConfig.lora_alhpa: unknown key (hint: did you mean 'lora_alpha'?)",
        f"{path}:7:3: error: training_config.DatasetConfg: unknown section (hint: did you mean 'DatasetConfig'?)",
    ]


def test_wrong_types_point_at_their_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "training_config:\n  DatasetConfig:\n    train_test_split: 1.5\n  TrainingArguments:\n"
        "    per_device_train_batch_size: four\n",
    )
    errors = _errors(path)
    assert len(errors) == 2
    assert errors[0].startswith(f"{path}:3:5: error: training_config.DatasetConfig.train_test_split:")
    assert errors[1].startswith(
        f"{path}:5:5: error: training_config.TrainingArguments.per_device_train_batch_size:"
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("other: 1\ntraining_config: {}\n", "other: unknown key"),
        ("TrainingArguments: {}\n", "training_config: missing"),
        (
            "training_config:\n  TrainingArguments:\n    resume_from_checkpoint: /mnt/results/checkpoint-4\n",
            "resumes",
        ),
        ("training_config:\n  TrainingArguments:\n    packing: true\n", "packing is not supported"),
        ("training_config:\n  TrainingArguments:\n    do_train: true\n", "do_train: unknown key"),
        (
            "training_config:\n  QuantizationConfig:\n    load_in_4bit: true\n    load_in_8bit: true\n",
            "both true",
        ),
        ("training_config:\n  ModelConfig:\n    torch_dtype: bf17\n", "unknown dtype 'bf17'"),
        ("training_config: [1, 2]\n", "must be a mapping"),
        ("training_config:\n  TrainingArguments:\n    seed: 1\n    seed: 2\n", "invalid YAML"),
    ],
)
def test_invalid_configs_are_reported_not_raised(body: str, fragment: str, tmp_path: Path) -> None:
    errors = _errors(_write(tmp_path, body))
    assert any(fragment in error for error in errors), errors


def test_library_fields_pass_through_and_empty_sections_mean_defaults(tmp_path: Path) -> None:
    loaded = load_config(
        _write(
            tmp_path,
            "training_config:\n  ModelConfig:\n  LoraConfig:\n    use_dora: true\n    target_modules: [q_proj]\n"
            "  TrainingArguments:\n    warmup_steps: 3\n    lr_scheduler_type: cosine\n    max_seq_length: 256\n",
        )
    )
    assert loaded.config.LoraConfig.model_extra == {"use_dora": True}
    assert loaded.config.TrainingArguments.passthrough() == {"warmup_steps": 3, "lr_scheduler_type": "cosine"}
    assert loaded.config.TrainingArguments.sequence_limit == 256
    assert loaded.config.ModelConfig.pretrained_model_name_or_path == "/workspace/tfs/weights"


def test_qlora_without_quantization_is_refused(tmp_path: Path) -> None:
    loaded = load_config(FIXTURES / "kaito_lora_template.yaml")
    with pytest.raises(ConfigError) as caught:
        resolve_method(loaded, Method.QLORA)
    rendered = caught.value.render()
    assert "training_config.QuantizationConfig: method qlora needs a quantized base model" in rendered
    assert "kaito_lora_template.yaml:9:3:" in rendered  # the QuantizationConfig line of the template
    no_section = load_config(_write(tmp_path, "training_config:\n  LoraConfig:\n    r: 4\n"))
    with pytest.raises(ConfigError, match="qlora needs"):
        resolve_method(no_section, Method.QLORA)


def test_lora_with_quantization_is_refused() -> None:
    loaded = load_config(FIXTURES / "kaito_qlora_template.yaml")
    with pytest.raises(ConfigError, match="method lora does not allow a quantized base model"):
        resolve_method(loaded, Method.LORA)


@pytest.mark.parametrize(
    ("value", "root", "expected"),
    [
        ("/mnt/results", "/mnt/results", "/mnt/results"),
        ("results", "/mnt/results", "/mnt/results"),
        ("/mnt/results/run-1", "/mnt/results", "/mnt/results/run-1"),
        ("/mnt", "/mnt", "error: .* not below /mnt"),
        ("../etc", "/mnt/results", "error: .* not below /mnt"),
        ("/mnt/other", "/mnt/results", "error: .* outside the output root"),
    ],
)
def test_output_dir_follows_kaitos_rule_and_stays_under_the_output_root(
    value: str, root: str, expected: str, tmp_path: Path
) -> None:
    loaded = load_config(
        _write(tmp_path, f'training_config:\n  TrainingArguments:\n    output_dir: "{value}"\n')
    )
    if expected.startswith("error"):
        with pytest.raises(ConfigError, match=expected.removeprefix("error: ")):
            resolve_output_dir(loaded, Path(root))
    else:
        assert resolve_output_dir(loaded, Path(root)) == Path(expected)


def test_accepted_key_lists_match_the_pinned_libraries() -> None:
    import peft
    import transformers

    training = {f.name for f in dataclasses.fields(transformers.TrainingArguments) if f.init}
    lora = {f.name for f in dataclasses.fields(peft.LoraConfig) if f.init}
    assert training == TRAINING_ARGUMENT_NAMES
    assert lora == LORA_NAMES


def test_compat_peft_011_keeps_only_what_peft_011_knows() -> None:
    import peft

    defaults = peft.LoraConfig().to_dict()
    current = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    config = json.loads(json.dumps(current.to_dict(), default=str))
    assert "alora_invocation_tokens" in config and "peft_version" in config  # what breaks peft 0.11.1
    reduced = compat_peft_011(config, defaults)
    assert set(reduced) <= PEFT_011_LORA_KEYS
    assert {k: reduced[k] for k in ("r", "lora_alpha", "target_modules")} == {
        "r": 8,
        "lora_alpha": 16,
        "target_modules": config["target_modules"],
    }
    with pytest.raises(TuneError, match="lora_bias=True"):
        compat_peft_011({**config, "lora_bias": True}, defaults)
    with pytest.raises(TuneError, match="init_lora_weights='olora'"):
        compat_peft_011({**config, "init_lora_weights": "olora"}, defaults)
