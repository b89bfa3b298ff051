"""``resource.partition`` (Kaito v0.12 MIG slices and accelerator counts on BYO nodes), stage by stage:
the profile table, the refusals with their positions, sizing against the slice, and what is emitted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.partition import slice_sku
from kaito_gen.compiler.pipeline import Compiled, compile_inputs
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target

CATALOG = load_presets()
BYO = Target(cloud="byo")

BASE = """\
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: ws
  namespace: ml
  annotations: {}
resource:
  labelSelector:
    matchLabels:
      pool: mig
  partition:
    mode: mig
    profile: 3g.40gb
inference:
  preset:
    name: phi-3-mini-4k-instruct
"""


def compile_text(text: str, target: Target = BYO) -> Compiled:
    docs, problems = parse_documents("ws.yaml", text)
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("ws.yaml",)), CATALOG, target)


def errors(text: str, target: Target = BYO) -> list[str]:
    return [
        f"{d.pos.line}:{d.pos.col}:{'.'.join(map(str, d.path))}: {d.message} | {d.hint}"
        for d in compile_text(text, target).diagnostics
        if d.is_error
    ]


def workload(text: str, target: Target = BYO) -> dict[str, Any]:
    compiled = compile_text(text, target)
    assert compiled.ok, [str(d) for d in compiled.diagnostics]
    docs: list[dict[str, Any]] = [
        yaml.safe_load(body) for path, body in sorted(compiled.files.items()) if "statefulset-" in path
    ]
    assert len(docs) == 1
    return docs[0]


def vary(
    profile: str = "3g.40gb", *, sku: str = "", model: str = "phi-3-mini-4k-instruct", runtime: str = ""
) -> str:
    text = BASE.replace("profile: 3g.40gb", f"profile: {profile}").replace("phi-3-mini-4k-instruct", model)
    if sku:
        text = text.replace("  labelSelector:", f"  instanceType: {sku}\n  labelSelector:")
    if runtime:
        text = text.replace("annotations: {}", f"annotations: {{kaito.sh/runtime: {runtime}}}")
    return text


def test_the_mig_table_holds_kaitos_profiles_per_gpu() -> None:
    # Kaito pkg/utils/mig/mig.go knownProfiles: 38 names over 8 GPUs; KAITO.md §3.1's examples among them.
    names = set(CATALOG.mig_profiles(None))
    assert len(names) == 35  # A100 80 GiB and H100 80 GiB share their six
    assert {"1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb", "3g.47gb", "7g.141gb"} <= names
    a100 = CATALOG.find_sku("Standard_NC24ads_A100_v4")
    h100 = CATALOG.find_sku("Standard_NC40ads_H100_v5")
    h200 = CATALOG.find_sku("Standard_ND96isr_H200_v5")
    a10 = CATALOG.find_sku("Standard_NV36ads_A10_v5")
    assert a100 and h100 and h200 and a10
    assert list(CATALOG.mig_profiles(a100)) == [
        "1g.10gb",
        "1g.20gb",
        "2g.20gb",
        "3g.40gb",
        "4g.40gb",
        "7g.80gb",
    ]
    assert "3g.47gb" in CATALOG.mig_profiles(h100) and "3g.40gb" not in CATALOG.mig_profiles(h100)
    assert CATALOG.mig_profiles(h200)["7g.141gb"].memory_gib == Decimal(141)
    assert CATALOG.mig_profiles(a10) == {}
    for name, profile in CATALOG.mig_profiles(None).items():
        assert profile.resource == f"nvidia.com/mig-{name}"
        assert name.startswith(f"{profile.slices}g.") and name.endswith(f".{profile.memory_gib}gb")


def test_a_slice_is_sized_as_one_gpu_with_the_slice_memory() -> None:
    a100 = CATALOG.find_sku("Standard_NC24ads_A100_v4")
    view = slice_sku(CATALOG.mig_profiles(a100)["2g.20gb"], a100)
    assert (view.gpu_count, view.gpu_memory_gib, view.supports_bf16) == (1, Decimal(20), True)
    assert view.price_per_hour is None and view.name == "2g.20gb MIG slice of Standard_NC24ads_A100_v4"


# (id, workspace text, target, expected error: line:col:path: message fragment)
REFUSALS = [
    (
        "nap",
        vary(sku="Standard_NC24ads_A100_v4"),
        Target(cloud="azure"),
        "12:3:resource.partition: GPU partitioning is only supported with BYO nodes",
    ),
    (
        "v1alpha1",
        vary().replace("kaito.sh/v1beta1", "kaito.sh/v1alpha1"),
        BYO,
        "11:3:resource.partition: partition is a v1beta1 field",
    ),
    (
        "no-profile",
        vary().replace("    profile: 3g.40gb\n", ""),
        BYO,
        "11:3:resource.partition.profile: mode mig needs a profile",
    ),
    (
        "unknown-profile",
        vary("3g.41gb"),
        BYO,
        "13:5:resource.partition.profile: MIG profile '3g.41gb' does not exist in the MIG profile table"
        " | did you mean '3g.71gb'?",
    ),
    (
        "profile-not-on-this-gpu",
        vary("3g.47gb", sku="Standard_NC24ads_A100_v4"),
        BYO,
        "14:5:resource.partition.profile: MIG profile '3g.47gb' does not exist on NVIDIA A100 80 GiB "
        "(Standard_NC24ads_A100_v4) | did you mean '3g.40gb'? profiles: 1g.10gb, 1g.20gb, 2g.20gb, 3g.40gb",
    ),
    (
        "gpu-without-mig",
        vary("1g.10gb", sku="Standard_NV36ads_A10_v5"),
        BYO,
        "14:5:resource.partition.profile: Standard_NV36ads_A10_v5 (NVIDIA A10, 24 GiB) has no MIG profiles",
    ),
    (
        "weights-exceed-slice",
        vary("1g.5gb"),
        BYO,
        "13:5:resource.partition.profile: phi-3-mini-4k-instruct does not fit the MIG slice 1g.5gb: "
        "its weights need 7.12 GiB, the slice has 5 GiB | a larger slice that fits: 1g.18gb",
    ),
    (
        "weights-fit-but-not-the-overhead",
        vary("1g.10gb", sku="Standard_NC24ads_A100_v4", runtime="vllm"),
        BYO,
        "14:5:resource.partition.profile: phi-3-mini-4k-instruct does not fit the MIG slice 1g.10gb (10 GiB): "
        "7.26 GiB of weights",
    ),
    (
        "phi-4-on-an-h100-94gib-slice",
        vary("1g.24gb", sku="Standard_NC40ads_H100_v5", model="phi-4"),
        BYO,
        "14:5:resource.partition.profile: phi-4 does not fit the MIG slice 1g.24gb: its weights need 27.31 GiB, "
        "the slice has 24 GiB | a larger slice that fits: 3g.47gb, 4g.47gb, 7g.94gb",
    ),
    (
        "accelerator-count-exceeds-node",
        vary(sku="Standard_NC48ads_A100_v4").replace(
            "    mode: mig\n    profile: 3g.40gb\n", "    mode: accelerator\n    count: 3\n"
        ),
        BYO,
        "14:5:resource.partition.count: partition count 3 exceeds the 2 GPU(s) of a Standard_NC48ads_A100_v4 node",
    ),
]


@pytest.mark.parametrize(("case", "text", "target", "expected"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal(case: str, text: str, target: Target, expected: str) -> None:
    found = errors(text, target)
    assert any(e.startswith(expected.split(" | ", maxsplit=1)[0]) for e in found), found
    if " | " in expected:
        assert any(expected in e for e in found), found


def test_bypass_turns_the_slice_memory_error_into_a_warning() -> None:
    text = vary("1g.5gb").replace("annotations: {}", "annotations: {kaito.sh/bypass-resource-checks: ''}")
    compiled = compile_text(text)
    assert compiled.ok
    assert any("does not fit the MIG slice 1g.5gb" in d.message for d in compiled.diagnostics)


@pytest.mark.parametrize("runtime", ["transformers", "vllm"])
@pytest.mark.parametrize("sku", ["", "Standard_NC24ads_A100_v4"])
def test_a_mig_pod_requests_one_slice_and_tolerates_it(runtime: str, sku: str) -> None:
    sts = workload(vary(sku=sku, runtime=runtime))
    pod = sts["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    for side in ("limits", "requests"):
        assert resources[side]["nvidia.com/mig-3g.40gb"] == "1"
        assert "nvidia.com/gpu" not in resources[side]
    keys = [t["key"] for t in pod["tolerations"]]
    assert {"key": "nvidia.com/mig-3g.40gb", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert keys.count("nvidia.com/mig-3g.40gb") == 1
    assert sts["spec"]["replicas"] == 1
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["mig"]}]}]
    args = pod["containers"][0]["args"]
    if runtime == "vllm":
        # One device: no tensor parallelism, and Kaito turns the LMCache CPU offload off for MIG (§5.3).
        assert "--tensor-parallel-size=1" in args
        assert "--kaito-kv-cache-cpu-memory-utilization=0" in args


def test_transformers_context_is_sized_against_the_slice_not_the_gpu() -> None:
    on_slice = compile_text(vary("2g.20gb", sku="Standard_NC24ads_A100_v4", model="phi-3-mini-128k-instruct"))
    whole = compile_text(
        vary(sku="Standard_NC24ads_A100_v4", model="phi-3-mini-128k-instruct").replace(
            "  partition:\n    mode: mig\n    profile: 3g.40gb\n", ""
        )
    )
    (slice_ws,) = on_slice.resolved.workspaces
    (whole_ws,) = whole.resolved.workspaces
    assert slice_ws.sizing is not None and whole_ws.sizing is not None
    assert slice_ws.sizing.sku.gpu_memory_gib == 20 and whole_ws.sizing.sku.gpu_memory_gib == 80
    assert slice_ws.max_model_len is not None and whole_ws.max_model_len is not None
    assert slice_ws.max_model_len < whole_ws.max_model_len
    assert slice_ws.gpus_per_node == 1 and slice_ws.gpu_resource == "nvidia.com/mig-2g.20gb"


def test_accelerator_mode_requests_count_gpus_of_the_node() -> None:
    text = vary(sku="Standard_NC96ads_A100_v4", runtime="vllm").replace(
        "    mode: mig\n    profile: 3g.40gb\n", "    mode: accelerator\n    count: 2\n"
    )
    pod = workload(text)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert not any(t["key"].startswith("nvidia.com/mig-") for t in pod["tolerations"])
    args = pod["containers"][0]["args"]
    assert "--data-parallel-size=2" in args  # phi-3-mini takes under half of one 80 GiB GPU


def test_explain_names_the_slice() -> None:
    from kaito_gen.review.explain import explain, render_text

    (rw,) = compile_text(vary("2g.20gb")).resolved.workspaces
    data = explain(rw, CATALOG, BYO)
    assert data["partition"]["resource"] == "nvidia.com/mig-2g.20gb"
    assert data["sizing"]["gpuMemoryGiB"] == 20 and data["sizing"]["gpuCount"] == 1
    text = render_text(data)
    assert "partition  MIG slice 2g.20gb (20 GiB), resource nvidia.com/mig-2g.20gb: 1" in text
    assert "per GPU    20.0 GiB x 0.84 = 16.8 GiB usable" in text


@pytest.mark.parametrize(("profile", "slices"), [("1g.20gb", 1), ("3g.40gb", 3), ("7g.80gb", 7)])
def test_a_mig_pod_gets_its_slices_share_of_the_nodes_cpu_and_memory(profile: str, slices: int) -> None:
    from kaito_gen.catalog.allocatable import workload_resources

    sku = CATALOG.find_sku("Standard_NC24ads_A100_v4")  # one A100 80 GiB: 7 compute slices
    assert sku is not None and sku.gpu_count == 1
    whole = workload_resources(sku, 1)
    assert whole.limits is not None
    server = workload(vary(profile, sku="Standard_NC24ads_A100_v4"))["spec"]["template"]["spec"][
        "containers"
    ][0]
    limits = server["resources"]["limits"]
    assert str(limits[f"nvidia.com/mig-{profile}"]) == "1"
    expected = workload_resources(sku, Decimal(slices) / 7).manifest()
    assert {k: limits[k] for k in ("cpu", "memory")} == expected["limits"]
    if slices < 7:  # a slice of a GPU never gets the whole GPU's share of the node
        assert expected["limits"] != whole.manifest()["limits"]
