"""Catalog table tests: every KAITO.md §2.3 row (Kaito v0.12) is in presets/models.yaml with the same
figures, legacy aliases and pins match, and an unpinned model warns (or fails with --require-pinned)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from kaito_gen.cli import cli as main
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.config import Config
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()
KAITO_MD = Path(__file__).resolve().parents[3] / "shared" / "reference" / "KAITO.md"
_ROW = re.compile(
    r"^\| (\d+) \| (\S+) \| (\S+) \| ([\d.]+)Gi \| (\d+)Gi \| (\d+) \| (\w+) · (\d+) \| (\S+) \|(?: [^|]+ \|){3} (\S+) \|"
)


def kaito_rows() -> list[tuple[str, ...]]:
    rows = [m.groups() for line in KAITO_MD.read_text().splitlines() if (m := _ROW.match(line))]
    assert len(rows) == 60, len(rows)
    return rows


def kaito_pins() -> dict[str, str]:
    """alias → first 8 hex of Kaito's pin, from the 'Legacy aliases and pins' paragraph."""
    text = KAITO_MD.read_text()
    para = text[text.index("Legacy aliases and pins") : text.index("Transformers run params")]
    pins: dict[str, str] = {}
    for names, commits in re.findall(
        r"`([a-z0-9.\-{},]+)`(?:\s\([^)]*\))?\s((?:[0-9a-f]{8}(?: / )?)+)", para
    ):
        if "{" in names:
            head, alts = names.split("{")
            expanded = [head + a + alts.split("}")[1] for a in alts.split("}")[0].split(",")]
        else:
            expanded = [names]
        for name, commit in zip(expanded, commits.split(" / "), strict=True):
            pins[name] = commit
    return pins


TRANSFORMERS_BEYOND_KAITO = frozenset({"microsoft/Phi-4-mini-instruct"})


@pytest.mark.parametrize("row", kaito_rows(), ids=lambda r: r[1])
def test_row_matches_kaito(row: tuple[str, ...]) -> None:
    _n, repo, alias, weights, disk, ctx, attention, bpt, quant, tfs = row
    model = CATALOG.find_model(repo)
    assert model is not None, repo
    assert model.hf_repo == repo
    assert model.weights_gib == Decimal(weights)
    assert model.disk_gib == int(disk)
    assert model.context_length == int(ctx)
    assert model.attention == attention
    assert model.kv_bytes_per_token == int(bpt)
    assert (model.quantization or "-") == quant
    # Kaito's TFS column, plus the models kaito-gen's transformers 5.x runtime serves beyond Kaito
    # (each proved by a tiny-model loader test in tests/runtime/serve/test_serve_catalog_archs.py).
    tfs_here = tfs == "Y" or repo in TRANSFORMERS_BEYOND_KAITO
    assert model.runtime.transformers == tfs_here
    assert ("transformers" in model.supported_engines) == tfs_here
    if repo in TRANSFORMERS_BEYOND_KAITO:
        assert model.default_engine == "vllm"  # Kaito's engine stays the default
    assert "vllm" in model.supported_engines and model.engines_reason
    expected_name = alias if alias != "-" else repo.rsplit("/", 1)[1].lower()
    assert model.name == expected_name
    if alias != "-":
        assert CATALOG.find_model(alias) is model


def test_65_models_and_every_legacy_pin() -> None:
    assert len(CATALOG.models) == 65
    pins = kaito_pins()
    assert len(pins) == 25, sorted(pins)
    for alias, prefix in pins.items():
        model = CATALOG.find_model(alias)
        assert model is not None, alias
        assert model.pinned and model.revision.startswith(prefix), alias
    unpinned = sorted(m.name for m in CATALOG.models.values() if not m.pinned)
    assert len(unpinned) == 35
    assert all(m.revision == "unpinned" for m in CATALOG.models.values() if not m.pinned)


def test_presets_list_shows_every_model() -> None:
    result = CliRunner().invoke(main, ["presets", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()[1:]
    assert len(lines) == 65
    assert any(line.startswith("qwen3.5-9b ") and line.endswith("unpinned") for line in lines)
    assert any(line.startswith("phi-4 ") and "187ef034" in line for line in lines)


WS = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
  annotations:
    kaito.sh/runtime: vllm
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: ws
inference:
  preset:
    name: {model}
"""


def _compile(model: str, target: Target):
    docs, problems = parse_documents("ws.yaml", WS.format(model=model))
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, target)


def test_unpinned_model_warns_with_the_pin_command() -> None:
    compiled = _compile("Qwen/Qwen3.5-9B", Target())
    found = [d for d in compiled.diagnostics if d.code == "unpinned"]
    assert len(found) == 1 and not found[0].is_error
    assert "kaito-gen presets pin qwen3.5-9b" in found[0].hint
    assert found[0].pos.line == 15
    assert compiled.ok


def test_require_pinned_makes_it_an_error() -> None:
    compiled = _compile("qwen3.5-9b", Target(require_pinned=True))
    assert not compiled.ok
    assert [d.code for d in compiled.diagnostics if d.is_error] == ["unpinned"]
    assert not [d for d in _compile("phi-4", Target(require_pinned=True)).diagnostics if d.code == "unpinned"]


def test_require_pinned_from_config_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config.model_validate(
        {"apiVersion": "kaito-gen.io/v1alpha1", "kind": "Config", "requirePinned": True}
    )
    assert cfg.require_pinned is True
    (tmp_path / "ws.yaml").write_text(WS.format(model="qwen3.5-9b"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(main, ["render", "ws.yaml", "-o", "out"])
    assert ok.exit_code == 0, ok.output
    assert "kaito-gen presets pin qwen3.5-9b" in ok.output
    bad = runner.invoke(main, ["render", "--require-pinned", "ws.yaml", "-o", "out2"])
    assert bad.exit_code == 2, bad.output
    assert "no pinned revision" in bad.output
