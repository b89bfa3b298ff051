"""The YAML embedded in ConfigMaps: checked against the runtime's exported schemas, and every
problem positioned at its own line and column inside the block (issue 13, items 2 and 3).

Table tests: one row per schema rule or block style, with the file:line:col it must point at.
"""

from __future__ import annotations

import pytest
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.core.blockmap import block_map
from kaito_gen.core.errors import Diagnostic
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()

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
{block}"""  # the ConfigMap's key is on line 20, its block's first line on 21

INFERENCE = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
{annotations}resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: ws
inference:
  preset:
    name: {model}
  config: cfg
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: ml
data:
{block}"""  # without annotations: the key on line 22, the block from line 23


def block(key: str, lines: list[str], header: str = "|", key_indent: int = 2, indent: int = 4) -> str:
    """``key: <header>`` and ``lines`` as its content, indented ``indent`` spaces."""
    body = "".join(" " * indent + line + "\n" if line else "\n" for line in lines)
    return " " * key_indent + f"{key}: {header}\n" + body


def compile_text(text: str) -> list[Diagnostic]:
    docs, problems = parse_documents("ws.yaml", text)
    compiled = compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, Target())
    return list(compiled.diagnostics)


def tuning(lines: list[str], method: str = "lora", **style: object) -> list[Diagnostic]:
    text = TUNING.format(method=method, block=block("training_config.yaml", lines, **style))
    return [d for d in compile_text(text) if d.code == "training-config"]


def shown(d: Diagnostic) -> str:
    return f"{d.pos}: {'.'.join(str(p) for p in d.path[2:])}: {d.message}"


# --- training_config.yaml against kaito-tune's schema ----------------------------------------------

LORA = ["training_config:", "  LoraConfig:"]


@pytest.mark.parametrize(
    ("lines", "method", "expected", "hint"),
    [
        (
            [*LORA, '    r: "sixteen"'],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.r: must be an integer, got 'sixteen'",
            "the runtime's default is 8",
        ),
        (
            [*LORA, '    r: "16"'],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.r: must be an integer, got '16'",
            "write 16 without quotes",
        ),
        (
            [*LORA, "    rr: 8"],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.rr: unknown key training_config.LoraConfig.rr",
            "did you mean 'r'?",
        ),
        (
            [*LORA, "    r: 0"],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.r: must be at least 1, got 0",
            "",
        ),
        (
            [*LORA, "    lora_dropout: 1.5"],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.lora_dropout: must be less than 1, got 1.5",
            "",
        ),
        (
            [*LORA, "    bias: some"],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.bias: must be one of none, all, lora_only, got 'some'",
            "",
        ),
        (
            [*LORA, "    use_dorra: true"],
            "lora",
            "ws.yaml:23:9: training_config.LoraConfig.use_dorra: unknown key training_config.LoraConfig.use_dorra",
            "did you mean 'use_dora'?",
        ),
        (
            ["training_config:", "  LoraConfg: {r: 8}"],
            "lora",
            "ws.yaml:22:7: training_config.LoraConfg: unknown section training_config.LoraConfg",
            "did you mean 'LoraConfig'?",
        ),
        (
            ["training_config:", "  QuantizationConfig:", '    load_in_4bit: "yes"'],
            "qlora",
            "ws.yaml:23:9: training_config.QuantizationConfig.load_in_4bit: must be true or false, got 'yes'",
            "",
        ),
        (
            ["training_config:", "  TrainingArguments:", "    do_train: true"],
            "lora",
            "ws.yaml:23:9: training_config.TrainingArguments.do_train: is not accepted here",
            "kaito-tune sets this itself",
        ),
        (
            ["training_config:", "  TrainingArguments:", "    learning_rate: -1"],
            "lora",
            "ws.yaml:23:9: training_config.TrainingArguments.learning_rate: must be greater than 0, got -1",
            "",
        ),
        (
            ["training_config:", "  QuantizationConfig:", "    load_in_4bit: false"],
            "qlora",
            "ws.yaml:23:9: : method qlora needs load_in_4bit or load_in_8bit set to true",
            "",
        ),
    ],
    ids=[
        "r-not-int",
        "r-quoted",
        "rr-did-you-mean-r",
        "r-below-1",
        "dropout-range",
        "bias-enum",
        "peft-field-typo",
        "section-typo",
        "4bit-not-bool",
        "reserved-key",
        "lr-positive",
        "qlora-4bit-false",
    ],
)
def test_training_config_schema_errors(lines: list[str], method: str, expected: str, hint: str) -> None:
    found = tuning(lines, method)
    assert [shown(d) for d in found] == [expected]
    assert hint in found[0].hint


def test_every_training_config_error_at_once() -> None:
    lines = [
        *LORA,
        '    r: "sixteen"',
        "    rr: 8",
        "    lora_dropout: 2",
        "  TrainingArguments:",
        "    seed: x",
    ]
    assert [shown(d) for d in sorted(tuning(lines), key=Diagnostic.sort_key)] == [
        "ws.yaml:23:9: training_config.LoraConfig.r: must be an integer, got 'sixteen'",
        "ws.yaml:24:9: training_config.LoraConfig.rr: unknown key training_config.LoraConfig.rr",
        "ws.yaml:25:9: training_config.LoraConfig.lora_dropout: must be less than 1, got 2",
        "ws.yaml:27:9: training_config.TrainingArguments.seed: must be an integer, got 'x'",
    ]


def test_a_valid_training_config_passes_the_schema() -> None:
    lines = [*LORA, "    r: 16", "    use_rslora: true", "  TrainingArguments:", "    bf16: true"]
    assert tuning(lines) == []


def test_no_unreferenced_warning_after_an_embedded_config_error() -> None:
    text = TUNING.format(method="lora", block=block("training_config.yaml", [*LORA, "    rr: 8"]))
    found = compile_text(text)
    assert any(d.code == "training-config" for d in found)
    assert not [d for d in found if "not referenced" in d.message]


# --- inference_config.yaml against kaito-serve's schema --------------------------------------------


def inference(lines: list[str], model: str = "phi-3-mini-4k-instruct", runtime: str = "") -> list[Diagnostic]:
    annotations = f"  annotations:\n    kaito.sh/runtime: {runtime}\n" if runtime else ""
    text = INFERENCE.format(annotations=annotations, model=model, block=block("inference_config.yaml", lines))
    return [d for d in compile_text(text) if d.code in ("inference-config", "vllm-args")]


@pytest.mark.parametrize(
    ("lines", "expected", "hint"),
    [
        (
            ["transformers:", '  max-model-len: "4096"'],
            "error ws.yaml:24:7: transformers.max-model-len: must be an integer, got '4096'",
            "write 4096 without quotes",
        ),
        (
            ["transformers:", "  max_batch_size: 0"],
            "error ws.yaml:24:7: transformers.max_batch_size: must be at least 1, got 0",
            "",
        ),
        (
            ["transformers:", "  max-modle-len: 4096"],
            "error ws.yaml:24:7: transformers.max-modle-len: unknown key transformers.max-modle-len",
            "did you mean 'max-model-len'?",
        ),
        (
            ["transformers:", "  combination-type: sum"],
            "error ws.yaml:24:7: transformers.combination-type: must be one of cat, svd, linear, got 'sum'",
            "",
        ),
        (
            ["transfomers:", "  max-model-len: 4096"],
            "warning ws.yaml:23:5: transfomers: unknown top-level key 'transfomers': the runtime ignores it",
            "did you mean 'transformers'?",
        ),
    ],
    ids=["len-string", "batch-zero", "key-typo", "combination-enum", "section-typo-warns"],
)
def test_inference_config_schema_errors(lines: list[str], expected: str, hint: str) -> None:
    found = inference(lines)
    assert [f"{d.severity.value} {shown(d)}" for d in found] == [expected]
    assert hint in found[0].hint


def test_a_valid_inference_config_passes_the_schema() -> None:
    assert (
        inference(
            ["transformers:", "  max-model-len: 2048", "  max_queue: 8", "vllm:", "  max-model-len: 2048"]
        )
        == []
    )


def test_vllm_section_errors_point_at_the_key_column() -> None:
    """The column used to be the key's column inside the block, not in the file (off by 4)."""
    (found,) = inference(["vllm:", "  max-modl-len: 4096"], model="phi-4", runtime="vllm")
    assert str(found.pos) == "ws.yaml:26:7"  # the annotation adds two lines


# --- positions inside block scalars --------------------------------------------------------------

BODY = [*LORA, "    rr: 8"]


@pytest.mark.parametrize(
    ("style", "eol", "expected"),
    [
        ({"header": "|"}, "\n", "ws.yaml:23:9"),
        ({"header": "|-"}, "\n", "ws.yaml:23:9"),
        ({"header": "|+"}, "\n", "ws.yaml:23:9"),
        ({"header": ">"}, "\n", "ws.yaml:23:9"),
        ({"header": ">-"}, "\n", "ws.yaml:23:9"),
        ({"header": "|", "key_indent": 4, "indent": 8}, "\n", "ws.yaml:23:13"),
        ({"header": "|", "indent": 6}, "\n", "ws.yaml:23:11"),
        ({"header": "|4", "indent": 6}, "\n", "ws.yaml:23:11"),
        ({"header": "|2-", "indent": 4}, "\n", "ws.yaml:23:9"),
        ({"header": ">4", "indent": 6}, "\n", "ws.yaml:23:11"),
        ({"header": "|"}, "\r\n", "ws.yaml:23:9"),
        ({"header": ">-"}, "\r\n", "ws.yaml:23:9"),
        ({"header": "|4", "key_indent": 4, "indent": 8}, "\r\n", "ws.yaml:23:13"),
        ({"header": "|  # a comment"}, "\n", "ws.yaml:23:9"),
    ],
    ids=[
        "literal",
        "literal-strip",
        "literal-keep",
        "folded",
        "folded-strip",
        "doc-indented-4",
        "block-indented-6",
        "indicator-4",
        "indicator-2-strip",
        "folded-indicator-4",
        "crlf-literal",
        "crlf-folded",
        "crlf-indicator-indented",
        "header-comment",
    ],
)
def test_positions_inside_the_block(style: dict[str, object], eol: str, expected: str) -> None:
    text = TUNING.format(method="lora", block=block("training_config.yaml", BODY, **style))
    text = text.replace("\n", eol)
    found = [d for d in compile_text(text) if d.code == "training-config"]
    assert [str(d.pos) for d in found] == [expected]


def test_folded_lines_map_to_their_own_lines() -> None:
    """In a folded block a run of equally indented lines becomes one line; each keeps its place."""
    text = "data:\n  k: >\n    a: one\n    two\n\n    b: [1,\n      2]\n"
    (doc,) = parse_documents("f.yaml", text)[0]
    value = doc.data["data"]["k"]
    assert value == "a: one two\nb: [1,\n  2]\n"
    mapped = block_map(doc, ("data", "k"), value)
    assert mapped is not None
    assert mapped.pos(1, 1) == (3, 5)  # a
    assert mapped.pos(1, 8) == (4, 5)  # two, folded onto the first line
    assert mapped.pos(2, 1) == (6, 5)  # b
    assert mapped.pos(3, 3) == (7, 7)  # 2


def test_a_block_that_cannot_be_rebuilt_falls_back_to_its_key() -> None:
    """A double-quoted value is no block: positions go to the ConfigMap key, not to a wrong line."""
    cm = '  training_config.yaml: "training_config:\\n  LoraConfig:\\n    rr: 8\\n"\n'
    found = [d for d in compile_text(TUNING.format(method="lora", block=cm)) if d.code == "training-config"]
    assert [str(d.pos) for d in found] == ["ws.yaml:20:3"]
    (doc,) = parse_documents("f.yaml", "k: |\n  a\n")[0]
    assert block_map(doc, ("k",), "something else\n") is None


@pytest.mark.parametrize("key", ["max-model-len", "max_model_len"])
def test_the_context_check_reads_either_spelling(key: str) -> None:
    (found,) = inference(["transformers:", f"  {key}: 999999"])
    assert "exceeds phi-3-mini-4k-instruct's context" in found.message


def test_a_section_of_the_wrong_type_is_reported_once() -> None:
    found = inference(["transformers: [1, 2]"])
    assert [shown(d) for d in found] == ["ws.yaml:23:5: transformers: must be a mapping, got [1, 2]"]
