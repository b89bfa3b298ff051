"""A Workspace naming a model no preset table holds: positioned at `preset.name`, and for a Hugging
Face id (Kaito v0.12 accepts any `org/model`) the hint gives the exact `kaito-gen presets add` command."""

from __future__ import annotations

import pytest
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.core.errors import render_diagnostics
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()

WORKSPACE = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: ws
{mode}:
  preset:
    name: {name}
"""
TUNING_TAIL = """\
  method: qlora
  input:
    urls: ["https://example.com/data.jsonl"]
  output:
    image: myregistry.azurecr.io/adapters/tuned:1
    imagePushSecret: push
"""
OFFLINE = ": a Hugging Face id that is not in the preset tables (Kaito would fetch its config from the Hub; kaito-gen compiles offline)"


def rendered(mode: str, name: str) -> str:
    text = WORKSPACE.format(mode=mode, name=name) + (TUNING_TAIL if mode == "tuning" else "")
    docs, problems = parse_documents("ws.yaml", text)
    compiled = compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, Target())
    errors = [d for d in compiled.diagnostics if d.is_error and d.code == "preset"]
    assert len(errors) == 1, render_diagnostics(list(compiled.diagnostics))
    return render_diagnostics(errors)


# (id, mode, preset name, the error line, the hint line)
CASES = [
    (
        "hf-id",
        "inference",
        "acme/Foo-7B-Instruct",
        f"ws.yaml:13:5: error: inference.preset.name: Unsupported inference preset name 'acme/Foo-7B-Instruct'{OFFLINE}",
        "run `kaito-gen presets add acme/Foo-7B-Instruct` to add it to presets/models.yaml, pinned to its current commit",
    ),
    (
        "hf-id-tuning",
        "tuning",
        "acme/Bar_2",
        f"ws.yaml:13:5: error: tuning.preset.name: Unsupported tuning preset name 'acme/Bar_2'{OFFLINE}",
        "run `kaito-gen presets add acme/Bar_2` to add it",
    ),
    (
        "hf-id-close-to-a-catalog-repo",
        "inference",
        "Qwen/Qwen3-8B-AW",
        f"ws.yaml:13:5: error: inference.preset.name: Unsupported inference preset name 'Qwen/Qwen3-8B-AW'{OFFLINE}",
        "did you mean 'Qwen/Qwen3-8B-AWQ'? Otherwise run `kaito-gen presets add Qwen/Qwen3-8B-AW` to add it",
    ),
    (
        "short-name-typo",
        "inference",
        "phi-3-mini-4k-instruc",
        "ws.yaml:13:5: error: inference.preset.name: Unsupported inference preset name 'phi-3-mini-4k-instruc'",
        "did you mean 'phi-3-mini-4k-instruct'?",
    ),
    (
        "short-name-unknown",
        "inference",
        "zzz",
        "ws.yaml:13:5: error: inference.preset.name: Unsupported inference preset name 'zzz'",
        "run `kaito-gen presets list`; add models with --presets DIR",
    ),
]


@pytest.mark.parametrize(("mode", "name", "error", "hint"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unknown_preset_is_positioned_with_the_add_command(
    mode: str, name: str, error: str, hint: str
) -> None:
    out = rendered(mode, name)
    first, _, rest = out.partition("\n")
    assert first == error + " [preset]" or first == error, out
    assert hint in rest, out
    if "/" not in name:
        assert "presets add" not in out


def test_a_catalog_hf_id_needs_no_add() -> None:
    docs, problems = parse_documents("ws.yaml", WORKSPACE.format(mode="inference", name="microsoft/phi-4"))
    compiled = compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, Target())
    assert [d for d in compiled.diagnostics if d.code == "preset"] == []
