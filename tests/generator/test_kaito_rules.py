"""Kaito's admission rules (KAITO.md §1.7), one table row per rule: the rule's words
from Kaito, an input that breaks it, and the diagnostic kaito-gen gives.

Also: every error at once (a schema error masks no rule error) and no follow-on
warnings from documents that already have errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.compiler.rules import strength_problem
from kaito_gen.core.errors import Diagnostic
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()
GOLDEN = Path(__file__).resolve().parents[1] / "golden"

INFERENCE = """\
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

TUNING = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: tune
  namespace: ml
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: tune
tuning:
  preset:
    name: phi-3-mini-128k-instruct
  method: qlora
  input:
    urls: ["https://example.com/data.jsonl"]
  output:
    image: myregistry.azurecr.io/adapters/tuned:1
    imagePushSecret: push
"""

ADAPTER = "  adapters:\n  - source: {name: a, image: 'r.io/a:1'}\n    strength: '%s'\n"


def diagnostics(text: str, target: Target | None = None, name: str = "ws.yaml") -> list[Diagnostic]:
    docs, problems = parse_documents(name, text)
    compiled = compile_inputs(Inputs(tuple(docs), tuple(problems), (name,)), CATALOG, target or Target())
    return list(compiled.diagnostics)


def errors(text: str, target: Target | None = None) -> list[str]:
    return [f"{d.pos.line}:{d.message}" for d in diagnostics(text, target) if d.is_error]


def test_the_bases_are_valid() -> None:
    assert errors(INFERENCE) == []
    assert errors(TUNING) == []


# (id, Kaito's words, base, mutation, expected diagnostic)
RULES = [
    (
        "name-dns-label",
        "metadata.name must be a DNS-1123 label",
        INFERENCE,
        lambda t: t.replace("name: ws", "name: Ws_1"),
        "must be a DNS-1123 label",
    ),
    (
        "neither",
        "Either Inference or Tuning must be specified, not neither",
        INFERENCE,
        lambda t: t.split("inference:")[0],
        "Either Inference or Tuning must be specified, not neither",
    ),
    (
        "both",
        "…but not both",
        INFERENCE,
        lambda t: t + TUNING.split("\n", 10)[10],
        "Either Inference or Tuning must be specified, not both",
    ),
    (
        "nap-instance-type",
        "NAP on: instanceType required",
        INFERENCE,
        lambda t: t.replace("  instanceType: Standard_NC24ads_A100_v4\n", ""),
        "instanceType is required",
    ),
    (
        "node-image-family",
        "kaito.sh/node-image-family ∈ {azurelinux, ubuntu}",
        INFERENCE,
        lambda t: t.replace(
            "  namespace: ml\n", "  namespace: ml\n  annotations:\n    kaito.sh/node-image-family: x\n"
        ),
        "invalid value 'x'",
    ),
    (
        "performance-mode",
        "kaito.sh/performance-mode ∈ {balanced, interactivity, throughput}",
        INFERENCE,
        lambda t: t.replace(
            "  namespace: ml\n", "  namespace: ml\n  annotations:\n    kaito.sh/performance-mode: fast\n"
        ),
        "invalid value 'fast'",
    ),
    (
        "use-local-weights",
        'kaito.sh/use-local-weights ∈ {"true","false"}',
        INFERENCE,
        lambda t: t.replace(
            "  namespace: ml\n",
            "  namespace: ml\n  annotations:\n    kaito.sh/use-local-weights: yes-please\n",
        ),
        "invalid value 'yes-please'",
    ),
    (
        "unsupported-preset",
        "Unsupported inference preset name X",
        INFERENCE,
        lambda t: t.replace("phi-3-mini-4k-instruct", "phi-3-mini-4k-instruc"),
        "Unsupported inference preset name 'phi-3-mini-4k-instruc'",
    ),
    (
        "reserved-labels",
        "matchLabels must contain at least one non-reserved label",
        INFERENCE,
        lambda t: t.replace("apps: ws", "kaito.sh/workspace: ws"),
        "matchLabels must contain at least one non-reserved label",
    ),
    (
        "partition-nap",
        "GPU partitioning is only supported with BYO nodes",
        INFERENCE,
        lambda t: t.replace(
            "  labelSelector:", "  partition:\n    mode: mig\n    profile: 1g.10gb\n  labelSelector:"
        ),
        "GPU partitioning is only supported with BYO nodes",
    ),
    (
        "unknown-sku",
        "instanceType must be in the cloud's SKU table",
        INFERENCE,
        lambda t: t.replace("Standard_NC24ads_A100_v4", "Standard_NC24ads_A100_v9"),
        "is not a known GPU SKU",
    ),
    (
        "preset-and-template",
        "Preset and Template cannot be set at the same time",
        INFERENCE,
        lambda t: t + "  template:\n    spec: {}\n",
        "Preset and Template cannot be set at the same time",
    ),
    (
        "preset-or-template",
        "Preset or Template must be specified",
        INFERENCE,
        lambda t: t.replace("  preset:\n    name: phi-3-mini-4k-instruct\n", "  config: x\n"),
        "Preset or Template must be specified",
    ),
    (
        "max-adapters",
        "≤ 10 adapters (MaxAdaptersNumber)",
        INFERENCE,
        lambda t: (
            t
            + "  adapters:\n"
            + "".join(f"  - source: {{name: a{i}, image: 'r.io/a:{i}'}}\n" for i in range(11))
        ),
        "at most 10",
    ),
    (
        "adapter-names-unique",
        "adapter source.names unique",
        INFERENCE,
        lambda t: (
            t
            + "  adapters:\n  - source: {name: a, image: 'r.io/a:1'}\n  - source: {name: a, image: 'r.io/a:2'}\n"
        ),
        "duplicate adapter name 'a'",
    ),
    (
        "adapter-image-or-volume",
        "image or volumeSource required",
        INFERENCE,
        lambda t: t + "  adapters:\n  - source: {name: a}\n",
        "exactly one of image or volumeSource",
    ),
    (
        "adapter-no-urls",
        "urls forbidden",
        INFERENCE,
        lambda t: t + "  adapters:\n  - source: {name: a, urls: ['https://e.com/a'], image: 'r.io/a:1'}\n",
        "adapters cannot come from URLs",
    ),
    (
        "strength-above-1",
        "strength must parse as float in [0,1]",
        INFERENCE,
        lambda t: t + ADAPTER % "1.5",
        "between 0 and 1",
    ),
    (
        "strength-negative",
        "strength must parse as float in [0,1]",
        INFERENCE,
        lambda t: t + ADAPTER % "-0.1",
        "between 0 and 1",
    ),
    (
        "strength-not-float",
        "strength must parse as float",
        INFERENCE,
        lambda t: t + ADAPTER % "half",
        "must be a number",
    ),
    (
        "strength-nan",
        "strength must parse as float in [0,1]",
        INFERENCE,
        lambda t: t + ADAPTER % "NaN",
        "must be a number",
    ),
    (
        "missing-config",
        "ConfigMap exists in the Workspace namespace",
        INFERENCE,
        lambda t: t + "  config: nope\n",
        "not among the inputs",
    ),
    (
        "tuning-count",
        "Tuning does not currently support multinode configurations",
        TUNING,
        lambda t: t.replace("  instanceType:", "  count: 2\n  instanceType:"),
        "Tuning does not currently support multinode configurations",
    ),
    (
        "tuning-partition",
        "no partition",
        TUNING,
        lambda t: t.replace(
            "  labelSelector:", "  partition:\n    mode: accelerator\n    count: 1\n  labelSelector:"
        ),
        "tuning does not support GPU partitioning",
    ),
    (
        "tuning-method",
        "method ∈ {lora, qlora}",
        TUNING,
        lambda t: t.replace("qlora", "full"),
        "method 'full' is not supported",
    ),
    (
        "tuning-input-required",
        "input required",
        TUNING,
        lambda t: t.replace('  input:\n    urls: ["https://example.com/data.jsonl"]\n', ""),
        "tuning.input is required",
    ),
    (
        "tuning-input-exactly-one",
        "Exactly one of URLs, Volume, or Image must be specified",
        TUNING,
        lambda t: t.replace("  output:", "    image: r.io/data:1\n  output:"),
        "Exactly one of URLs, Volume, or Image must be specified",
    ),
    (
        "url-scheme",
        "URLs must be http/https with a host",
        TUNING,
        lambda t: t.replace("https://example.com", "ftp://example.com"),
        "scheme 'ftp'",
    ),
    (
        "url-localhost",
        "not localhost",
        TUNING,
        lambda t: t.replace("https://example.com", "http://localhost"),
        "dataset URL refused",
    ),
    (
        "url-metadata-name",
        "not metadata.google.internal",
        TUNING,
        lambda t: t.replace("https://example.com", "http://metadata.google.internal"),
        "dataset URL refused",
    ),
    (
        "url-private-ip",
        "not loopback/private/link-local IPs",
        TUNING,
        lambda t: t.replace("https://example.com", "http://10.0.0.1"),
        "dataset URL refused",
    ),
    (
        "url-link-local",
        "not loopback/private/link-local IPs",
        TUNING,
        lambda t: t.replace("https://example.com", "http://169.254.169.254"),
        "dataset URL refused",
    ),
    (
        "output-required",
        "output required",
        TUNING,
        lambda t: t.split("  output:")[0],
        "tuning.output is required",
    ),
    (
        "output-push-secret",
        "an output image requires imagePushSecret",
        TUNING,
        lambda t: t.replace("    imagePushSecret: push\n", ""),
        "an output image requires imagePushSecret",
    ),
    (
        "output-exactly-one",
        "exactly one of Volume / Image",
        TUNING,
        lambda t: t.replace("    image: myregistry.azurecr.io/adapters/tuned:1\n", ""),
        "Exactly one of Volume or Image must be specified for the output",
    ),
    (
        "tuning-preset-required",
        "preset required",
        TUNING,
        lambda t: t.replace("  preset:\n    name: phi-3-mini-128k-instruct\n", ""),
        "tuning.preset is required",
    ),
    (
        "tuning-preset-valid",
        "must be a valid preset name",
        TUNING,
        lambda t: t.replace("phi-3-mini-128k-instruct", "phi-9"),
        "Unsupported tuning preset name 'phi-9'",
    ),
]


@pytest.mark.parametrize(("case", "kaito", "base", "mutate", "expected"), RULES, ids=[r[0] for r in RULES])
def test_kaito_rule(case: str, kaito: str, base: str, mutate, expected: str) -> None:
    text = mutate(base)
    assert text != base, case
    found = errors(text)
    assert any(expected in e for e in found), (kaito, found)


@pytest.mark.parametrize("value", ["0", "1", "0.5", "1.0", ".25", "0.0", "1e-1", "+0.5"])
def test_strength_accepted_as_kaito_parses_it(value: str) -> None:
    assert strength_problem(value) == ""


@pytest.mark.parametrize("value", ["1.5", "-0.1", "2", "", "half", "NaN", "inf", "0x1p-1", "1_0"])
def test_strength_refused(value: str) -> None:
    assert strength_problem(value)


def test_ten_mistakes_all_reported_in_one_run() -> None:
    path = GOLDEN / "errors-ten-mistakes" / "input" / "tuning.yaml"
    found = [d for d in diagnostics(path.read_text(), name="tuning.yaml") if d.is_error]
    positioned = [d for d in found if d.pos.line > 0 and d.pos.col > 0]
    assert len(positioned) >= 9, [d.render() for d in found]
    # the schema error (unknown field) and the rule errors come together
    codes = {d.code for d in found}
    assert "schema-extra_forbidden" in codes
    assert {"name", "tuning-count", "instance-type", "preset", "method", "input", "url", "output"} <= codes


def test_schema_error_skips_only_the_rules_that_need_the_field() -> None:
    text = INFERENCE.replace("name: phi-3-mini-4k-instruct", "name: 7").replace("name: ws", "name: Ws_1")
    found = errors(text)
    assert any("must be a string" in e for e in found), found
    assert any("DNS-1123" in e for e in found), found
    assert not any("required" in e or "Unsupported" in e for e in found), found


CONFIGMAP = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: ml
data:
  inference_config.yaml: |
    vllm: {}
"""


def test_no_unreferenced_warning_for_a_configmap_of_a_failed_workspace() -> None:
    bad = INFERENCE.replace("name: ws", "name: Ws_1") + "  config: cfg\n  bogus: 1\n" + CONFIGMAP
    found = diagnostics(bad)
    assert any(d.is_error for d in found)
    assert not [d for d in found if d.code == "unreferenced"], [d.render() for d in found]
    # an object nobody references still gets its warning
    assert [d for d in diagnostics(INFERENCE + CONFIGMAP) if d.code == "unreferenced"]


TRAINING_CM = """\
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: tcfg
  namespace: ml
data:
  training_config.yaml: |
    training_config:
      ModelConfig:
        torch_dtype: bfloat16
      QuantizationConfig:
        load_in_4bit: false
"""


def test_training_config_error_points_at_its_own_line_and_no_unreferenced_warning() -> None:
    text = TUNING.replace("  method: qlora\n", "  method: qlora\n  config: tcfg\n") + TRAINING_CM
    found = diagnostics(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "load_in_4bit: false" in row)
    col = text.splitlines()[line - 1].index("load_in_4bit") + 1
    hits = [d for d in found if "qlora needs load_in_4bit" in d.message]
    assert hits and (hits[0].pos.line, hits[0].pos.col) == (line, col), [d.render() for d in found]
    assert not [d for d in found if d.code == "unreferenced"], [d.render() for d in found]
