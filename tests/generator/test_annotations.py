"""`--format github` and `--format sarif` of validate and render: the SARIF log validates against
the official SARIF 2.1.0 schema (vendored in tests/data), and every github line parses as a
workflow command under a strict parser that also undoes the runner's escaping."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from kaito_gen.core.errors import Diagnostic, Severity, SourcePos
from kaito_gen.review.annotations import escape_data, escape_property, github_commands, sarif_log

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests" / "data" / "sarif-schema-2.1.0.json").read_text())
KAITO_GEN = Path(sys.executable).parent / "kaito-gen"
TEN = "tests/golden/errors-ten-mistakes/input"
COMMAND = re.compile(r"^::(?P<cmd>error|warning|notice)(?: (?P<props>[^:]*))?::(?P<msg>[^\r\n]*)$")
PROPERTY = re.compile(r"^(?P<key>file|line|col|endLine|endColumn|title)=(?P<value>[^,:]*)$")


def unescape(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """A strict parser of one workflow command: known command and property names, no raw ':' or ','
    inside a property value, no raw CR/LF, and only the runner's %XX escapes."""
    match = COMMAND.match(line)
    assert match, f"not a workflow command: {line!r}"
    props: dict[str, str] = {}
    for item in (match["props"] or "").split(","):
        prop = PROPERTY.match(item)
        assert prop, f"bad property {item!r} in {line!r}"
        assert prop["key"] not in props, f"duplicate property in {line!r}"
        props[prop["key"]] = unescape(prop["value"])
    for part in (match["props"] or "", match["msg"]):
        assert not re.search(r"%(?!25|0D|0A|3A|2C)", part), f"stray % in {line!r}"
    for key in ("line", "col"):
        if key in props:
            assert props[key].isdigit() and int(props[key]) >= 1, line
    return match["cmd"], props, unescape(match["msg"])


NASTY = Diagnostic(
    SourcePos("ws/a,b:c%d.yaml", 3, 7),
    ("spec", "x"),
    "100% wrong:\r\nsecond, line",
    hint="try: a, b",
    code="odd:code,1",
)


def test_escaping_round_trips_through_the_strict_parser(tmp_path: Path) -> None:
    warning = Diagnostic(SourcePos("w.yaml"), (), "no position", severity=Severity.WARNING)
    out = github_commands([NASTY, warning], tmp_path)
    lines = out.splitlines()
    assert len(lines) == 2
    cmd, props, msg = parse_command(lines[1])
    assert (
        cmd == "error" and props["file"] == "ws/a,b:c%d.yaml" and props["line"] == "3" and props["col"] == "7"
    )
    assert props["title"] == "kaito-gen odd:code,1"
    assert msg == "spec.x: 100% wrong:\r\nsecond, line\nhint: try: a, b"
    cmd, props, msg = parse_command(lines[0])
    assert (cmd, props, msg) == ("warning", {"file": "w.yaml", "title": "kaito-gen warning"}, "no position")
    assert escape_data("a%\r\n:,") == "a%25%0D%0A:,"
    assert escape_property("a%\r\n:,") == "a%25%0D%0A%3A%2C"


def test_sarif_validates_against_the_official_schema(tmp_path: Path) -> None:
    absolute = Diagnostic(SourcePos(str(tmp_path / "sub" / "w s.yaml"), 2, 1), (), "m", code="c")
    log = sarif_log([NASTY, absolute], tmp_path)
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    (run,) = log["runs"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["c", "odd:code,1"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    assert uris == ["sub/w%20s.yaml", "ws/a%2Cb%3Ac%25d.yaml"]  # relative to the root, percent-encoded
    first = run["results"][1]
    assert first["level"] == "error" and first["ruleId"] == "odd:code,1"
    assert first["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 7}
    bad = json.loads(json.dumps(log))
    bad["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):  # the schema check can fail
        jsonschema.Draft4Validator(SCHEMA).validate(bad)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAITO_GEN), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("command", [["validate"], ["render", "-o", "never-written"]])
def test_cli_github_and_sarif_on_the_ten_mistakes(command: list[str]) -> None:
    github = run(*command, TEN, "--format", "github")
    assert github.returncode == 2, github.stderr
    parsed = [parse_command(line) for line in github.stdout.splitlines()]
    errors = [p for p in parsed if p[0] == "error"]
    assert len(errors) >= 9
    assert all(p[1]["file"].startswith(f"{TEN}/") and int(p[1]["line"]) >= 1 for p in errors)
    assert {p[1]["file"] for p in errors} == {f"{TEN}/{f.name}" for f in (REPO / TEN).glob("*.yaml")}
    sarif = run(*command, TEN, "--format", "sarif")
    assert sarif.returncode == 2, sarif.stderr
    log = json.loads(sarif.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    results = log["runs"][0]["results"]
    assert len([r for r in results if r["level"] == "error"]) == len(errors)
    assert not (REPO / "never-written").exists()


def test_cli_clean_input_gives_an_empty_sarif_run() -> None:
    done = run("validate", "examples/workspaces", "--format", "sarif")
    assert done.returncode == 0, done.stderr
    log = json.loads(done.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert all(r["level"] != "error" for r in log["runs"][0]["results"])
