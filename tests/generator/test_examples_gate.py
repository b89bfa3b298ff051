"""The project's own example passes its own CI gate: `render --config examples/kaito-gen.yaml
--check` exits 0 against the committed examples/rendered, and `make render` renders with
that config (so the two cannot drift apart)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from kaito_gen.cli import cli
from kaito_gen.commands import register

ROOT = Path(__file__).resolve().parents[2]
register(cli)


def test_examples_pass_render_check(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["render", "--config", "examples/kaito-gen.yaml", "--check"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output + result.stderr
    assert (ROOT / "examples" / "rendered" / "_gitops").is_dir()


def test_make_render_uses_the_examples_config() -> None:
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^render:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert match, "no render target"
    assert "kaito-gen render --config examples/kaito-gen.yaml" in match.group(1)
