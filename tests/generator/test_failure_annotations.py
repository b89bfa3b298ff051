"""`--format github|sarif` also for failures outside compilation: a bad kaito-gen.yaml (positioned
diagnostics), a usage error (no file), an invalid --presets table. The run's exit code and the
text on stderr stay as they are; stdout gets the annotations."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
KAITO_GEN = Path(sys.executable).parent / "kaito-gen"
COMMAND = re.compile(r"^::(?P<cmd>error|warning)(?: (?P<props>[^:]*))?::(?P<msg>[^\r\n]*)$")
WORKSPACE = sorted((REPO / "examples" / "workspaces").glob("*.yaml"))


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAITO_GEN), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def github(stdout: str) -> list[tuple[str, dict[str, str], str]]:
    out = []
    for line in stdout.splitlines():
        match = COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        props = dict(item.split("=", 1) for item in (match["props"] or "").split(",") if item)
        out.append((match["cmd"], props, match["msg"]))
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    shutil.copy(WORKSPACE[0], tmp_path / "ws")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no YAML here\n")
    (tmp_path / "bad.yaml").write_text("sources: [ws]\noutptu: out\n")
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "models.yaml").write_text("models:\n  - name: 3\n")
    return tmp_path


@pytest.mark.parametrize("command", [["validate"], ["render", "-o", "out"]], ids=["validate", "render"])
@pytest.mark.parametrize(
    ("args", "file", "message"),
    [
        (["--config", "bad.yaml"], "bad.yaml", "outptu"),
        (["empty"], None, "no YAML documents found in empty"),
        (["ws", "--presets", "presets"], "presets/models.yaml", ""),
    ],
    ids=["bad-config", "usage", "bad-presets"],
)
def test_failures_outside_compilation_are_annotated(
    repo: Path, command: list[str], args: list[str], file: str | None, message: str
) -> None:
    done = run(repo, *command, *args, "--format", "github")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip(), "the text report stays on stderr"
    found = github(done.stdout)
    assert found and all(cmd == "error" for cmd, _, _ in found), done.stdout
    if file is None:
        ((_, props, _msg),) = found
        assert "file" not in props and "line" not in props and props["title"] == "kaito-gen usage"
    else:
        assert all(props["file"] == file and int(props["line"]) >= 1 for _, props, _ in found), found
    assert any(message in msg for _, _, msg in found), found

    sarif = run(repo, *command, *args, "--format", "sarif")
    assert sarif.returncode == 2, sarif.stderr
    log = json.loads(sarif.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    assert len(results) == len(found)
    assert all(("locations" in r) == (file is not None) for r in results)
    assert not (repo / "out").exists()


def test_text_format_prints_nothing_on_stdout(repo: Path) -> None:
    done = run(repo, "validate", "empty")
    assert done.returncode == 2
    assert done.stdout == "" and "no YAML documents found" in done.stderr
