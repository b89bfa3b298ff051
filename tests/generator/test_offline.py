"""The compiler stays offline: `render` succeeds with socket creation made to fail."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from kaito_gen.cli import cli

SEEDS = Path(__file__).resolve().parents[1] / "golden" / "seeds" / "input"


class _NoNetwork(OSError):
    pass


def test_render_opens_no_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[object, ...]] = []

    def refuse(*args: object, **kwargs: object) -> socket.socket:
        opened.append(args)
        raise _NoNetwork("network is disabled in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    result = CliRunner().invoke(cli, ["render", str(SEEDS), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert not opened
    assert list((tmp_path / "out").rglob("*.yaml"))
    with pytest.raises(_NoNetwork):
        socket.socket()
