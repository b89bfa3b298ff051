"""`kaito-data pull-image` (the tuning Job's input.image puller) and repeated --docker-config files,
exactly as kaito-gen's manifests invoke them, against the real registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from adapter_images import push_kaito_style_image
from tune_support import Registry, require_binary, run_cli


def _anonymous_config(path: Path) -> Path:
    path.write_text(json.dumps({"auths": {"other.example.com": {"auth": "dXNlcjpwYXNz"}}}))
    return path


def test_pull_image_fetches_the_dataset_under_data(
    registry: Registry, tmp_path: Path, env: dict[str, str]
) -> None:
    require_binary("skopeo")
    files = {"data/train.jsonl": b'{"text": "hello"}\n', "data/sub/eval.jsonl": b'{"text": "bye"}\n'}
    image = f"{registry.host}/datasets/dolly:1.0"
    digest = push_kaito_style_image(tmp_path / "layout", files, image, registry.docker_config)
    dest = tmp_path / "mnt" / "data"
    # The first config has no credentials for this registry; the second (the pull secret) does.
    other = _anonymous_config(tmp_path / "other.json")
    pulled = run_cli(
        "kaito-data", "pull-image", image, "--dest", dest,
        "--docker-config", other, "--docker-config", registry.docker_config, env=env,
    )  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["digest"] == digest
    assert (dest / "train.jsonl").read_bytes() == files["data/train.jsonl"]
    assert (dest / "sub" / "eval.jsonl").read_bytes() == files["data/sub/eval.jsonl"]


def test_pull_image_refuses_an_image_without_data(
    registry: Registry, tmp_path: Path, env: dict[str, str]
) -> None:
    require_binary("skopeo")
    image = f"{registry.host}/datasets/empty:1.0"
    push_kaito_style_image(
        tmp_path / "layout", {"etc/motd": b"nothing under data"}, image, registry.docker_config
    )
    dest = tmp_path / "data"
    pulled = run_cli(
        "kaito-data", "pull-image", image, "--dest", dest, "--docker-config", registry.docker_config, env=env
    )
    assert pulled.returncode == 3
    assert "no files under /data" in pulled.stderr
    assert not dest.exists()


@pytest.mark.parametrize("order", ["wrong-first", "right-first"])
def test_adapter_pull_takes_the_first_config_with_credentials(
    registry: Registry, tmp_path: Path, env: dict[str, str], order: str
) -> None:
    require_binary("skopeo")
    from adapter_images import write_adapter_dir

    src = write_adapter_dir(tmp_path / "src")
    files = {f"data/{p.name}": p.read_bytes() for p in src.iterdir() if p.name.startswith("adapter_")}
    image = f"{registry.host}/adapters/multi-{order}:1"
    push_kaito_style_image(tmp_path / "layout", files, image, registry.docker_config)
    configs = [_anonymous_config(tmp_path / "other.json"), registry.docker_config]
    if order == "right-first":
        configs.reverse()
    args: list[str | Path] = []
    for config in configs:
        args += ["--docker-config", config]
    pulled = run_cli("kaito-adapter", "pull", image, tmp_path / "out", *args, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
