"""Fixtures for the repo-config / GitOps / explain / schema tests: a throw-away Git-style
repository (workspaces + kaito-gen.yaml) and an in-process CLI runner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from gitops_support import SEEDS, Invoke
from kaito_gen.cli import cli


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root holding workspaces/seeds.yaml; the working directory for the test."""
    (tmp_path / "workspaces").mkdir()
    shutil.copy(SEEDS, tmp_path / "workspaces" / "seeds.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    return tmp_path


@pytest.fixture
def invoke() -> Invoke:
    def run(*args: str) -> Result:
        result = CliRunner().invoke(cli, list(args))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


@pytest.fixture
def kubectl() -> str:
    """The kubectl binary (kustomize builds); skipped loudly without it, failed under CI=true."""
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("kubectl is required under CI=true (kustomize builds)", pytrace=False)
        pytest.skip("kubectl not installed: kustomize builds are SKIPPED")
    return found
