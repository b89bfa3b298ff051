"""Per-preset engine choice: phi-4-mini-instruct runs on kaito-gen's transformers runtime when asked,
while vLLM (Kaito's engine for it) stays the default; ministral-3 stays vLLM-only, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import Compiled, compile_inputs
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()

WS = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
  annotations: {ANNOTATIONS}
resource:
  instanceType: {SKU}
  labelSelector:
    matchLabels:
      apps: ws
inference:
  preset:
    name: {MODEL}
"""


def compile_ws(model: str, runtime: str = "", sku: str = "Standard_NC24ads_A100_v4") -> Compiled:
    annotations = f"{{kaito.sh/runtime: {runtime}}}" if runtime else "{}"
    text = WS.replace("{ANNOTATIONS}", annotations).replace("{SKU}", sku).replace("{MODEL}", model)
    docs, problems = parse_documents("ws.yaml", text)
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, Target())


def server(compiled: Compiled) -> dict[str, Any]:
    assert compiled.ok, [str(d) for d in compiled.diagnostics]
    (body,) = [b for path, b in compiled.files.items() if "/statefulset-" in path]
    container: dict[str, Any] = yaml.safe_load(body)["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("runtime", "engine"), [("", "vllm"), ("vllm", "vllm"), ("transformers", "transformers")]
)
def test_phi_4_mini_engine(runtime: str, engine: str) -> None:
    compiled = compile_ws("phi-4-mini-instruct", runtime)
    (rw,) = compiled.resolved.workspaces
    assert rw.engine == engine
    if not runtime:
        assert rw.engine_reason.startswith("preset default: vLLM by default, as Kaito serves it")
        assert "annotate kaito.sh/runtime: transformers for transformers" in rw.engine_reason
    args = [server(compiled)["command"][0], *server(compiled)["args"]]
    if engine == "transformers":
        assert args[0] == "kaito-serve"
        assert args[args.index("--model") + 1] == "microsoft/Phi-4-mini-instruct"
        assert args[args.index("--revision") + 1] == "c0fb9e74abda11b496b7907a9c6c9009a7a0488f"
        assert args[args.index("--dtype") + 1] == "auto"
        # transformers 5.x has Phi3 natively: the repo's own code is never downloaded or run.
        assert "--trust-remote-code" not in args
    else:
        assert args[0] == "kaito-vllm"
        assert "--chat-template=/workspace/chat_templates/tool-chat-phi4-mini.jinja" in args


def test_phi_4_mini_on_transformers_on_a_t4_is_float16() -> None:
    args = server(compile_ws("phi-4-mini-instruct", "transformers", "Standard_NC4as_T4_v3"))["args"]
    assert args[args.index("--dtype") + 1] == "float16"


@pytest.mark.parametrize(
    "model", ["ministral-3-3b-instruct", "ministral-3-8b-instruct", "ministral-3-14b-instruct"]
)
def test_ministral_3_stays_on_vllm(model: str) -> None:
    preset = CATALOG.find_model(model)
    assert preset is not None and preset.supported_engines == ("vllm",)
    assert preset.engines_reason and "image-text-to-text" in preset.engines_reason
    errors = [d for d in compile_ws(model, "transformers").diagnostics if d.is_error]
    assert [e.message for e in errors] == [
        f"model {model} does not support inference with Huggingface Transformers runtime"
    ]
    assert compile_ws(model).resolved.workspaces[0].engine == "vllm"


def test_a_default_engine_must_be_supported() -> None:
    from kaito_gen.models.presets import ModelPreset
    from pydantic import ValidationError

    row = CATALOG.find_model("ministral-3-3b-instruct")
    assert row is not None
    data = row.model_dump(by_alias=True)
    data["defaultEngine"] = "transformers"
    with pytest.raises(
        ValidationError, match="defaultEngine transformers is not among the supported engines"
    ):
        ModelPreset.model_validate(data)
