"""CLI flags, the inference ConfigMap file and adapter discovery (pure Python, no torch)."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from kaito_runtime.serve.cli import build_parser, settings_from_args
from kaito_runtime.serve.settings import Limits, SettingsError, discover_adapters, parse_config_file
from serve_helpers import serve_command


def _fake_adapter(root: Path, name: str, rank: int = 4, peft_type: str = "LORA") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": peft_type, "r": rank}))
    (d / "adapter_model.safetensors").write_bytes(b"")
    return d


def _settings(*argv: str):  # type: ignore[no-untyped-def]
    return settings_from_args(build_parser().parse_args(["--model", "/models/phi", *argv]))


def test_kaito_config_with_our_section(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "inference_config.yaml"
    cfg.write_text(
        "vllm:\n  cpu-offload-gb: 0\n  max-model-len: 2048\n"
        "max_probe_steps: 6\nkv_cache_cpu_memory_utilization: 0.5\n"
        "transformers:\n  max-model-len: 4096\n  max_batch_size: 8\n  max-queue: 3\n"
        "  max-tokens-limit: 1000\n  drain-seconds: 12.5\n  combination-type: svd\n"
        "  chat-template: \"{{ messages[0]['content'] }}\"\n"
    )
    with caplog.at_level(logging.INFO, logger="kaito_runtime.serve"):
        s = _settings("--config", str(cfg), "--max-model-len", "1024", "--max-queue", "7")
    assert s.limits == Limits(
        max_batch_size=8,
        max_queue=3,
        max_model_len=4096,
        max_tokens_limit=1000,
        drain_seconds=12.5,
        combination_type="svd",
    )
    assert s.chat_template == "{{ messages[0]['content'] }}"
    assert s.served_model_name == "phi"
    text = caplog.text
    assert "'vllm' is for Kaito's vLLM runtime; ignored" in text
    assert "'max_probe_steps' is for Kaito's vLLM runtime; ignored" in text
    assert "max_model_len=4096 overrides the command-line value 1024" in text


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "transformers:\n  max-batch: 4\n",
            "transformers.max-batch: unknown key; supported keys: chat-template,",
        ),
        (
            "transformers:\n  max-batch-size: 0\n",
            "transformers.max-batch-size must be an integer in [1, 1024], got 0",
        ),
        (
            "transformers:\n  max-queue: many\n",
            "transformers.max-queue must be an integer in [0, 100000], got 'many'",
        ),
        (
            "transformers:\n  combination-type: ties\n",
            "combination-type must be one of cat, svd, linear, got 'ties'",
        ),
        ("transformers: [1, 2]\n", "'transformers' must be a mapping, got list"),
        ("- a\n- b\n", "top level must be a mapping, got list"),
        ("transformers: {max-model-len: 1\n", "not valid YAML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, yaml_text: str, message: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(SettingsError) as info:
        parse_config_file(cfg)
    assert message in str(info.value)
    assert str(cfg) in str(info.value)


def test_unknown_top_level_section_is_tolerated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("someday: {x: 1}\n")
    with caplog.at_level(logging.WARNING, logger="kaito_runtime.serve"):
        assert parse_config_file(cfg).limits == {}
    assert "unknown top-level key 'someday' ignored" in caplog.text


def test_adapter_strength_precedence_flag_env_default(tmp_path: Path) -> None:
    for name in ("phi-3-adapter", "b", "c"):
        _fake_adapter(tmp_path, name)
    (tmp_path / "empty").mkdir()
    env = {"phi-3-adapter": "0.5", "b": "0.25"}
    specs = discover_adapters(tmp_path, {"b": 0.75}, env, "phi-3")
    assert [(s.name, s.strength, s.strength_source) for s in specs] == [
        ("b", 0.75, "flag"),
        ("c", 1.0, "default"),
        ("phi-3-adapter", 0.5, "env"),
    ]


@pytest.mark.parametrize(
    ("setup", "env", "flags", "message"),
    [
        (lambda r: _fake_adapter(r, "a"), {"a": "1.5"}, {}, "env var a (adapter"),
        (lambda r: _fake_adapter(r, "a"), {"a": "strong"}, {}, "strength 'strong' is not a number"),
        (lambda r: _fake_adapter(r, "a"), {}, {"zz": 0.5}, "--adapter-strength names zz but"),
        (lambda r: _fake_adapter(r, "a", peft_type="IA3"), {}, {}, "peft_type 'IA3' is not supported"),
        (lambda r: _fake_adapter(r, "a", rank=0), {}, {}, "'r' must be a positive integer, got 0"),
        (lambda r: _fake_adapter(r, "phi"), {}, {}, "name 'phi' collides with --served-model-name"),
        (lambda r: _fake_adapter(r, "bad name"), {}, {}, "is not a valid model name"),
        (
            lambda r: (_fake_adapter(r, "a") / "adapter_config.json").write_text("{"),
            {},
            {},
            "is not valid JSON",
        ),
        (
            lambda r: (_fake_adapter(r, "a") / "adapter_model.safetensors").unlink(),
            {},
            {},
            "no adapter_model",
        ),
    ],
)
def test_bad_adapters_are_clear_errors(tmp_path: Path, setup, env, flags, message) -> None:  # type: ignore[no-untyped-def]
    setup(tmp_path)
    with pytest.raises(SettingsError) as info:
        discover_adapters(tmp_path, flags, env, "phi")
    assert message in str(info.value)


def test_missing_adapters_dir_means_no_adapters(tmp_path: Path) -> None:
    assert discover_adapters(tmp_path / "absent", {}, {}, "m") == ()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--model", "m", "--dtype", "int4"], 2, "argument --dtype: invalid choice: 'int4'"),
        (["--model", "m", "--load-in-4bit", "--load-in-8bit"], 2, "not allowed with argument --load-in-4bit"),
        (["--model", "m", "--max-batch-size", "0"], 2, "argument --max-batch-size: 0 is outside [1, 1024]"),
        (
            ["--model", "m", "--config", "/nonexistent/c.yaml"],
            2,
            "--config /nonexistent/c.yaml: file not found",
        ),
        (["--model", "m", "--adapter-strength", "x"], 2, "--adapter-strength 'x': expected NAME=VALUE"),
        (
            ["--model", "m", "--api-key-file", "/nonexistent/k"],
            2,
            "--api-key-file /nonexistent/k: cannot read",
        ),
        (["--model", "m", "--served-model-name", "has space"], 2, "--served-model-name 'has space'"),
    ],
)
def test_cli_rejects_bad_flags_quickly(argv: list[str], code: int, message: str) -> None:
    result = subprocess.run(serve_command(*argv), check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_adapter_strength_env_exits_2(tmp_path: Path) -> None:
    _fake_adapter(tmp_path, "a1")
    import os

    env = {**os.environ, "a1": "2"}
    result = subprocess.run(
        serve_command("--model", "m", "--adapters-dir", str(tmp_path)),
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "kaito-serve: error: env var a1" in result.stderr
    assert "strength '2' must lie in [0, 1]" in result.stderr
