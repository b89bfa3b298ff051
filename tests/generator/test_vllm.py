"""The vLLM engine: engine choice, Kaito's flags, parallelism, node counts, multi-node LWS, kinds."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from kaito_gen.catalog.sizing import estimate
from kaito_gen.compiler.emit.vllm import parallelism, serve_args
from kaito_gen.compiler.kinds import ALL_KINDS, COMPILED_KINDS
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.compiler.plan import plan
from kaito_gen.compiler.resolve import resolve
from kaito_gen.compiler.validate import validate
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()
NODE_COUNTS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "kaito-node-counts.tsv"

WS = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
{annotations}resource:
  instanceType: {sku}
  labelSelector:
    matchLabels:
      apps: ws
inference:
  preset:
    name: {model}
"""


def ws_text(
    model: str, sku: str = "Standard_NC24ads_A100_v4", runtime: str | None = None, extra: str = ""
) -> str:
    annotations = f"  annotations:\n    kaito.sh/runtime: {runtime}\n" if runtime else ""
    return WS.format(annotations=annotations, sku=sku, model=model) + extra


def compile_text(text: str, target: Target | None = None):
    docs, problems = parse_documents("ws.yaml", text)
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, target or Target())


def workspace_plan(text: str, target: Target | None = None):
    docs, problems = parse_documents("ws.yaml", text)
    t = target or Target()
    resolved = resolve(validate(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), t), CATALOG, t)
    assert not [d for d in resolved.diagnostics if d.is_error], resolved.diagnostics
    return plan(resolved, t).workspaces[0]


# --- engine choice --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "runtime", "default", "engine", "why"),
    [
        ("phi-3-mini-4k-instruct", None, None, "transformers", "preset default"),
        ("phi-3-mini-4k-instruct", "vllm", None, "vllm", "annotation"),
        ("phi-3-mini-4k-instruct", None, "vllm", "vllm", "runtime.default"),
        ("phi-3-mini-4k-instruct", "transformers", "vllm", "transformers", "annotation"),
        ("ministral-3-3b-instruct", None, None, "vllm", "no transformers entry"),
        ("gpt-oss-120b", None, None, "vllm", "more than one node"),
    ],
)
def test_engine_precedence(
    model: str, runtime: str | None, default: str | None, engine: str, why: str
) -> None:
    target = Target(default_engine=default) if default else Target()
    wp = workspace_plan(ws_text(model, runtime=runtime), target)
    assert wp.rw.engine == engine
    assert why in wp.rw.engine_reason


def test_transformers_refuses_a_vllm_only_preset_and_multi_node() -> None:
    bad = compile_text(ws_text("ministral-3-3b-instruct", runtime="transformers"))
    assert any(
        "does not support inference with Huggingface Transformers" in d.message for d in bad.diagnostics
    )
    big = compile_text(ws_text("gpt-oss-120b", runtime="transformers"))
    message = next(d.message for d in big.diagnostics if d.is_error)
    assert "Multi-node distributed inference is not supported" in message


def test_vllm_refuses_adapter_strength_at_its_line() -> None:
    adapters = '  adapters:\n  - source:\n      name: a1\n      image: ghcr.io/x/a1:1\n    strength: "0.5"\n'
    compiled = compile_text(ws_text("phi-3-mini-4k-instruct", runtime="vllm", extra=adapters))
    (err,) = [d for d in compiled.diagnostics if d.is_error]
    assert err.message == "vLLM does not support adapter strength"
    assert err.pos.line == 20


def test_images_per_engine_come_from_the_target() -> None:
    pinned = "registry.example/kaito-vllm:1.0@sha256:" + "a" * 64
    compiled = compile_text(ws_text("phi-4", runtime="vllm"), Target(vllm_image=pinned))
    assert compiled.ok
    sts = compiled.files["ml/ws/statefulset-ws.yaml"]
    assert f"image: {pinned}" in sts


# --- Kaito's flags --------------------------------------------------------------------------------

# KAITO.md §5.3 example: phi-4 on Standard_NC24ads_A100_v4.
KAITO_PHI4 = [
    "--load_format=auto",
    "--config_format=auto",
    "--tokenizer_mode=auto",
    "--trust-remote-code",
    "--dtype=bfloat16",
    "--served-model-name=phi-4",
    "--max-model-len=auto",
    "--gpu-memory-utilization=0.84",
    '--kv-events-config={"enable_kv_cache_events":true}',
    "--compilation-config.pass_config.fuse_allreduce_rms=False",
    "--model=microsoft/phi-4",
    "--download-dir=/workspace/weights",
    "--tensor-parallel-size=1",
]
# What kaito-vllm's contract adds: the pinned revision and the listen address.
CONTRACT = {"--revision", "--host", "--port"}


def _flags(args: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (a.partition("=") for a in args)}


def test_phi4_has_kaitos_flags_and_values_in_a_fixed_order() -> None:
    args = serve_args(workspace_plan(ws_text("phi-4", runtime="vllm")))
    ours = {k: v for k, v in _flags(args).items() if k not in CONTRACT}
    assert ours == _flags(KAITO_PHI4)
    assert args[:5] == [
        "--model=microsoft/phi-4",
        "--revision=187ef0342fff0eb3333be9f00389385e95ef0b61",
        "--served-model-name=phi-4",
        "--host=0.0.0.0",
        "--port=5000",
    ]
    assert args == serve_args(workspace_plan(ws_text("phi-4", runtime="vllm")))


@pytest.mark.parametrize(
    ("weights", "gpus", "per_gpu", "nodes", "expected"),
    [
        ("7.15", 1, "80", 1, ["--tensor-parallel-size=1"]),  # one GPU: TP 1
        ("7.15", 2, "80", 1, ["--data-parallel-size=2", "--tensor-parallel-size=1"]),  # small: DP
        ("39.9", 4, "80", 1, ["--data-parallel-size=4", "--tensor-parallel-size=1"]),  # just under half
        ("40", 4, "80", 1, ["--tensor-parallel-size=4"]),  # half a GPU or more: TP
        ("131.42", 8, "80", 1, ["--tensor-parallel-size=8"]),
        (
            "131.42",
            2,
            "80",
            2,
            ["--tensor-parallel-size=2", "--pipeline-parallel-size=2", "--distributed-executor-backend=ray"],
        ),
        (
            "641.3",
            2,
            "94",
            5,
            ["--tensor-parallel-size=2", "--pipeline-parallel-size=5", "--distributed-executor-backend=ray"],
        ),
    ],
)
def test_parallelism_rules(weights: str, gpus: int, per_gpu: str, nodes: int, expected: list[str]) -> None:
    model = CATALOG.find_model("phi-4")
    assert model is not None
    model = model.model_copy(update={"weights_gib": Decimal(weights)})
    assert parallelism(model, gpus, Decimal(per_gpu), nodes) == expected


@pytest.mark.parametrize(
    ("model", "sku", "flags"),
    [
        ("phi-4-mini-instruct", "Standard_NV36ads_A10_v5", {"--gpu-memory-utilization": "0.82"}),
        (
            "deepseek-r1-distill-llama-8b",
            "Standard_NC24ads_A100_v4",
            {
                "--tokenizer_mode": "deepseek_v32",
                "--tool-call-parser": "deepseek_v3",
                "--reasoning-parser": "deepseek_r1",
                "--chat-template": "/workspace/chat_templates/tool-chat-deepseekr1.jinja",
            },
        ),
        (
            "mistral-7b-instruct",
            "Standard_NC24ads_A100_v4",
            {"--load_format": "mistral", "--tool-call-parser": "mistral"},
        ),
        (
            "gpt-oss-20b",
            "Standard_NC24ads_A100_v4",
            {"--dtype": "auto", "--kaito-kv-cache-cpu-memory-utilization": "0"},
        ),
        ("llama-3.1-8b-instruct", "Standard_NC96ads_A100_v4", {"--data-parallel-size": "4"}),
    ],
)
def test_catalog_parameters(model: str, sku: str, flags: dict[str, str]) -> None:
    extra = "    presetOptions:\n      modelAccessSecret: hf\n" if model.startswith("llama") else ""
    got = _flags(serve_args(workspace_plan(ws_text(model, sku, runtime="vllm", extra=extra))))
    assert {k: got.get(k) for k in flags} == flags


# --- node counts ----------------------------------------------------------------------------------


def _node_count_rows() -> list[tuple[str, str, int, int]]:
    rows = []
    for line in NODE_COUNTS.read_text().splitlines():
        if line.startswith("#") or line.startswith("model\t") or not line.strip():
            continue
        model, sku, _user, nodes, context = line.split("\t")
        if CATALOG.find_model(model) and CATALOG.find_sku(sku):
            rows.append((model, sku, int(nodes), int(context)))
    return rows


def test_node_counts_match_kaito() -> None:
    rows = _node_count_rows()
    assert len(rows) >= 25
    for model, sku, nodes, context in rows:
        preset, gpu = CATALOG.find_model(model), CATALOG.find_sku(sku)
        assert preset is not None and gpu is not None
        assert estimate(preset, gpu, context).nodes_needed == nodes, (model, sku)


def test_compiled_node_count_for_multi_node_rows() -> None:
    for model, sku, nodes, context in _node_count_rows():
        if nodes == 1:
            continue
        config = (
            f"  config: cfg\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: ml\n"
            f"data:\n  inference_config.yaml: |\n    vllm:\n      max-model-len: {context}\n"
            if context != 2048
            else ""
        )
        preset = CATALOG.find_model(model)
        assert preset is not None
        secret = "    presetOptions:\n      modelAccessSecret: hf\n" if preset.download_auth_required else ""
        wp = workspace_plan(ws_text(model, sku, runtime="vllm", extra=secret + config))
        assert wp.rw.node_count == nodes, (model, sku)


# --- multi-node -----------------------------------------------------------------------------------


def test_multi_node_is_a_leader_worker_set_served_by_its_leader() -> None:
    import yaml

    compiled = compile_text(ws_text("deepseek-r1-0528", "Standard_NC80adis_H100_v5"))
    assert compiled.ok
    lws = yaml.safe_load(compiled.files["ml/ws/leaderworkerset-ws.yaml"])
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 5 and group["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader = group["leaderTemplate"]["spec"]["containers"][0]
    assert leader["args"][:4] == ["ray-leader", "--ray-cluster-size=5", "--ray-port=6379", "--"]
    assert {
        "--pipeline-parallel-size=5",
        "--tensor-parallel-size=2",
        "--distributed-executor-backend=ray",
    } <= set(leader["args"])
    assert leader["readinessProbe"]["httpGet"]["path"] == "/health"
    worker = group["workerTemplate"]["spec"]["containers"][0]
    assert worker["args"] == ["ray-worker", "--ray-address=$(LWS_LEADER_ADDRESS)", "--ray-port=6379"]
    service = yaml.safe_load(compiled.files["ml/ws/service-ws.yaml"])
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    pool = yaml.safe_load(compiled.files["ml/ws/nodepool-ml-ws.yaml"])
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "10", "nodes": "5"}
    assert "LeaderWorkerSet controller" in compiled.files["ml/ws/README.md"]


def test_hf_token_is_a_mounted_file_not_an_env_value() -> None:
    extra = "    presetOptions:\n      modelAccessSecret: hf\n"
    compiled = compile_text(ws_text("llama-3.1-8b-instruct", runtime="vllm", extra=extra))
    assert compiled.ok
    sts = compiled.files["ml/ws/statefulset-ws.yaml"]
    assert "HF_TOKEN_PATH" in sts and "secretKeyRef" not in sts and "secretName: hf" in sts


# --- nothing is dropped ---------------------------------------------------------------------------

# The CRDs of Kaito v0.12 (KAITO.md §0 and §4.1): every kind of the kaito.sh group.
KAITO_KINDS = (
    "Workspace",
    "InferenceSet",
    "MultiRoleInference",
    "ModelMirror",
    "RAGEngine",
    "KaitoNodeClass",
)


@pytest.mark.parametrize("kind", sorted({*KAITO_KINDS, *ALL_KINDS, "Wrokspace"}))
def test_every_kaito_kind_compiles_or_is_refused_by_name(kind: str) -> None:
    text = f"apiVersion: kaito.sh/v1alpha1\nkind: {kind}\nmetadata:\n  name: x\nspec: {{}}\n"
    compiled = compile_text(text)
    if kind in COMPILED_KINDS:
        return  # Workspace: covered by every other test
    errors = [d for d in compiled.diagnostics if d.is_error]
    assert errors and kind in errors[0].message and errors[0].pos.line == 2
    assert compiled.files == {}


def test_kinds_module_knows_every_kaito_kind() -> None:
    assert set(KAITO_KINDS) <= set(ALL_KINDS)


# --- the vllm: section of inference_config.yaml --------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
CONFIG = """\
  config: cfg
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: ml
data:
  inference_config.yaml: |
    vllm:
{body}"""


@pytest.mark.parametrize(
    ("body", "line", "message", "hint"),
    [
        (
            "      max-modl-len: 4096\n",
            26,
            "vllm.max-modl-len: not an argument of vLLM",
            "did you mean 'max-model-len'",
        ),
        ("      gpu-memory-utilization: lots\n", 26, "expects a number", ""),
        ("      enable-chunked-prefill: 3\n", 26, "expects true or false", ""),
        ("      dtype: bfloat15\n", 26, "expects one of auto, bfloat16", ""),
        ("      cpu-offload-gb: 0\n      max-num-seqs: many\n", 27, "expects an integer", ""),
    ],
)
def test_vllm_section_is_checked_against_vllms_arguments(
    body: str, line: int, message: str, hint: str
) -> None:
    compiled = compile_text(ws_text("phi-4", runtime="vllm", extra=CONFIG.format(body=body)))
    (err,) = [d for d in compiled.diagnostics if d.is_error]
    assert message in err.message and hint in err.hint
    assert err.pos.line == line


def test_a_good_vllm_section_compiles() -> None:
    body = "      max-model-len: 8192\n      enable-chunked-prefill: true\n      kv-transfer-config: '{}'\n"
    assert compile_text(ws_text("phi-4", runtime="vllm", extra=CONFIG.format(body=body))).ok


def test_every_flag_kaito_gen_emits_is_a_vllm_argument() -> None:
    from kaito_gen.compiler.vllmargs import vllm_args

    _, known = vllm_args()
    for model, sku in (
        ("phi-4", "Standard_NC24ads_A100_v4"),
        ("deepseek-r1-0528", "Standard_NC80adis_H100_v5"),
    ):
        for arg in serve_args(workspace_plan(ws_text(model, sku, runtime="vllm"))):
            name = arg[2:].partition("=")[0].replace("_", "-").split(".", 1)[0]
            assert name.startswith("kaito-") or name in known, arg


def test_vllm_args_file_matches_vllms_parser() -> None:
    """Drift: regenerate from the installed vLLM (.venv-vllm, which CI builds) and compare."""
    import subprocess

    python = REPO / ".venv-vllm" / "bin" / "python"
    assert python.exists(), "build .venv-vllm (make .venv-vllm/.done) to check vllm_args.json"
    result = subprocess.run(
        [str(python), str(REPO / "generator" / "scripts" / "gen_vllm_args.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
