"""Seed-era GPUs: V100 and T4 SKUs render (float16, said in explain); K80/M60 are refused with the reason."""

from __future__ import annotations

import pytest
from kaito_gen.catalog.dtype import dtype_reason
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()
WS = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
resource:
  instanceType: {sku}
  labelSelector:
    matchLabels:
      apps: ws
inference:
  preset:
    name: phi-3-mini-4k-instruct
"""


def _compile(sku: str, cloud: str = "azure"):
    docs, problems = parse_documents("ws.yaml", WS.format(sku=sku))
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, Target(cloud=cloud))


@pytest.mark.parametrize(
    ("sku", "cloud", "gpus", "mem"),
    [
        ("Standard_NC6s_v3", "azure", 1, 16),
        ("Standard_NC12s_v3", "azure", 2, 16),
        ("Standard_NC24s_v3", "azure", 4, 16),
        ("Standard_NC4as_T4_v3", "azure", 1, 16),
        ("Standard_NC64as_T4_v3", "azure", 4, 16),
        ("p3.2xlarge", "aws", 1, 16),
        ("p3dn.24xlarge", "aws", 8, 32),
        ("g4dn.xlarge", "aws", 1, 16),
        ("g4dn.metal", "aws", 8, 16),
    ],
)
def test_seed_era_skus_render_in_float16(sku: str, cloud: str, gpus: int, mem: int) -> None:
    gpu = CATALOG.find_sku(sku)
    assert gpu is not None and gpu.gpu_count == gpus and gpu.gpu_memory_gib == mem
    assert gpu.generation and gpu.generation.startswith("seed-era") and not gpu.supports_bf16
    compiled = _compile(sku, cloud)
    assert compiled.ok, compiled.diagnostics
    text = "".join(str(f) for f in compiled.files.values())
    assert "- float16" in text and "- auto" not in text
    model = CATALOG.find_model("phi-3-mini-4k-instruct")
    assert model is not None
    assert "has no bfloat16" in dtype_reason(model, gpu)


def test_ampere_keeps_the_preset_dtype() -> None:
    model, gpu = CATALOG.find_model("phi-3-mini-4k-instruct"), CATALOG.find_sku("Standard_NC24ads_A100_v4")
    assert model is not None and gpu is not None
    assert dtype_reason(model, gpu) == "auto: the preset's runtime dtype"


@pytest.mark.parametrize(
    ("sku", "cloud", "gpu"), [("Standard_NC6", "azure", "K80"), ("g3.4xlarge", "aws", "M60")]
)
def test_k80_m60_are_refused_with_the_reason(sku: str, cloud: str, gpu: str) -> None:
    compiled = _compile(sku, cloud)
    errors = [d for d in compiled.diagnostics if d.is_error]
    assert len(errors) == 1, errors
    assert gpu in errors[0].message and "compute capability >= 7.0" in errors[0].message
    assert errors[0].pos.line == 7
    assert CATALOG.find_sku(sku) not in CATALOG.skus_for(cloud)
