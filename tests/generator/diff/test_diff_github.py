"""The composite action and the reusable workflow are well-formed (no network: parse and check)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[3]
ACTION = REPO / ".github" / "actions" / "kaito-gen" / "action.yml"
WORKFLOW = REPO / ".github" / "workflows" / "kaito-gen-check.yml"
# YAML 1.2 (ruamel) keeps `on:` a string key; PyYAML would turn it into True.
LOAD = YAML(typ="safe")


def load(path: Path) -> dict[str, Any]:
    data = LOAD.load(path.read_text())
    assert isinstance(data, dict), path
    return data


def test_composite_action_shape() -> None:
    action = load(ACTION)
    assert {"name", "description", "inputs", "runs"} <= set(action)
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/setup-python@v") for u in uses)
    assert any(u.startswith("actions/github-script@v") for u in uses)
    scripts = [s["run"] for s in steps if "run" in s]
    assert all("shell" in s for s in steps if "run" in s), "composite run steps must name a shell"
    assert any("pip install" in r for r in scripts)
    assert any("kaito-gen diff" in r and "--format markdown" in r for r in scripts)
    assert any("kaito-gen render" in r and "--check" in r for r in scripts)
    # The drift gate is the last step: the diff is posted even when the check then fails.
    assert "--check" in scripts[-1]
    for step in steps:
        for value in step.get("with", {}).values():
            for name in re.findall(r"inputs\.([\w-]+)", str(value)):
                assert name in action["inputs"], f"unknown input {name}"


def test_no_expression_is_inlined_in_a_shell_script() -> None:
    """Inputs reach the scripts through env vars only: `${{ }}` in `run:` is a script-injection hole."""
    for step in load(ACTION)["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")


def test_run_scripts_are_valid_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.fail("bash is required")
    for step in load(ACTION)["runs"]["steps"]:
        if "run" in step:
            done = subprocess.run(
                [bash, "-n"], input=step["run"], capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, f"{step.get('name')}: {done.stderr}"


def test_reusable_workflow_shape() -> None:
    workflow = load(WORKFLOW)
    call = workflow["on"]["workflow_call"]
    action_inputs = load(ACTION)["inputs"]
    assert {"sources", "output", "args"} <= set(call["inputs"])
    assert workflow["permissions"]["pull-requests"] == "write"
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    checkout = [s for s in steps if str(s.get("uses", "")).startswith("actions/checkout@v")]
    assert checkout[0]["with"]["fetch-depth"] == 0  # diff --base needs the base commit
    action_path = checkout[1]["with"]["path"]
    (step,) = [s for s in steps if str(s.get("uses", "")).startswith("./")]
    # The action is used from the kaito-gen checkout, at the same path as in this repository.
    assert step["uses"] == f"./{action_path}/{ACTION.parent.relative_to(REPO).as_posix()}"
    for key, value in step["with"].items():
        assert key in action_inputs, f"the action has no input {key}"
        for name in re.findall(r"inputs\.([\w-]+)", str(value)):
            assert name in call["inputs"], f"the workflow has no input {name}"


def test_action_annotates_and_uploads_sarif() -> None:
    steps = load(ACTION)["runs"]["steps"]
    validate = next(s for s in steps if s.get("id") == "validate")
    assert "--format github" in validate["run"] and "--format sarif" in validate["run"]
    (upload,) = [s for s in steps if str(s.get("uses", "")).startswith("github/codeql-action/upload-sarif@v")]
    assert upload["with"]["sarif_file"] == "${{ steps.validate.outputs.sarif }}"
    assert "always()" in upload["if"]
    assert load(WORKFLOW)["permissions"]["security-events"] == "write"


def test_the_action_validate_step_script_runs(tmp_path: Path) -> None:
    """The validate step, executed by bash as written, on the ten-mistakes Workspace: exit 2, one
    workflow command per diagnostic on stdout, and a SARIF log that names the same file."""
    step = next(s for s in load(ACTION)["runs"]["steps"] if s.get("id") == "validate")
    outputs = tmp_path / "out"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KAITO_GEN_SOURCES": "tests/golden/errors-ten-mistakes/input",
        "KAITO_GEN_ARGS": "--cloud azure",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(outputs),
    }
    done = subprocess.run(
        ["bash", "-c", step["run"]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stdout.splitlines()
    assert len([x for x in lines if x.startswith("::error file=tests/golden/errors-ten-mistakes/")]) >= 9
    sarif = Path(outputs.read_text().strip().split("=", 1)[1])
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert len(results) == len(lines)
