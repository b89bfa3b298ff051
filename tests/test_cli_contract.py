"""The contract between compiler and runtime: every command line kaito-gen emits (in every golden
bundle) parses with the real CLI of the kaito-runtime image, and every inference ConfigMap it ships
is accepted by kaito-serve's config reader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from kaito_runtime.adapter.cli import main as adapter_main
from kaito_runtime.data.cli import main as data_main
from kaito_runtime.serve.cli import build_parser
from kaito_runtime.serve.settings import parse_config_file
from kaito_runtime.tune.cli import main as tune_main
from kaito_runtime.vllm.cli import parse_command

ROOT = Path(__file__).resolve().parents[1]
# vLLM's own `serve` flags, generated from its parser (hack script + drift test in tests/generator).
VLLM_ARGS = json.loads((ROOT / "generator" / "kaito_gen" / "catalog" / "vllm_args.json").read_text())["args"]

GOLDEN = Path(__file__).parent / "golden"
WORKLOADS = {"StatefulSet", "Deployment", "Job", "LeaderWorkerSet"}


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(GOLDEN.glob("*/expected/**/*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.relative_to(GOLDEN).as_posix(), doc


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] == "LeaderWorkerSet":
        template = doc["spec"]["leaderWorkerTemplate"]
        for role in ("leaderTemplate", "workerTemplate"):
            if role in template:
                yield template[role]["spec"]
    else:
        yield doc["spec"]["template"]["spec"]


def _commands() -> list[tuple[str, list[str]]]:
    found = []
    for where, doc in _documents():
        if doc["kind"] not in WORKLOADS:
            continue
        for spec in _pod_specs(doc):
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                found.append(
                    (f"{where}:{container['name']}", [*container["command"], *container.get("args", [])])
                )
    return found


def _check_vllm(argv: list[str]) -> None:
    """kaito-vllm's own parser (torch- and vLLM-free) splits the line; every remaining flag must be
    one of vLLM's serve flags."""
    command = parse_command(argv[1:])
    for arg in command.rest:
        if arg.startswith("--"):
            # vLLM's FlexibleArgumentParser reads `_` in a flag name as `-`.
            name = arg[2:].split("=", 1)[0].replace("_", "-")
            # `--json-arg.key.sub=value` sets one key of a JSON-valued flag.
            base, dot, _ = name.partition(".")
            assert base in VLLM_ARGS, f"--{name} is not a vLLM serve flag"
            assert not dot or VLLM_ARGS[base]["kind"] == "json", f"--{base} takes no .sub-keys"


COMMANDS = _commands()


def _parse_click(command: click.Command, argv: list[str]) -> None:
    """Parse (and type-check) argv with the real click command, without running it."""
    if isinstance(command, click.Group):
        sub = command.commands.get(argv[1])
        assert sub is not None, f"{argv[0]} has no subcommand {argv[1]!r}"
        sub.make_context(argv[1], list(argv[2:]))
    else:
        command.make_context(argv[0], list(argv[1:]))


def test_goldens_run_every_runtime_entry_point() -> None:
    programs = {argv[0] for _, argv in COMMANDS}
    assert programs == {"kaito-serve", "kaito-tune", "kaito-adapter", "kaito-data", "kaito-vllm"}


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_emitted_command_parses(where: str, argv: list[str]) -> None:
    program = argv[0]
    if program == "kaito-serve":
        build_parser().parse_args(argv[1:])
    elif program == "kaito-tune":
        _parse_click(tune_main, argv)
    elif program == "kaito-adapter":
        _parse_click(adapter_main, argv)
    elif program == "kaito-data":
        _parse_click(data_main, argv)
    elif program == "kaito-vllm":
        _check_vllm(argv)
    else:
        pytest.fail(f"{where}: unknown program {program}")


def test_emitted_inference_configmaps_are_accepted_by_the_server(tmp_path: Path) -> None:
    checked = 0
    for _where, doc in _documents():
        if doc["kind"] == "ConfigMap" and "inference_config.yaml" in doc.get("data", {}):
            path = tmp_path / f"{checked}.yaml"
            path.write_text(doc["data"]["inference_config.yaml"])
            parse_config_file(path)
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    "argv",
    [
        ["kaito-adapter", "pull", "r.io/a:1", "/mnt/adapter/a", "--no-such-flag"],
        ["kaito-data", "pull-images", "r.io/a:1", "--dest", "/mnt/data"],
        ["kaito-tune", "--config", "c.yaml", "--data", "/d", "--output", "/o", "--method", "full"],
    ],
    ids=["unknown-flag", "unknown-subcommand", "bad-choice"],
)
def test_contract_check_catches_mismatches(argv: list[str]) -> None:
    command = {"kaito-adapter": adapter_main, "kaito-data": data_main, "kaito-tune": tune_main}[argv[0]]
    with pytest.raises((click.UsageError, AssertionError)):
        _parse_click(command, argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["kaito-vllm", "--model=m", "--max-modl-len=4096"],
        ["kaito-vllm", "--model=m", "--max-model-len.sub=1"],
        ["kaito-vllm", "ray-worker", "--ray-address=h", "--", "--model=m"],
        ["kaito-vllm", "--model=m", "--kaito-no-such=1"],
    ],
    ids=["misspelled-vllm-flag", "sub-key-on-scalar", "worker-with-serve-args", "unknown-kaito-flag"],
)
def test_vllm_contract_check_catches_mismatches(argv: list[str]) -> None:
    from kaito_runtime.vllm.args import UsageError as VllmUsageError

    with pytest.raises((AssertionError, VllmUsageError)):
        _check_vllm(argv)
