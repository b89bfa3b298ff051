"""Kaito's per-model vLLM flags and env (KAITO.md §2.2 generator rules, §2.3 "extra vLLM", §5.4 env).

One row per model family; every catalog model's emitted serve command is also parsed by vLLM's own
parser (the `.venv-vllm` that CI builds), which checks dotted sub-fields such as
``--kernel-config.enable_flashinfer_autotune`` and choice values the JSON argument list cannot.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from kaito_gen.catalog.vllmparams import vllm_params
from kaito_gen.compiler.emit.vllm import emit_vllm, serve_args
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.plan import plan
from kaito_gen.compiler.resolve import resolve
from kaito_gen.compiler.validate import validate
from kaito_gen.compiler.vllmargs import vllm_args
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_presets()
# Eight H100s per node: every catalog model fits on some number of them.
SKU = "Standard_ND96isr_H100_v5"
ONE_GPU = "Standard_NC24ads_A100_v4"

WS = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
  annotations:
    kaito.sh/runtime: vllm
resource:
  instanceType: {sku}
  labelSelector:
    matchLabels:
      apps: ws
inference:
  preset:
    name: {model}
    presetOptions:
      modelAccessSecret: hf-token
"""


def workspace_plan(model: str, sku: str = SKU):
    docs, problems = parse_documents("ws.yaml", WS.format(model=model, sku=sku))
    t = Target()
    resolved = resolve(validate(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), t), CATALOG, t)
    assert not [d for d in resolved.diagnostics if d.is_error], resolved.diagnostics
    return plan(resolved, t).workspaces[0]


def vllm_models() -> list[str]:
    return sorted(
        m.name for m in CATALOG.models.values() if "vllm" in (m.engines or ("vllm",)) and not m.deprecated
    )


def _env(model: str) -> dict[str, str]:
    workload = emit_vllm(workspace_plan(model), Target())[0]
    spec = workload["spec"]
    pod = spec["template"] if "template" in spec else spec["leaderWorkerTemplate"]["leaderTemplate"]
    (server,) = pod["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in server["env"]}


NO_LMCACHE = "--kaito-kv-cache-cpu-memory-utilization=0"
GDN = "--gdn-prefill-backend=triton"
AUTOTUNE = "--kernel-config.enable_flashinfer_autotune=False"
FP8_KV = "--kv-cache-dtype=fp8"
EP = "--enable-expert-parallel"
FAMILY_FLAGS = (NO_LMCACHE, GDN, AUTOTUNE, FP8_KV, EP)


# (model, family, the per-model flags Kaito adds, VLLM_USE_DEEP_GEMM). KAITO.md §2.3 rows; models
# that are multi-node on 8xH100 get no-LMCache from PP anyway, so those rows use one-node models
# where the column matters and the family's own rule is checked on vllm_params directly.
FAMILIES = [
    ("phi-4", "phi3", set(), "0"),
    ("qwen2.5-coder-7b-instruct", "qwen2", set(), "0"),
    ("llama-3.1-8b-instruct", "llama", set(), "0"),
    ("gpt-oss-20b", "gpt_oss", {NO_LMCACHE}, "0"),
    ("gemma-4-e4b-it", "gemma4", {NO_LMCACHE}, "0"),
    ("nvidia-nemotron-3-nano-4b-bf16", "nemotron_h", {NO_LMCACHE}, "0"),
    ("qwen3-8b-awq", "qwen3", set(), "0"),
    ("qwen3.5-9b", "qwen3_5", {NO_LMCACHE, GDN}, "0"),
    ("qwen3.6-27b", "qwen3_5", {NO_LMCACHE, GDN}, "0"),
    ("qwen3.8-27b", "qwen3_5", {NO_LMCACHE, GDN}, "0"),
    ("qwen3.5-122b-a10b-gptq-int4", "qwen3_5_moe", {NO_LMCACHE, GDN}, "0"),
    ("minimax-m2.7", "minimax_m2", {EP}, "0"),
    ("mistral-small-4-119b-2603", "mistral3", set(), "0"),
    ("deepseek-v4-flash-0731", "deepseek_v4", {NO_LMCACHE, FP8_KV}, "1"),
    ("deepseek-v4-pro", "deepseek_v4", {NO_LMCACHE, FP8_KV}, "1"),
    ("deepseek-v3.2", "deepseek_v32", {NO_LMCACHE, AUTOTUNE}, "1"),
    ("glm-5.2-fp8", "glm_moe_dsa", {FP8_KV}, "1"),
    ("deepseek-r1-0528", "deepseek_v3", set(), "0"),
    ("kimi-k2.5", "kimi_k25", set(), "0"),
    ("granite-4.1-8b", "granite", set(), "0"),
]


@pytest.mark.parametrize(("model", "family", "flags", "deep_gemm"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_per_model_flags_and_env_match_kaito(
    model: str, family: str, flags: set[str], deep_gemm: str
) -> None:
    # One A100 where the weights fit (no DP, which turns LMCache off as well), else 8xH100 nodes.
    small = CATALOG.models[model].weights_gib < 60
    wp = workspace_plan(model, ONE_GPU if small else SKU)
    assert wp.rw.model is not None and wp.rw.model.family == family
    args = serve_args(wp)
    params = vllm_params(wp.rw.model)
    # The family's own rule, independent of the node count (PP also turns LMCache off).
    assert params.no_lmcache == (NO_LMCACHE in flags)
    extras = {a for a in args if a in FAMILY_FLAGS}
    if wp.rw.node_count > 1 or wp.rw.gpus_per_node > 1:
        extras.discard(NO_LMCACHE)
        flags = flags - {NO_LMCACHE}
    assert extras == flags
    env = _env(model)
    assert env["VLLM_USE_DEEP_GEMM"] == deep_gemm
    assert env["VLLM_USE_FLASHINFER_SAMPLER"] == "0"


def test_per_model_flags_come_after_the_parsers_and_before_the_sizing_flags() -> None:
    args = serve_args(workspace_plan("deepseek-v3.2"))
    assert (
        args.index("--reasoning-parser=deepseek_v3")
        < args.index(AUTOTUNE)
        < args.index("--max-model-len=auto")
    )


def _vllm_argv(model: str) -> list[str]:
    """The serve flags kaito-vllm hands to vLLM: ours minus the kaito-* ones it consumes."""
    return [a for a in serve_args(workspace_plan(model)) if not a.startswith("--kaito-")]


def test_every_catalog_model_emits_only_vllm_arguments() -> None:
    _, known = vllm_args()
    for model in vllm_models():
        for arg in _vllm_argv(model):
            name = arg[2:].partition("=")[0].replace("_", "-").split(".", 1)[0]
            assert name in known, (model, arg)


CANARY = "canary: misspelt kernel-config field"
PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.engine.arg_utils import EngineArgs

parser = make_arg_parser(FlexibleArgumentParser(prog="kaito-vllm"))
parser.exit_on_error = False
bad = {}
for model, argv in json.load(sys.stdin).items():
    try:
        EngineArgs.from_cli_args(parser.parse_args(argv))
    except BaseException as exc:  # argparse exits; pydantic raises
        bad[model] = f"{type(exc).__name__}: {exc}"[:400]
print(json.dumps(bad))
"""


def test_vllms_own_parser_accepts_every_catalog_models_command() -> None:
    """Dotted sub-fields (--kernel-config.enable_flashinfer_autotune) and choices (tokenizer
    modes, tool parsers) are checked by vLLM itself, in the .venv-vllm CI builds. A canary with a
    misspelt sub-field shows that the check can fail (one vLLM import for both)."""
    python = REPO / ".venv-vllm" / "bin" / "python"
    assert python.exists(), "build .venv-vllm (make .venv-vllm/.done) to run vLLM's parser"
    commands = {model: _vllm_argv(model) for model in vllm_models()}
    commands[CANARY] = [*_vllm_argv("phi-4"), "--kernel-config.enable_flashinfer_autotunez=False"]
    # The parser runs as CI runs it: no offline switches leaked from the runtime tests' conftest
    # (with them, vLLM's model lookups raise instead of falling back) and a dead local Hub, so no
    # lookup can leave the machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "TRANSFORMERS_OFFLINE"}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    result = subprocess.run(
        [str(python), "-c", PARSE],
        input=json.dumps(commands),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    bad = json.loads(result.stdout.strip().splitlines()[-1])
    assert "enable_flashinfer_autotunez" in bad.pop(CANARY)
    assert bad == {}
