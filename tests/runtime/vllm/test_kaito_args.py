"""kaito-vllm's own command line, config file and adapters dir, without vLLM (main venv, fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kaito_runtime.vllm.cli import UsageError, main, parse_command, parse_kaito_args, serve_args


def test_kaito_flags_split_from_vllm_flags_in_order() -> None:
    ns, rest = parse_kaito_args(
        ["--model=m", "--kaito-max-waiting", "3", "--dtype=float32", "--kaito-disable-rate-limit"]
    )
    assert rest == ["--model=m", "--dtype=float32"]
    assert ns.max_waiting == 3 and ns.disable_rate_limit


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--kaito-max-wating=3"], "did you mean '--kaito-max-waiting'"),
        (["--kaito-max-waiting=-1"], "outside"),
        (["--kaito-disable-rate-limit=yes"], "takes no value"),
        (["ray-leader", "--ray-cluster-size=2"], "follow '--'"),
        (["ray-worker", "--ray-address=h", "--", "--model=m"], "no serve arguments"),
    ],
)
def test_bad_command_lines_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match=message):
        parse_command(argv)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("kaito-vllm: error:") and "Traceback" not in err


def test_config_file_vllm_map_overrides_cli_and_adapters_become_lora_modules(tmp_path: Path) -> None:
    config = tmp_path / "inference_config.yaml"
    config.write_text("vllm:\n  max-model-len: 384\n  enforce_eager: true\n")
    adapters = tmp_path / "adapters"
    (adapters / "qa").mkdir(parents=True)
    (adapters / "qa" / "adapter_config.json").write_text("{}")
    (adapters / "not-an-adapter").mkdir()
    ns, rest = parse_kaito_args(
        ["--max-model-len=512", f"--kaito-config-file={config}", f"--kaito-adapters-dir={adapters}"]
    )
    args = serve_args(ns, rest)
    # Later flags win in argparse, so the file's value comes after the command line's.
    assert args.index("--max-model-len=384") > args.index("--max-model-len=512")
    assert "--enforce-eager" in args and "--enable-lora" in args
    assert args[args.index("--lora-modules") + 1 :][:1] == [f"qa={adapters / 'qa'}"]
    assert args[-1] == "--middleware=kaito_runtime.vllm.middleware.KaitoMiddleware"


def test_config_file_yaml_error_is_positioned(tmp_path: Path) -> None:
    config = tmp_path / "inference_config.yaml"
    config.write_text("vllm:\n  max-model-len: [1\n")
    ns, rest = parse_kaito_args([f"--kaito-config-file={config}"])
    with pytest.raises(UsageError, match=rf"^{config}:\d+:\d+: not valid YAML"):
        serve_args(ns, rest)
