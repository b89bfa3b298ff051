"""End to end through the installed `kaito-gen` script in a temporary git repository:
render, commit, edit a workspace, then `render --check` fails with the diff and `diff --base HEAD`
names the edit. Also runs the GitHub action's diff step script as written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[3]
KAITO_GEN = Path(sys.executable).parent / "kaito-gen"
ACTION = REPO / ".github" / "actions" / "kaito-gen" / "action.yml"

CHAT = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: chat
  namespace: ml
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: chat
inference:
  preset:
    name: phi-3-mini-4k-instruct
"""
OTHER = CHAT.replace("name: chat", "name: other").replace("apps: chat", "apps: other")
BIGGER = "Standard_NC48ads_A100_v4"


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=env, check=False)


def git(cwd: Path, *args: str) -> None:
    done = run(cwd, "git", "-c", "user.name=kaito-gen-test", "-c", "user.email=test@example.invalid", *args)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repo with two workspaces rendered and committed, then one workspace edited (uncommitted)."""
    if shutil.which("git") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("git is required")
        pytest.skip("git not installed: the end-to-end diff test is SKIPPED")
    assert KAITO_GEN.exists(), f"{KAITO_GEN} missing: run `pip install -e .`"
    root = tmp_path_factory.mktemp("gitops")
    (root / "workspaces").mkdir()
    (root / "workspaces" / "chat.yaml").write_text(CHAT)
    (root / "workspaces" / "other.yaml").write_text(OTHER)
    git(root, "init", "-q", "-b", "main")
    rendered = run(root, str(KAITO_GEN), "render", "workspaces", "-o", "rendered", "-q")
    assert rendered.returncode == 0, rendered.stderr
    clean = run(root, str(KAITO_GEN), "render", "workspaces", "-o", "rendered", "--check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "render")
    (root / "workspaces" / "chat.yaml").write_text(CHAT.replace("Standard_NC24ads_A100_v4", BIGGER))
    return root


def test_check_fails_with_the_diff_after_an_edit(repo: Path) -> None:
    done = run(repo, str(KAITO_GEN), "render", "workspaces", "-o", "rendered", "--check")
    assert done.returncode == 1, done.stderr
    assert "--- a/ml/chat/nodepool-ml-chat.yaml" in done.stdout
    assert f"+        - {BIGGER}" in done.stdout
    assert "ml/other" not in done.stdout
    assert "out of date" in done.stderr


def test_diff_against_head_names_the_edit(repo: Path) -> None:
    text = run(repo, str(KAITO_GEN), "diff", "workspaces", "-o", "rendered", "--base", "HEAD")
    assert text.returncode == 0, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith("~ ml/chat (changed: replacement")
    assert "replacement   NodePool/ml-chat" in text.stdout
    assert f"→ {BIGGER} x1" in text.stdout
    assert "ml/other" not in text.stdout

    as_json = run(
        repo, str(KAITO_GEN), "diff", "workspaces", "-o", "rendered", "--base", "HEAD", "--format", "json"
    )
    payload = json.loads(as_json.stdout)
    assert [b["bundle"] for b in payload["bundles"]] == ["ml/chat"]
    assert payload["unchanged"] == 1

    # The default base is OUTPUT on disk, which still holds the committed render: same answer.
    on_disk = run(repo, str(KAITO_GEN), "diff", "workspaces", "-o", "rendered", "--format", "json")
    assert json.loads(on_disk.stdout)["bundles"] == payload["bundles"]


def test_diff_base_errors_exit_2(repo: Path, tmp_path: Path) -> None:
    bogus = run(repo, str(KAITO_GEN), "diff", "workspaces", "-o", "rendered", "--base", "no-such-ref")
    assert bogus.returncode == 2
    assert "no such directory or git revision" in bogus.stderr
    option = run(repo, str(KAITO_GEN), "diff", "workspaces", "-o", "rendered", "--base=--output=x")
    assert option.returncode == 2 and "Traceback" not in option.stderr
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    broken = run(repo, str(KAITO_GEN), "diff", "workspaces", "-o", "rendered", "--base", str(tmp_path))
    assert broken.returncode == 2 and "not valid YAML" in broken.stderr and "Traceback" not in broken.stderr


def test_the_action_diff_step_script_runs(repo: Path, tmp_path: Path) -> None:
    """The composite action's `kaito-gen diff` step, executed by bash exactly as written."""
    steps = YAML(typ="safe").load(ACTION.read_text())["runs"]["steps"]
    step = next(s for s in steps if s.get("id") == "diff")
    outputs, summary = tmp_path / "out", tmp_path / "summary"
    env = {
        **os.environ,
        "PATH": f"{KAITO_GEN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KAITO_GEN_SOURCES": "workspaces",
        "KAITO_GEN_OUTPUT": "rendered",
        "KAITO_GEN_ARGS": "--cloud azure",
        "KAITO_GEN_BASE": "HEAD",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    done = run(repo, "bash", "-c", step["run"], env=env)
    assert done.returncode == 0, done.stderr
    written = Path(outputs.read_text().strip().split("=", 1)[1])
    body = written.read_text()
    assert body.startswith("<!-- kaito-gen-diff -->") and "| `ml/chat` | changed | **replacement**" in body
    assert summary.read_text() == body
