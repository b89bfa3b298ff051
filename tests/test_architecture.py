"""The tree is the architecture: import contracts (pyproject's [tool.importlinter]) and module size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600  # a module past this is doing two jobs: split it


def test_import_contracts_hold() -> None:
    """Layers (cli > commands > review > compiler > config > catalog > models > core), the compiler
    stages in pipeline order, independent commands, and no import cycle in either package."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "generator"), str(ROOT / "gpu-runtime")])}
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout or "broken" not in proc.stdout, proc.stdout


def test_no_module_is_oversized() -> None:
    big = {}
    for pkg in (ROOT / "generator" / "kaito_gen", ROOT / "gpu-runtime" / "kaito_runtime"):
        for path in pkg.rglob("*.py"):
            lines = path.read_text(encoding="utf-8").count("\n")
            if lines > MAX_LINES:
                big[path.relative_to(ROOT).as_posix()] = lines
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_compiler_stages_exist_in_pipeline_order() -> None:
    """Each stage is a module (or package) of kaito_gen.compiler, and the README's architecture
    section names them in the order the pipeline runs them."""
    from kaito_gen.compiler.pipeline import STAGES

    assert STAGES == ("load", "validate", "resolve", "plan", "emit", "write")
    compiler = ROOT / "generator" / "kaito_gen" / "compiler"
    for stage in STAGES:
        assert (compiler / f"{stage}.py").is_file() or (compiler / stage / "__init__.py").is_file(), stage
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    positions = [readme.index(f"compiler/{stage}") for stage in STAGES]
    assert positions == sorted(positions), positions
