"""Fixtures for `kaito-gen status`: a recorded API server on 127.0.0.1 and a command with a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from kaito_gen.commands.status import make_status_command
from status_apiserver import NOW, RecordedApiServer, RunStatus, write_kubeconfig


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kubernetes client honours proxy variables; the recorded server is local.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("KUBECONFIG", raising=False)


@pytest.fixture
def apiserver() -> Iterator[RecordedApiServer]:
    with RecordedApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(apiserver: RecordedApiServer, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", apiserver.url)


@pytest.fixture
def run_status(kubeconfig: Path) -> RunStatus:
    """`run_status("-n", "ml")` → the click Result of `kaito-gen status --kubeconfig <recorded> -n ml`."""
    command = make_status_command(lambda: NOW)

    def run(*args: str, config: Path | None = kubeconfig) -> Result:
        argv = (["--kubeconfig", str(config)] if config is not None else []) + list(args)
        return CliRunner().invoke(command, argv)

    return run
