"""`kaito-tune` end to end through the CLI: LoRA, QLoRA, resume after kill -9, and bad inputs.

Each training run is a real subprocess on the tiny random models (a few steps); the adapters it writes
are then loaded in-process with peft to check they really change the model's logits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kaito_runtime.tune.output import PEFT_011_LORA_KEYS
from tune_data import write_dataset, write_rows
from tune_support import BIN, TuneRun, tune

FIXTURES = Path(__file__).parent / "fixtures"
OUTPUT_FILES = {
    "adapter_config.json",
    "adapter_model.safetensors",
    "training_metrics.json",
    "fine_tuning_completed.txt",
}


def _logit_change(model_dir: Path, adapter_dir: Path) -> float:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    inputs = tokenizer("<|user|>\nwhat does kaito do<|end|>\n<|assistant|>\n", return_tensors="pt")
    with torch.no_grad():
        before = base(**inputs).logits
        tuned = PeftModel.from_pretrained(base, str(adapter_dir))
        after = tuned(**inputs).logits
    return float((after - before).abs().max())


@pytest.mark.xdist_group("tune_lora")
def test_lora_run_writes_kaitos_outputs_with_progress(lora_run: TuneRun) -> None:
    assert lora_run.returncode == 0, lora_run.stderr
    assert "Traceback" not in lora_run.stderr
    out = lora_run.output
    assert {p.name for p in out.iterdir()} >= OUTPUT_FILES
    sentinel_time = (out / "fine_tuning_completed.txt").stat().st_mtime_ns
    assert all((out / name).stat().st_mtime_ns <= sentinel_time for name in OUTPUT_FILES)  # sentinel last

    progress = lora_run.of("progress")
    assert [e["step"] for e in progress] == list(range(1, 13))
    assert all(isinstance(e["loss"], float) and float(e["tokens_per_s"]) > 0 for e in progress)  # type: ignore[arg-type]
    (start,) = lora_run.of("start")
    assert (start["method"], start["record_shape"], start["files"]) == (
        "lora",
        "messages",
        ["part-0.parquet", "part-1.parquet"],
    )
    metrics = lora_run.metrics()
    assert (metrics["global_step"], metrics["train_rows"], metrics["eval_rows"]) == (12, 32, 8)
    assert isinstance(metrics["eval_loss"], float) and isinstance(metrics["train_loss"], float)
    assert metrics["quantized_linear_layers"] == 0 and metrics["resumed_from"] is None
    config = json.loads((out / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    assert (config["r"], config["lora_alpha"], config["task_type"]) == (8, 16, "CAUSAL_LM")


@pytest.mark.xdist_group("tune_lora")
def test_lora_adapter_changes_the_logits(lora_run: TuneRun) -> None:
    assert lora_run.returncode == 0, lora_run.stderr
    assert _logit_change(lora_run.model, lora_run.output) > 1e-3


@pytest.mark.xdist_group("tune_lora")
def test_a_restarted_finished_job_does_not_train_again(lora_run: TuneRun, env: dict[str, str]) -> None:
    assert lora_run.returncode == 0, lora_run.stderr
    before = {p.name: p.stat().st_mtime_ns for p in lora_run.output.iterdir()}
    again = subprocess.run(
        [str(BIN / "kaito-tune"), *lora_run.args], env=env, capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert [json.loads(line)["event"] for line in again.stdout.splitlines()] == ["completed_already"]
    assert {p.name: p.stat().st_mtime_ns for p in lora_run.output.iterdir()} == before


def test_qlora_on_phi3_end_to_end_with_peft_011_output(
    tmp_path: Path, tiny_phi3_dir: Path, env: dict[str, str]
) -> None:
    write_dataset(tmp_path / "data", "instruction", "jsonl", 24)  # dolly-15k shape
    config = (FIXTURES / "kaito_qlora_template.yaml").read_text()
    # Kaito's qlora template, with what a CPU and a few-step test need: fp32 compute, steps, logging.
    config = config.replace('torch_dtype: "bfloat16"', 'torch_dtype: "float32"')
    config = config.replace('bnb_4bit_compute_dtype: "bfloat16"', 'bnb_4bit_compute_dtype: "float32"')
    config = config.replace('output_dir: "/mnt/results"', f'output_dir: "{tmp_path / "results"}"')
    config = config.replace(
        "per_device_train_batch_size: 1",
        "per_device_train_batch_size: 3\n    max_steps: 4\n    learning_rate: 0.01\n    logging_steps: 1",
    )
    run = tune(tmp_path, config, tiny_phi3_dir, "--method", "qlora", "--compat-peft", "0.11", env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert {p.name for p in run.output.iterdir()} >= OUTPUT_FILES
    metrics = run.metrics()
    assert (metrics["method"], metrics["quantization_bits"], metrics["record_shape"]) == (
        "qlora",
        4,
        "instruction",
    )
    assert int(metrics["quantized_linear_layers"]) > 0  # type: ignore[call-overload]  # NF4 layers, really
    assert metrics["global_step"] == 4
    config_json = json.loads((run.output / "adapter_config.json").read_text())
    assert set(config_json) <= PEFT_011_LORA_KEYS  # loadable by Kaito's peft 0.11.1
    assert sorted(config_json["target_modules"]) == sorted(
        ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    )
    assert _logit_change(tiny_phi3_dir, run.output) > 1e-4


def test_a_killed_run_resumes_from_its_latest_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, env: dict[str, str]
) -> None:
    write_dataset(tmp_path / "data", "prompt_completion", "csv", 30)
    config = """\
training_config:
  ModelConfig: {torch_dtype: "float32"}
  TrainingArguments:
    per_device_train_batch_size: 2
    max_steps: 30
    logging_steps: 1
    save_strategy: "steps"
    save_steps: 2
  DatasetConfig: {train_test_split: 1}
"""
    (tmp_path / "training_config.yaml").write_text(config)
    args = [
        str(BIN / "kaito-tune"),
        "--config", str(tmp_path / "training_config.yaml"),
        "--data", str(tmp_path / "data"),
        "--output", str(tmp_path / "results"),
        "--model", str(tiny_model_dir),
    ]  # fmt: skip
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert first.stdout is not None
    killed_after: dict[str, Any] = {}
    for line in first.stdout:
        event = json.loads(line)
        if event["event"] == "checkpoint":
            os.kill(first.pid, signal.SIGKILL)  # an evicted pod gets no chance to clean up
            killed_after = event
            break
    first.wait(60)
    assert first.returncode == -signal.SIGKILL, f"the first run ended on its own: {killed_after}"
    assert killed_after["step"] == 2
    assert not (tmp_path / "results" / "fine_tuning_completed.txt").exists()

    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stderr
    events = [json.loads(line) for line in second.stdout.splitlines()]
    (resume,) = [e for e in events if e["event"] == "resume"]
    step = int(resume["global_step"])
    assert step >= 2 and step % 2 == 0  # a checkpoint finished before the kill landed
    assert f"resuming from checkpoint-{step} at global_step {step}" in second.stderr
    progress = [e["step"] for e in events if e["event"] == "progress"]
    assert progress == list(range(step + 1, 31))  # global_step continues, nothing is redone
    metrics = json.loads((tmp_path / "results" / "training_metrics.json").read_text())
    assert (metrics["global_step"], metrics["resumed_from"]) == (30, f"checkpoint-{step}")
    assert (tmp_path / "results" / "fine_tuning_completed.txt").exists()
    checkpoints = sorted(p.name for p in (tmp_path / "results").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-28", "checkpoint-30"]  # save_total_limit 2 keeps the disk bounded


def _assert_nothing_written(output: Path) -> None:
    assert not any((output / name).exists() for name in OUTPUT_FILES)


def test_empty_dataset_is_a_clear_error(tmp_path: Path, tiny_model_dir: Path, env: dict[str, str]) -> None:
    write_rows(tmp_path / "data" / "train.jsonl", [])
    run = tune(
        tmp_path,
        (FIXTURES / "kaito_lora_template.yaml")
        .read_text()
        .replace("/mnt/results", str(tmp_path / "results")),
        tiny_model_dir,
        env=env,
    )
    assert run.returncode == 3
    assert "kaito-tune: error: the dataset is empty: train.jsonl hold no rows" in run.stderr
    assert "Traceback" not in run.stderr
    _assert_nothing_written(run.output)


def test_unknown_columns_are_a_clear_error(tmp_path: Path, tiny_model_dir: Path, env: dict[str, str]) -> None:
    write_rows(tmp_path / "data" / "train.parquet", [{"question": "q", "answer": "a"}])
    run = tune(tmp_path, "training_config: {}\n", tiny_model_dir, env=env)
    assert run.returncode == 3
    assert "cannot tell the record shape from the columns: answer, question" in run.stderr
    _assert_nothing_written(run.output)


def test_a_typo_in_the_config_is_a_clear_error(
    tmp_path: Path, tiny_model_dir: Path, env: dict[str, str]
) -> None:
    write_dataset(tmp_path / "data", "messages", "jsonl", 4)
    run = tune(
        tmp_path,
        "training_config:\n  LoraConfig:\n    r: 8\n    lora_dropuot: 0.1\n",
        tiny_model_dir,
        env=env,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"{run.config}:4:5: error: training_config.LoraConfig.lora_dropuot: unknown key "
        "(hint: did you mean 'lora_dropout'?)"
    )
    _assert_nothing_written(run.output)


def test_qlora_without_quantization_is_a_clear_error(
    tmp_path: Path, tiny_model_dir: Path, env: dict[str, str]
) -> None:
    write_dataset(tmp_path / "data", "messages", "jsonl", 4)
    config = (
        (FIXTURES / "kaito_lora_template.yaml").read_text().replace("/mnt/results", str(tmp_path / "results"))
    )
    run = tune(tmp_path, config, tiny_model_dir, "--method", "qlora", env=env)
    assert run.returncode == 2
    assert "training_config.QuantizationConfig: method qlora needs a quantized base model" in run.stderr
    assert "hint: set QuantizationConfig.load_in_4bit: true" in run.stderr
    _assert_nothing_written(run.output)


def test_a_missing_model_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    from kaito_runtime.tune.config import load_config
    from kaito_runtime.tune.errors import ModelError
    from kaito_runtime.tune.train import ModelSpec, load_tokenizer

    loaded = load_config(FIXTURES / "kaito_lora_template.yaml")
    spec = ModelSpec(str(tmp_path / "no-such-model"), None, None, local_files_only=True, token=None)
    with pytest.raises(ModelError, match="cannot load the tokenizer"):
        load_tokenizer(loaded, spec)
