"""Golden diff output with values (text and markdown) for four edits of one Workspace, compiled by the
real pipeline: a replica change, a model change, a ConfigMap edit and a Secret reference change (plus
a Secret data change, whose values must never appear).

Regenerate after an intended change: UPDATE_GOLDEN=1 pytest tests/generator/diff/test_diff_values.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from kaito_gen.catalog.presets import PresetCatalog
from kaito_gen.compiler.load import load, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.models.target import Target
from kaito_gen.review.diff import classify
from kaito_gen.review.diffrender import render_json, render_markdown, render_text
from kaito_gen.review.values import parse_command_line, value_changes

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
OLD_TOKEN, NEW_TOKEN = "hf_oldSECRETvalue", "hf_newSECRETvalue"
BASE = f"""\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: chat
  namespace: ml
resource:
  instanceType: Standard_NC24ads_A100_v4
  count: 1
  labelSelector:
    matchLabels:
      apps: chat
inference:
  preset:
    name: phi-3-mini-4k-instruct
    presetOptions:
      modelAccessSecret: hf-token
  config: chat-config
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: chat-config
  namespace: ml
data:
  inference_config.yaml: |
    vllm:
      max-model-len: 4096
      gpu-memory-utilization: 0.9
---
apiVersion: v1
kind: Secret
metadata:
  name: hf-token
  namespace: ml
type: Opaque
stringData:
  HF_TOKEN: {OLD_TOKEN}
"""
CASES = {
    "replicas": BASE.replace("count: 1", "count: 2"),
    "model": BASE.replace("phi-3-mini-4k-instruct", "phi-3-mini-128k-instruct"),
    "configmap": BASE.replace(
        "max-model-len: 4096", "max-model-len: 2048\n      enable-prefix-caching: true"
    ),
    "secret-ref": BASE.replace("hf-token", "hf-token-v2").replace(OLD_TOKEN, NEW_TOKEN),
    "secret-data": BASE.replace(OLD_TOKEN, NEW_TOKEN),
}


@pytest.fixture(scope="module")
def catalog() -> PresetCatalog:
    return load_presets()


def render(folder: Path, catalog: PresetCatalog, text: str) -> dict[str, str]:
    folder.mkdir()
    (folder / "ws.yaml").write_text(text)
    compiled = compile_inputs(load([folder], base=folder), catalog, Target(allow_secrets=True))
    assert compiled.ok, compiled.diagnostics
    return compiled.files


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_diff_with_values(case: str, tmp_path: Path, catalog: PresetCatalog) -> None:
    report = classify(
        render(tmp_path / "a", catalog, BASE), render(tmp_path / "b", catalog, CASES[case]), catalog
    )
    outputs = {"txt": render_text(report), "md": render_markdown(report)}
    for ext, text in outputs.items():
        path = GOLDEN / f"{case}.{ext}"
        if UPDATE:
            path.write_text(text)
        assert path.read_text() == text, f"{path.name} differs (UPDATE_GOLDEN=1 to regenerate)"
    # No Secret value, nor its base64 or a digest of it, in any face of the report.
    everything = "\n".join([*outputs.values(), render_json(report)])
    for token in (OLD_TOKEN, NEW_TOKEN):
        raw = token.encode()
        for leak in (
            token,
            base64.b64encode(raw).decode(),
            *(hashlib.new(h, raw).hexdigest() for h in ("sha256", "sha1", "md5")),
        ):
            assert leak not in everything, case


def test_golden_files_show_old_and_new_values() -> None:
    """What a reviewer must read in each case (guards the golden files against a careless update)."""
    expected = {
        "replicas": ["~ spec.replicas: 1 → 2", "~ nodes: 1 → 2", "Cost change: $/h 3.67 → 7.35"],
        "model": ["args --model: microsoft/Phi-3-mini-4k-instruct → microsoft/Phi-3-mini-128k-instruct"],
        "configmap": ["~ data.inference_config.yaml:", "-  max-model-len: 4096", "+  max-model-len: 2048"],
        "secret-ref": ["volumes[hf-token].secret.secretName: hf-token → hf-token-v2"],
        "secret-data": ["~ stringData.HF_TOKEN: (secret data changed)"],
    }
    for case, needles in expected.items():
        for ext in ("txt", "md"):
            text = (GOLDEN / f"{case}.{ext}").read_text()
            for needle in needles:
                assert needle in text, (case, ext, needle)
    md = (GOLDEN / "model.md").read_text()
    assert md.count("<details>") == md.count("</details>") == 1 and "```diff" in md


def test_json_carries_raw_values(tmp_path: Path, catalog: PresetCatalog) -> None:
    report = classify(
        render(tmp_path / "a", catalog, BASE), render(tmp_path / "b", catalog, CASES["replicas"]), catalog
    )
    payload = json.loads(render_json(report))
    values = [v for c in payload["bundles"][0]["changes"] for v in c["values"]]
    assert {"op": "~", "path": "spec.replicas", "old": 1, "new": 2, "secret": False} in values
    cost = {k: Decimal(v).quantize(Decimal("0.01")) for k, v in payload["costPerHour"].items()}
    assert cost == {"before": Decimal("3.67"), "after": Decimal("7.35")}


COMMAND_LINES = [
    (["--model", "a", "--trust-remote-code", "--port=5000"], ({"--model": ["a"], "--trust-remote-code": [None], "--port": ["5000"]}, [])),
    (["serve", "m", "--x", "-1", "--", "--y"], ({"--x": ["-1"]}, ["serve", "m", "--y"])),
    (["--lora", "a", "--lora", "b"], ({"--lora": ["a", "b"]}, [])),
]  # fmt: skip


@pytest.mark.parametrize(("tokens", "expected"), COMMAND_LINES)
def test_parse_command_line(tokens: list[str], expected: tuple[object, object]) -> None:
    assert parse_command_line(tokens) == expected


def test_args_forms_and_positionals() -> None:
    def pod(args: list[str]) -> dict[str, object]:
        return {"spec": {"containers": [{"name": "c", "args": args}]}}

    changes = value_changes("Pod", pod(["run", "--model=a", "--v"]), pod(["run2", "--model", "b"]))
    shown = {(c.op, c.arg, c.old, c.new) for c in changes}
    assert shown == {("~", "#1", "run", "run2"), ("~", "--model", "a", "b"), ("-", "--v", None, None)}
    (same,) = value_changes("Pod", pod(["--model=a"]), pod(["--model", "a"]))
    assert same.arg == "(order or --flag=value form)"


def test_secret_maps_are_masked_even_when_added_whole() -> None:
    old = {"kind": "Secret", "metadata": {"name": "s"}}
    new = {**old, "data": {"k": "c2VjcmV0"}, "stringData": {"x": "secret"}}
    changes = value_changes("Secret", old, new)
    assert {(c.op, c.path, c.secret) for c in changes} == {("+", "data.k", True), ("+", "stringData.x", True)}
    assert all(c.old is None and c.new is None for c in changes)
