"""Golden directories: tests/golden/<case>/{input/, args, expected/ | expected.txt}.

Every case is rendered through the real CLI. Successful cases must match
expected/ byte for byte, be stable (same bytes with the input files in another
order), validate against the Kubernetes schemas and the CRDs in
../shared/reference/crds, and build with `kubectl kustomize`. Error cases must
exit 2 with exactly the diagnostics in expected.txt and write nothing.

Regenerate after an intended change: UPDATE_GOLDEN=1 pytest tests/generator/test_golden.py
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kaito_gen.cli import cli
from kaito_gen.commands import register

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "input").is_dir())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PROVIDER = {"aws": "aws", "byo": "core", "arc": "core"}

register(cli)


def _args(case: str) -> list[str]:
    path = GOLDEN / case / "args"
    return shlex.split(path.read_text()) if path.exists() else []


def _cloud(case: str) -> str:
    args = _args(case)
    return args[args.index("--cloud") + 1] if "--cloud" in args else "azure"


def _input_files(case: str, shuffle_seed: int | None) -> list[str]:
    files = sorted(p.relative_to(GOLDEN / case).as_posix() for p in (GOLDEN / case / "input").rglob("*.yaml"))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(files)
        files.reverse()
    return files


def _render(
    case: str, out: Path, monkeypatch: pytest.MonkeyPatch, shuffle_seed: int | None = None
) -> tuple[int, str]:
    monkeypatch.chdir(GOLDEN / case)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["render", *_input_files(case, shuffle_seed), "-o", str(out), "-q", *_args(case)]
    )
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    code, stderr = _render(case, out, monkeypatch)
    expected_txt = GOLDEN / case / "expected.txt"
    expected_dir = GOLDEN / case / "expected"
    if case.startswith("errors-"):
        assert code == 2, stderr
        assert not out.exists(), "an invalid input must not leave any output behind"
        if UPDATE:
            expected_txt.write_text(stderr)
        assert stderr == expected_txt.read_text()
        return
    assert code == 0, stderr
    got = _tree(out)
    if UPDATE:
        shutil.rmtree(expected_dir, ignore_errors=True)
        shutil.copytree(out, expected_dir)
    assert got == _tree(expected_dir)


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("errors-")])
def test_golden_is_stable_under_input_order(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code_a, _ = _render(case, tmp_path / "a", monkeypatch)
    code_b, _ = _render(case, tmp_path / "b", monkeypatch, shuffle_seed=7)
    assert code_a == code_b == 0
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("errors-")])
def test_golden_manifests_validate(
    case: str, manifest_validator_factory, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    validator = manifest_validator_factory(PROVIDER.get(_cloud(case), "azure"))
    docs = []
    for path in sorted((GOLDEN / case / "expected").rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    assert docs
    validator.assert_valid(docs, context=case)


@pytest.mark.skipif(
    shutil.which("kubectl") is None and os.environ.get("CI") != "true", reason="kubectl not installed"
)
@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("errors-")])
def test_golden_bundles_build_with_kustomize(case: str) -> None:
    bundles = sorted(p.parent for p in (GOLDEN / case / "expected").rglob("kustomization.yaml"))
    assert bundles
    for bundle in bundles:
        listed = yaml.safe_load((bundle / "kustomization.yaml").read_text())["resources"]
        result = subprocess.run(
            ["kubectl", "kustomize", str(bundle)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        built = [d for d in yaml.safe_load_all(result.stdout) if d]
        assert len(built) == len(listed)


def test_render_is_identical_across_hash_seeds(tmp_path: Path) -> None:
    """Whole CLI process, different PYTHONHASHSEED and input order: byte-identical trees."""
    exe = Path(sys.executable).with_name("kaito-gen")
    cases = [c for c in CASES if not c.startswith("errors-") and not _args(c)]
    trees = []
    for seed, order in (("1", 1), ("4242", -1)):
        out = tmp_path / f"out-{seed}"
        sources = [str(GOLDEN / c / "input") for c in cases][::order]
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [str(exe), "render", *sources, "-o", str(out), "-q"],
            capture_output=True,
            text=True,
            env=env,
            cwd=GOLDEN,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        trees.append(_tree(out))
    assert trees[0] == trees[1]
    assert len(trees[0]) > 20
