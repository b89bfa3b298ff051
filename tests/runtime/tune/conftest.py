"""Fixtures for the tuning, dataset-fetch and adapter-image tests (issue 5).

The tiny models come from tests/runtime/conftest.py (`tiny_model_dir`, `tiny_phi3_dir`), which also runs
the session offline with a private HF_HOME. Registries are real `docker-registry` processes on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tune_support import HTTPServer, Registry, cli_env, run_http_server, run_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1, plain HTTP, htpasswd auth (one per xdist worker)."""
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry on 127.0.0.1 that only speaks TLS (self-signed certificate), htpasswd auth."""
    with run_registry(tmp_path_factory.mktemp("tls-registry"), tls=True) as reg:
        yield reg


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    with run_http_server() as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """CLI environment with a private HOME, so no developer ~/.docker/config.json leaks in."""
    home = tmp_path / "home"
    home.mkdir()
    return cli_env(home)
