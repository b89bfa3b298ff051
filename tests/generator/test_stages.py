"""Per-stage table tests: load, validate, resolve, plan, write — pure functions, no mocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.compiler.plan import nodepool_name
from kaito_gen.compiler.rules import dataset_url_problem, image_ref_problem
from kaito_gen.compiler.write import MARKER, read_tree, write
from kaito_gen.core.errors import OutputError, PresetError
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()

BASE = """\
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
inference:
  preset:
    name: phi-3-mini-4k-instruct
"""


def compile_text(text: str, target: Target | None = None):
    docs, problems = parse_documents("ws.yaml", text)
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, target or Target())


def errors(text: str, target: Target | None = None) -> list[str]:
    return [f"{d.pos.line}:{d.message}" for d in compile_text(text, target).diagnostics if d.is_error]


# --- load -------------------------------------------------------------------------------------------


def test_positions_point_at_keys_and_items() -> None:
    docs, problems = parse_documents("f.yaml", "a: 1\nb:\n  - x: yes\n  - 0x10\n---\nc: 2\n")
    assert not problems
    assert docs[0].positions[("b", 0, "x")] == (3, 5)
    assert docs[0].data == {"a": 1, "b": [{"x": "yes"}, 16]}  # YAML 1.2: yes stays a string
    assert docs[1].index == 1 and docs[1].line == 6
    assert str(docs[0].pos(("b", 1, "missing"))) == "f.yaml:4:5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: [1\n", "YAML syntax error"),
        ("base: &b {x: 1}\nc:\n  <<: *b\n", "merge keys"),
    ],
    ids=["duplicate-key", "syntax", "merge-key"],
)
def test_yaml_problems_are_positioned(text: str, message: str) -> None:
    _, problems = parse_documents("f.yaml", text)
    assert any(message in p.message and p.pos.line > 0 for p in problems)


# --- validate / resolve: one row per rule -----------------------------------------------------------

RULES = [
    (
        "no-resource",
        lambda t: t.replace(
            "resource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n    matchLabels:\n      apps: ws\n",
            "",
        ),
        "required field 'resource'",
    ),
    ("both-jobs", lambda t: t + "tuning:\n  method: lora\n", "not both"),
    ("neither-job", lambda t: t.split("inference:")[0], "not neither"),
    ("bad-name", lambda t: t.replace("name: ws\n", "name: WS_1\n"), "DNS-1123 label"),
    ("unknown-sku", lambda t: t.replace("A100_v4", "A100_v9"), "not a known GPU SKU"),
    ("wrong-cloud-sku", lambda t: t.replace("Standard_NC24ads_A100_v4", "p4d.24xlarge"), "aws instance type"),
    ("amd-sku", lambda t: t.replace("Standard_NC24ads_A100_v4", "Standard_NG32ads_V620_v1"), "needs NVIDIA"),
    (
        "unknown-preset",
        lambda t: t.replace("phi-3-mini-4k-instruct", "phi-9"),
        "Unsupported inference preset",
    ),
    ("deprecated-preset", lambda t: t.replace("phi-3-mini-4k-instruct", "phi-2"), "deprecated"),
    (
        "no-transformers",
        lambda t: t.replace("phi-3-mini-4k-instruct", "ministral-3-3b-instruct").replace(
            "  namespace: ml\n", "  namespace: ml\n  annotations:\n    kaito.sh/runtime: transformers\n"
        ),
        "Transformers runtime",
    ),
    (
        "too-big",
        lambda t: (
            t.replace("Standard_NC24ads_A100_v4", "Standard_NV36ads_A10_v5")
            .replace("phi-3-mini-4k-instruct", "phi-4")
            .replace(
                "  namespace: ml\n", "  namespace: ml\n  annotations:\n    kaito.sh/runtime: transformers\n"
            )
        ),
        "Insufficient total GPU memory",
    ),
    (
        "gated",
        lambda t: t.replace("phi-3-mini-4k-instruct", "llama-3.1-8b-instruct"),
        "gated on Hugging Face",
    ),
    ("reserved-labels", lambda t: t.replace("apps: ws", "kaito.sh/workspace: ws"), "non-reserved label"),
    (
        "bad-annotation",
        lambda t: t.replace(
            "  namespace: ml\n", "  namespace: ml\n  annotations:\n    kaito.sh/performance-mode: fast\n"
        ),
        "invalid value",
    ),
    ("preset-and-template", lambda t: t + "  template:\n    spec: {}\n", "cannot be set at the same time"),
    (
        "partition-nap",
        lambda t: t.replace(
            "  labelSelector:", "  partition:\n    mode: mig\n    profile: 1g.10gb\n  labelSelector:"
        ),
        "only supported with BYO",
    ),
    ("missing-config", lambda t: t + "  config: nope\n", "not among the inputs"),
    (
        "strength-range",
        lambda t: t + "  adapters:\n  - source: {name: a, image: 'r.io/a:1'}\n    strength: '2'\n",
        "between 0 and 1",
    ),
    (
        "too-many-adapters",
        lambda t: (
            t
            + "  adapters:\n"
            + "".join(f"  - source: {{name: a{i}, image: 'r.io/a:{i}'}}\n" for i in range(11))
        ),
        "at most 10",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), RULES, ids=[r[0] for r in RULES])
def test_rule(case: str, mutate, expected: str) -> None:
    found = errors(mutate(BASE))
    assert any(expected in e for e in found), found


def test_base_workspace_is_valid() -> None:
    assert errors(BASE) == []


def test_bypass_annotation_downgrades_gpu_memory_error() -> None:
    text = BASE.replace("Standard_NC24ads_A100_v4", "Standard_NV36ads_A10_v5").replace(
        "phi-3-mini-4k-instruct", "phi-4"
    )
    text = text.replace(
        "  namespace: ml\n",
        "  namespace: ml\n  annotations:\n    kaito.sh/bypass-resource-checks: ''\n    kaito.sh/runtime: transformers\n",
    )
    compiled = compile_text(text)
    assert compiled.ok
    assert any("Insufficient total GPU memory" in d.message and not d.is_error for d in compiled.diagnostics)


def test_too_big_error_lists_fitting_skus_smallest_first() -> None:
    text = BASE.replace("Standard_NC24ads_A100_v4", "Standard_NV36ads_A10_v5").replace(
        "phi-3-mini-4k-instruct", "phi-4"
    )
    text = text.replace(
        "  namespace: ml\n", "  namespace: ml\n  annotations:\n    kaito.sh/runtime: transformers\n"
    )
    hint = next(d.hint for d in compile_text(text).diagnostics if "Insufficient" in d.message)
    assert hint.startswith("SKUs that fit, smallest first: Standard_NV72ads_A10_v5")


TUNING = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: tune
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels: {{apps: tune}}
tuning:
  preset: {{name: phi-3-mini-4k-instruct}}
  method: {method}
  config: cfg
  input: {{urls: ["https://example.com/d.parquet"]}}
  output: {{image: "r.io/out:1", imagePushSecret: push}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data:
  training_config.yaml: |
{config}
"""


@pytest.mark.parametrize(
    ("method", "config", "expected"),
    [
        ("qlora", "    training_config:\n      LoraConfig: {r: 8}", "needs a QuantizationConfig"),
        ("lora", "    training_config:\n      QuantizationConfig: {load_in_4bit: true}", "must not quantize"),
        (
            "qlora",
            "    training_config:\n      QuantizationConfig: {load_in_4bit: true, load_in_8bit: true}",
            "cannot both be true",
        ),
        (
            "lora",
            "    training_config:\n      LoraConfg: {r: 8}",
            "unknown section training_config.LoraConfg",
        ),
        (
            "lora",
            "    training_config:\n      TrainingArguments: {output_dir: /etc}",
            "must resolve below /mnt",
        ),
        ("lora", "    nothing: here", "top-level `training_config:`"),
        ("lora", "    training_config: [unclosed", "YAML syntax error"),
    ],
    ids=["qlora-no-quant", "lora-quant", "both-bits", "typo-section", "output-dir", "no-root", "syntax"],
)
def test_training_config_rules(method: str, config: str, expected: str) -> None:
    found = errors(TUNING.format(method=method, config=config))
    assert any(expected in e for e in found), found


def test_training_config_errors_point_into_the_configmap() -> None:
    text = TUNING.format(method="lora", config="    training_config: [unclosed")
    diag = next(d for d in compile_text(text).diagnostics if "syntax" in d.message)
    assert diag.pos.line > text.count("\n", 0, text.index("training_config.yaml"))


def test_tuning_job_name_follows_the_spec() -> None:
    cfg = "    training_config:\n      QuantizationConfig: {load_in_4bit: true}"
    a = compile_text(TUNING.format(method="qlora", config=cfg))
    b = compile_text(TUNING.format(method="qlora", config=cfg + "\n      LoraConfig: {r: 16}"))
    job = lambda c: next(p for p in c.files if "/job-" in p)  # noqa: E731
    assert job(a) != job(b)
    assert job(a) == job(compile_text(TUNING.format(method="qlora", config=cfg)))


# --- rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://huggingface.co/datasets/x/resolve/main/a.parquet?download=true", False),
        ("http://example.com/a.csv", False),
        ("ftp://example.com/a", True),
        ("http://localhost/a", True),
        ("http://api.localhost./a", True),
        ("http://169.254.169.254/latest", True),
        ("http://metadata.google.internal/x", True),
        ("http://instance-data.ec2.internal/x", True),
        ("http://10.0.0.1/a", True),
        ("http://192.168.1.1/a", True),
        ("http://[::1]/a", True),
        ("http://[::ffff:127.0.0.1]/a", True),
        ("http://2130706433/a", True),
        ("http://0x7f.1/a", True),
        ("http://0.0.0.0/a", True),
        ("http://user:pw@example.com/a", True),
        ("https:///nohost", True),
    ],
)
def test_dataset_urls(url: str, refused: bool) -> None:
    assert bool(dataset_url_problem(url)) is refused


@pytest.mark.parametrize(
    ("ref", "problem", "fatal"),
    [
        ("myregistry.azurecr.io/adapters/x:0.0.1", False, False),
        ("localhost:5000/a/b@sha256:" + "a" * 64, False, False),
        ("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1", True, False),
        ("not an image", True, True),
        ("r.io/a:tag with space", True, True),
    ],
)
def test_image_refs(ref: str, problem: bool, fatal: bool) -> None:
    got_problem, got_fatal = image_ref_problem(ref)
    assert bool(got_problem) is problem and got_fatal is fatal


def test_nodepool_names_are_hashed_past_63_chars() -> None:
    assert nodepool_name("ml", "ws") == "ml-ws"
    long = nodepool_name("a" * 40, "b" * 40)
    assert len(long) == 63 and long[:53] == ("a" * 40 + "-" + "b" * 40)[:53]
    assert long == nodepool_name("a" * 40, "b" * 40)


# --- presets ----------------------------------------------------------------------------------------


def test_preset_override_and_errors(tmp_path: Path) -> None:
    (tmp_path / "extra.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: kaito-gen.io/v1alpha1
            kind: GpuSkuTable
            skus:
              - {name: Standard_NC24ads_A100_v4, cloud: azure, gpuModel: NVIDIA A100, gpuVendor: nvidia,
                 gpuCount: 1, gpuMemoryGiB: 80, computeCapability: "8.0", nvme: true, pricePerHour: 1.5}
              - {name: my-gpu, cloud: azure, gpuModel: X, gpuVendor: nvidia, gpuCount: 0, gpuMemoryGiB: 8,
                 computeCapability: "8.0", nvme: false}
            """
        )
    )
    with pytest.raises(PresetError) as info:
        load_presets([tmp_path])
    (diag,) = info.value.diagnostics
    assert diag.pos.file.endswith("extra.yaml") and diag.pos.line == 6 and "gpuCount" in str(diag.path)
    (tmp_path / "extra.yaml").write_text(
        (tmp_path / "extra.yaml").read_text().replace("gpuCount: 0", "gpuCount: 1")
    )
    catalog = load_presets([tmp_path])
    sku = catalog.find_sku("standard_nc24ads_a100_v4")
    assert sku is not None and str(sku.price_per_hour) == "1.5"
    assert catalog.find_sku("my-gpu") is not None


def test_preset_duplicate_names_are_positioned(tmp_path: Path) -> None:
    row = "  - {name: g1, cloud: aws, gpuModel: X, gpuVendor: nvidia, gpuCount: 1, gpuMemoryGiB: 8, nvme: false}\n"
    (tmp_path / "dup.yaml").write_text(
        "apiVersion: kaito-gen.io/v1alpha1\nkind: GpuSkuTable\nskus:\n" + row + row
    )
    with pytest.raises(PresetError) as info:
        load_presets([tmp_path])
    assert any("duplicate name" in d.message and d.pos.line == 5 for d in info.value.diagnostics)


# --- write ------------------------------------------------------------------------------------------


def test_write_replaces_the_tree_and_prunes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write({MARKER: "x\n", "ns/a/f.yaml": "a\n", "ns/b/f.yaml": "b\n"}, out)
    write({MARKER: "x\n", "ns/a/f.yaml": "a2\n"}, out)
    assert read_tree(out) == {MARKER: "x\n", "ns/a/f.yaml": "a2\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging leftovers


def test_write_refuses_a_directory_it_does_not_own(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError):
        write({MARKER: "x\n", "a.yaml": "a\n"}, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


# --- purity -----------------------------------------------------------------------------------------


def test_compiler_imports_no_runtime_or_cluster_libraries() -> None:
    code = (
        "import sys, kaito_gen.cli, kaito_gen.compiler.pipeline, kaito_gen.compiler.emit.bundle\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'peft', 'kubernetes', 'yaml', 'kaito_runtime') if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_rendered_trees_and_repo_config_are_never_inputs(tmp_path: Path) -> None:
    """`kaito-gen render .` in a GitOps repo must not read its own output or kaito-gen.yaml."""
    from kaito_gen.compiler.load import load

    (tmp_path / "ws.yaml").write_text(BASE)
    (tmp_path / "kaito-gen.yaml").write_text("apiVersion: kaito-gen.io/v1alpha1\nkind: Config\n")
    out = tmp_path / "rendered"
    compiled = compile_text(BASE)
    write(compiled.files, out)
    inputs = load([tmp_path], base=tmp_path)
    assert [d.file for d in inputs.docs] == ["ws.yaml"]
    # A preset table or config document mixed into the inputs is kaito-gen's own, not an object.
    text = BASE + "---\napiVersion: kaito-gen.io/v1alpha1\nkind: Config\n"
    assert errors(text) == []
