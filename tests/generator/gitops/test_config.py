"""kaito-gen.yaml: mapping onto Target, positioned errors, CLI discovery and flag overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from gitops_support import BASE_CONFIG, REPO_ROOT, Invoke
from kaito_gen.config import load_config, parse_config
from kaito_gen.core.errors import InputError
from kaito_gen.models.target import Target


def _errors(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(InputError) as info:
        parse_config("kaito-gen.yaml", text, tmp_path).source_paths()
    return [d.render() for d in info.value.diagnostics]


def test_example_config_maps_onto_target() -> None:
    loaded = load_config(REPO_ROOT / "examples" / "kaito-gen.yaml")
    target = loaded.target()
    assert target.cloud == "azure"
    assert target.node_class is not None and target.node_class.kind == "AKSNodeClass"
    assert target.runtime_image == "ghcr.io/kaito-gen/kaito-runtime:0.1.0"
    assert target.gitops.flavour == "argocd"
    assert loaded.config.gitops.argocd is not None
    assert loaded.config.gitops.argocd.repo_url.startswith("https://")
    assert loaded.output_path() == (REPO_ROOT / "examples" / "rendered").absolute()


def test_minimal_config_keeps_target_defaults(tmp_path: Path) -> None:
    loaded = parse_config("kaito-gen.yaml", "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\n", tmp_path)
    assert loaded.target() == Target()


def test_unknown_key_is_positioned_with_a_hint(tmp_path: Path) -> None:
    text = BASE_CONFIG + "gitops:\n  flavour: flux\n  flux:\n    intervall: 5m\n"
    (message,) = _errors(text, tmp_path)
    assert message.startswith("kaito-gen.yaml:9:5: error: gitops.flux.intervall: unknown field 'intervall'")
    assert "did you mean 'interval'" in message


def test_bad_values_are_positioned(tmp_path: Path) -> None:
    text = BASE_CONFIG + "cloud: gcp\ngitops:\n  flavour: argocd\nkubernetesVersion: 1.32\n"
    messages = _errors(text, tmp_path)
    joined = "\n".join(messages)
    assert "kaito-gen.yaml:6:1: error: cloud: 'gcp' is not allowed" in joined
    assert "kaito-gen.yaml:7:1: error: gitops: " in joined and "needs an `argocd:` section" in joined
    assert "kaito-gen.yaml:9:1: error: kubernetesVersion: must be a string" in joined
    assert 'quote it: "1.32"' in joined


def test_flux_durations_and_names_are_checked(tmp_path: Path) -> None:
    text = (
        BASE_CONFIG + "gitops:\n  flux:\n    timeout: 30 minutes\n    sourceRef:\n      name: Flux_System\n"
    )
    joined = "\n".join(_errors(text, tmp_path))
    assert "kaito-gen.yaml:8:5: error: gitops.flux.timeout" in joined
    assert "kaito-gen.yaml:10:7: error: gitops.flux.sourceRef.name" in joined


def test_glob_that_matches_nothing_points_at_its_entry(tmp_path: Path) -> None:
    text = "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\nsources:\n  - ws/*.yaml\n  - nothing/*.yml\n"
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "a.yaml").write_text("x: 1\n")
    (message,) = _errors(text, tmp_path)
    assert message.startswith(
        "kaito-gen.yaml:5:5: error: sources[1]: source glob 'nothing/*.yml' matches nothing"
    )


def test_two_documents_and_syntax_errors(tmp_path: Path) -> None:
    (two,) = _errors(BASE_CONFIG + "---\n" + BASE_CONFIG, tmp_path)
    assert "kaito-gen.yaml:7:1: error: expected exactly one YAML document, found 2" in two
    (syntax,) = _errors("apiVersion: [\n", tmp_path)
    assert syntax.startswith("kaito-gen.yaml:2:1: error: YAML syntax error")


def test_render_with_no_arguments_uses_the_config(repo: Path, invoke: Invoke) -> None:
    (repo / "kaito-gen.yaml").write_text(BASE_CONFIG + "runtime:\n  tag: 0.2.0\n")
    result = invoke("render", "-q")
    assert result.exit_code == 0, result.stderr
    sts = yaml.safe_load(
        (repo / "rendered/default/workspace-phi-3-mini/statefulset-workspace-phi-3-mini.yaml").read_text()
    )
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"].endswith("kaito-runtime:0.2.0")
    # flags override the config
    result = invoke("render", "-q", "--runtime-tag", "0.3.0", "-o", "other")
    assert result.exit_code == 0, result.stderr
    assert (
        "kaito-runtime:0.3.0"
        in (repo / "other/default/workspace-phi-3-mini/statefulset-workspace-phi-3-mini.yaml").read_text()
    )
    assert (repo / "rendered").is_dir()
    # --check against the config's output
    assert invoke("render", "--check", "-q", "--runtime-tag", "0.2.0").exit_code == 0
    assert invoke("render", "--check", "-q").exit_code == 0
    assert invoke("render", "--check", "-q", "--runtime-tag", "9.9.9").exit_code == 1


def test_bad_config_exits_2_with_positions(repo: Path, invoke: Invoke) -> None:
    (repo / "kaito-gen.yaml").write_text(BASE_CONFIG + "clod: azure\n")
    result = invoke("validate")
    assert result.exit_code == 2
    assert "kaito-gen.yaml:6:1: error: clod: unknown field 'clod'" in result.stderr
    assert "did you mean 'cloud'" in result.stderr
    assert "Traceback" not in result.output


def test_explicit_config_and_missing_sources(repo: Path, invoke: Invoke) -> None:
    result = invoke("render", "--config", "nope.yaml")
    assert result.exit_code == 2 and "--config nope.yaml: no such file" in result.stderr
    (repo / "c.yaml").write_text("apiVersion: kaito-gen.io/v1alpha1\nkind: Config\n")
    result = invoke("render", "--config", "c.yaml")
    assert result.exit_code == 2 and "no SOURCES given" in result.stderr


def test_json_summary_and_plain_output(repo: Path, invoke: Invoke) -> None:
    (repo / "kaito-gen.yaml").write_text(BASE_CONFIG)
    result = invoke("render", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["gitops"] == "none" and summary["output"].endswith("rendered")
    assert "default/workspace-phi-3-mini" in summary["bundles"]
    check = invoke("render", "--check", "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["upToDate"] is True
    # Not a terminal: no colour codes, no progress lines.
    plain = invoke("render")
    assert "\x1b[" not in plain.output and "…" not in plain.stderr
    assert "wrote 3 bundles" in plain.stderr


def test_gitops_flag_without_config(repo: Path, invoke: Invoke) -> None:
    result = invoke("render", "workspaces", "-o", "out", "--gitops", "flux")
    assert result.exit_code == 2 and "needs a kaito-gen.yaml with a gitops section" in result.stderr
