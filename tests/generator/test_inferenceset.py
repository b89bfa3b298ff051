"""InferenceSet (issue 9 item 4): Kaito's admission rules, positioned at the set's own lines and all
at once; one scaled workload, one Service, NodePool limits from nodeCountLimit; a KEDA ScaledObject
with Kaito's behaviour when the scaledobject.kaito.sh annotations ask for it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import Compiled, compile_inputs
from kaito_gen.core.errors import format_path
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.target import Target
from kaito_gen.review.explain import explain, render_text

CATALOG = load_presets()
PROM = Target(autoscaling={"prometheus_address": "http://prom.monitoring.svc:9090"})


def set_text(
    *,
    name: str = "chat",
    replicas: str = "2",
    limit: str | None = None,
    preset: str = "phi-4-mini-instruct",
    sku: str = "Standard_NC24ads_A100_v4",
    annotations: dict[str, str] | None = None,
    extra_spec: str = "",
    extra_inference: str = "",
    version: str = "kaito.sh/v1beta1",
) -> str:
    ann = "".join(f'    {k}: "{v}"\n' for k, v in (annotations or {}).items())
    return (
        f"apiVersion: {version}\nkind: InferenceSet\nmetadata:\n  name: {name}\n  namespace: ml\n"
        + (f"  annotations:\n{ann}" if ann else "")
        + f"spec:\n  replicas: {replicas}\n"
        + (f"  nodeCountLimit: {limit}\n" if limit is not None else "")
        + "  labelSelector:\n    matchLabels:\n      apps: chat\n"
        + extra_spec
        + f"  template:\n    resource:\n      instanceType: {sku}\n"
        + f"    inference:\n      preset:\n        name: {preset}\n"
        + extra_inference
    )


def compile_text(text: str, target: Target | None = None) -> Compiled:
    docs, problems = parse_documents("set.yaml", text)
    return compile_inputs(Inputs(tuple(docs), tuple(problems), ("set.yaml",)), CATALOG, target or PROM)


def docs(compiled: Compiled, bundle: str = "ml/chat") -> dict[str, Any]:
    """{kind: manifest} of one bundle."""
    out = {}
    for path, text in compiled.files.items():
        if (
            path.startswith(bundle + "/")
            and path.endswith(".yaml")
            and not path.endswith("kustomization.yaml")
        ):
            doc = yaml.safe_load(text)
            out[doc["kind"]] = doc
    return out


def found(compiled: Compiled, errors: bool = True) -> list[tuple[str, int, str]]:
    return [
        (format_path(d.path), d.pos.line, d.message) for d in compiled.diagnostics if d.is_error == errors
    ]


KEDA = {
    "scaledobject.kaito.sh/auto-provision": "true",
    "scaledobject.kaito.sh/threshold": "10",
    "scaledobject.kaito.sh/max-replicas": "4",
}


# --- admission rules -----------------------------------------------------------------------------

RULES = [
    ("negative-replicas", {"replicas": "-1"}, "spec.replicas", "must be non-negative"),
    ("negative-limit", {"limit": "-2"}, "spec.nodeCountLimit", "must be non-negative"),
    ("replicas-not-int", {"replicas": "two"}, "spec.replicas", "valid integer"),
    (
        "unknown-preset",
        {"preset": "phi-4-mini-instruc"},
        "spec.template.inference.preset.name",
        "Unsupported",
    ),
    (
        "unknown-sku",
        {"sku": "Standard_NC24ads_A100_v9"},
        "spec.template.resource.instanceType",
        "not a known GPU SKU",
    ),
    ("bad-name", {"name": "Chat_1"}, "metadata.name", "DNS-1123 label"),
    ("cache", {"extra_spec": ""}, "", ""),  # placeholder replaced below
]
RULES[-1] = (
    "strength-on-vllm",
    {
        "extra_inference": '      adapters:\n        - source: {name: a, image: "r.io/a:1"}\n          strength: "0.5"\n'
    },
    "spec.template.inference.adapters[0].strength",
    "vLLM does not support adapter strength",
)
RULES += [
    (
        "auto-provision-value",
        {"annotations": {"scaledobject.kaito.sh/auto-provision": "yes"}},
        "metadata.annotations.scaledobject.kaito.sh/auto-provision",
        "invalid value 'yes'",
    ),
    (
        "threshold-missing",
        {"annotations": {"scaledobject.kaito.sh/auto-provision": "true", "scaledobject.kaito.sh/max-replicas": "3"}},
        "metadata.annotations.scaledobject.kaito.sh/auto-provision",
        "needs annotation scaledobject.kaito.sh/threshold",
    ),
    (
        "threshold-not-number",
        {"annotations": {**KEDA, "scaledobject.kaito.sh/threshold": "ten"}},
        "metadata.annotations.scaledobject.kaito.sh/threshold",
        "must be a positive number",
    ),
    (
        "max-too-large",
        {"annotations": {**KEDA, "scaledobject.kaito.sh/max-replicas": "99999999999"}},
        "metadata.annotations.scaledobject.kaito.sh/max-replicas",
        "integer from 1 to 1000",
    ),
    (
        "max-below-min",
        {"annotations": {**KEDA, "scaledobject.kaito.sh/max-replicas": "1"}},
        "metadata.annotations.scaledobject.kaito.sh/max-replicas",
        "below spec.replicas 2",
    ),
    (
        "no-upper-bound",
        {"annotations": {"scaledobject.kaito.sh/auto-provision": "true", "scaledobject.kaito.sh/threshold": "5"}},
        "metadata.annotations.scaledobject.kaito.sh/auto-provision",
        "needs an upper bound",
    ),
    (
        "metric-name",
        {"annotations": {**KEDA, "scaledobject.kaito.sh/metricName": "vllm num waiting"}},
        "metadata.annotations.scaledobject.kaito.sh/metricName",
        "not a Prometheus metric name",
    ),
    (
        "window-schedule",
        {"extra_spec": '  autoUpgrade:\n    maintenanceWindow:\n      schedule: "0 2 * *"\n'},
        "spec.autoUpgrade.maintenanceWindow.schedule",
        "invalid cron expression",
    ),
    (
        "window-duration",
        {"extra_spec": '  autoUpgrade:\n    maintenanceWindow:\n      schedule: "0 2 * * 6"\n      duration: "0s"\n'},
        "spec.autoUpgrade.maintenanceWindow.duration",
        "positive Go duration",
    ),
    (
        "window-no-schedule",
        {"extra_spec": '  autoUpgrade:\n    maintenanceWindow:\n      duration: "2h"\n'},
        "spec.autoUpgrade.maintenanceWindow",
        "schedule is required",
    ),
    (
        "over-node-limit",
        {"replicas": "3", "limit": "2"},
        "spec.replicas",
        "3 replicas need 3 GPU nodes, over spec.nodeCountLimit 2",
    ),
    (
        "limit-below-one-replica",
        {"preset": "llama-3.3-70b-instruct", "replicas": "1", "limit": "2", "annotations": KEDA,
         "extra_inference": "        presetOptions:\n          modelAccessSecret: hf\n"},
        "spec.nodeCountLimit",
        "leaves room for 0 replicas",
    ),
    (
        "update-strategy-type",
        {"extra_spec": "  updateStrategy:\n    type: Rolling\n"},
        "spec.updateStrategy.type",
        "is not allowed",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "kwargs", "path", "needle"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_is_positioned_at_the_sets_own_field(
    case: str, kwargs: dict[str, Any], path: str, needle: str
) -> None:
    text = set_text(**kwargs)
    compiled = compile_text(text)
    assert not compiled.ok and compiled.files == {}
    hits = [(p, line, m) for p, line, m in found(compiled) if p == path and needle in m]
    assert hits, found(compiled)
    lines = text.splitlines()
    key = path.rsplit(".", 1)[-1].split("[", maxsplit=1)[0]
    assert key in lines[hits[0][1] - 1], (hits, lines[hits[0][1] - 1])


def test_every_error_at_once_and_no_follow_on() -> None:
    text = set_text(
        name="Bad_Name",
        replicas="-1",
        sku="Standard_NC24ads_A100_v9",
        annotations={"scaledobject.kaito.sh/auto-provision": "maybe"},
        extra_spec='  autoUpgrade:\n    maintenanceWindow:\n      schedule: "x"\n',
    ).replace("      instanceType:", "      count: 2\n      instanceType:")
    paths = {p for p, _, _ in found(compile_text(text))}
    assert paths == {
        "metadata.name",
        "metadata.annotations.scaledobject.kaito.sh/auto-provision",
        "spec.replicas",
        "spec.template.resource.count",  # an InferenceSet's template has no count
        "spec.template.resource.instanceType",
        "spec.autoUpgrade.maintenanceWindow.schedule",
    }


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("spec: {}\n", "labelSelector"),
        ("spec:\n  labelSelector: {matchLabels: {a: b}}\n", "required field 'template' is missing"),
        (
            "spec:\n  labelSelector: {matchLabels: {a: b}}\n  template:\n    resource: {instanceType: Standard_NC24ads_A100_v4}\n",
            "required field 'inference' is missing",
        ),
        ("", "required field 'spec' is missing"),
        (
            "spec:\n  labelSelector: {matchLabels: {a: b}}\n  template:\n    cache: {}\n"
            "    resource: {instanceType: Standard_NC24ads_A100_v4}\n    inference: {preset: {name: phi-4-mini-instruct}}\n",
            "cache",
        ),
    ],
    ids=["empty-spec", "no-template", "no-inference", "no-spec", "cache"],
)
def test_an_incomplete_set_is_an_error_never_dropped(body: str, needle: str) -> None:
    compiled = compile_text(
        "apiVersion: kaito.sh/v1alpha1\nkind: InferenceSet\nmetadata:\n  name: x\n" + body
    )
    errors = [d for d in compiled.diagnostics if d.is_error]
    assert any(needle in d.message for d in errors), errors
    assert compiled.files == {}


def test_partition_rules_of_a_set() -> None:
    text = set_text(sku="Standard_NC24ads_A100_v4").replace(
        "      instanceType:", "      partition: {mode: accelerator, count: 1}\n      instanceType:"
    )
    messages = [m for _, _, m in found(compile_text(text, Target(cloud="byo")))]
    assert any('only "mig" is supported' in m for m in messages)
    assert any("instanceType must be empty when partition is set" in m for m in messages)


def test_warnings_for_autoupgrade_and_stray_annotations() -> None:
    text = set_text(
        annotations={"scaledobject.kaito.sh/threshold": "3", "scaledobject.kaito.sh/maxreplicas": "3"},
        extra_spec="  autoUpgrade:\n    enabled: true\n",
    )
    compiled = compile_text(text)
    assert compiled.ok
    warned = [m for _, _, m in found(compiled, errors=False)]
    assert any("autoUpgrade has no effect" in m for m in warned)
    assert any("scaledobject.kaito.sh/maxreplicas has no meaning" in m for m in warned)
    assert any("ignored without scaledobject.kaito.sh/auto-provision" in m for m in warned)
    assert "ScaledObject" not in docs(compiled)


# --- what a set compiles to ----------------------------------------------------------------------


def test_fixed_set_is_one_statefulset_with_replicas_one_service_and_limits() -> None:
    compiled = compile_text(set_text(replicas="3", limit="5"))
    assert compiled.ok, compiled.diagnostics
    out = docs(compiled)
    sts = out["StatefulSet"]
    assert sts["spec"]["replicas"] == 3
    assert "--served-model-name=chat" in sts["spec"]["template"]["spec"]["containers"][0]["args"]
    assert sts["metadata"]["annotations"]["kaito-gen.io/node-count"] == "3"
    pool = out["NodePool"]
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "5", "nodes": "5"}
    assert pool["metadata"]["labels"]["karpenter.kaito.sh/inferenceset"] == "chat"
    assert out["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert "ScaledObject" not in out
    services = [p for p in compiled.files if "/service-" in p]
    assert services == ["ml/chat/service-chat-headless.yaml", "ml/chat/service-chat.yaml"]


def test_without_limit_the_pool_holds_exactly_the_replicas() -> None:
    pool = docs(compile_text(set_text(replicas="2")))["NodePool"]
    assert pool["spec"]["limits"] == {"nvidia.com/gpu": "2", "nodes": "2"}


def test_multi_node_set_is_a_leaderworkerset_with_replicas_and_a_group_sized_budget() -> None:
    text = set_text(
        preset="llama-3.3-70b-instruct",
        replicas="2",
        limit="6",
        extra_inference="        presetOptions:\n          modelAccessSecret: hf\n",
    )
    out = docs(compile_text(text))
    lws = out["LeaderWorkerSet"]
    assert lws["spec"]["replicas"] == 2 and lws["spec"]["leaderWorkerTemplate"]["size"] == 3
    assert out["NodePool"]["spec"]["limits"]["nodes"] == "6"
    assert lws["metadata"]["annotations"]["kaito-gen.io/node-count"] == "6"


def test_autoscaled_set_gets_a_scaledobject_and_no_replicas() -> None:
    compiled = compile_text(
        set_text(replicas="1", limit="3", annotations={**KEDA, "kaito.sh/runtime": "vllm"})
    )
    assert compiled.ok, compiled.diagnostics
    out = docs(compiled)
    assert "replicas" not in out["StatefulSet"]["spec"]  # the HPA owns it
    so = out["ScaledObject"]["spec"]
    assert so["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "chat"}
    # max-replicas 4 needs 4 nodes; nodeCountLimit 3 caps it (with a warning)
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (1, 3)
    behavior = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 60
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 600}]
    (trigger,) = so["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "serverAddress": "http://prom.monitoring.svc:9090",
        "query": 'sum(vllm:num_requests_waiting{namespace="ml",pod=~"chat-[0-9]+"})',
        "threshold": "10",
    }
    warned = [m for _, _, m in found(compiled, errors=False)]
    assert any("KEDA scales to at most 3" in m for m in warned)
    assert not any("prometheus-operated" in m for m in warned)


def test_default_prometheus_address_is_used_and_warned_once() -> None:
    two = set_text(annotations=KEDA) + "---\n" + set_text(name="other", annotations=KEDA)
    compiled = compile_text(two, Target())
    assert compiled.ok
    so = docs(compiled, "ml/other")["ScaledObject"]
    assert (
        so["spec"]["triggers"][0]["metadata"]["serverAddress"]
        == "http://prometheus-operated.monitoring.svc:9090"
    )
    warned = [m for _, _, m in found(compiled, errors=False) if "no address is configured" in m]
    assert len(warned) == 1
    hints = [d.hint for d in compiled.diagnostics if "no address is configured" in d.message]
    assert "autoscaling.prometheusAddress" in hints[0] and "kaito-gen.yaml" in hints[0]


def test_max_replicas_defaults_to_what_the_node_limit_holds() -> None:
    ann = {k: v for k, v in KEDA.items() if not k.endswith("max-replicas")}
    so = docs(compile_text(set_text(replicas="1", limit="5", annotations=ann)))["ScaledObject"]
    assert so["spec"]["maxReplicaCount"] == 5


def test_kaito_external_scaler_is_the_alternative() -> None:
    target = Target(autoscaling={"scaler": "kaito"})
    compiled = compile_text(set_text(annotations=KEDA), target)
    (trigger,) = docs(compiled)["ScaledObject"]["spec"]["triggers"]
    assert trigger["type"] == "external"
    assert trigger["metadata"]["inferenceSetName"] == "chat"
    assert trigger["authenticationRef"] == {
        "name": "keda-kaito-scaler-creds",
        "kind": "ClusterTriggerAuthentication",
    }


def test_autoscaled_multi_node_set_scales_the_leaderworkerset() -> None:
    text = set_text(
        preset="llama-3.3-70b-instruct",
        replicas="1",
        annotations={**KEDA, "scaledobject.kaito.sh/max-replicas": "2"},
        extra_inference="        presetOptions:\n          modelAccessSecret: hf\n",
    )
    out = docs(compile_text(text))
    assert "replicas" not in out["LeaderWorkerSet"]["spec"]
    assert out["ScaledObject"]["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    assert out["NodePool"]["spec"]["limits"]["nodes"] == "6"  # 2 replicas x 3 nodes


def test_static_nodepool_and_deployment_features() -> None:
    features = {"nodepool_replicas": True, "single_node_deployment": True}
    text = set_text(replicas="2", preset="phi-3-mini-4k-instruct")  # transformers: a Deployment
    out = docs(compile_text(text, Target(features=features)))
    assert out["NodePool"]["spec"]["replicas"] == 2
    dep = out["Deployment"]["spec"]
    assert dep["replicas"] == 2 and dep["strategy"]["type"] == "RollingUpdate"
    compiled = compile_text(set_text(replicas="1", annotations=KEDA), Target(features=features))
    assert "replicas" not in docs(compiled)["NodePool"]["spec"]
    assert any("dynamic" in m for _, _, m in found(compiled, errors=False))


def test_update_strategy_reaches_the_statefulset() -> None:
    extra = "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 2\n"
    sts = docs(compile_text(set_text(replicas="4", extra_spec=extra)))["StatefulSet"]
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}


def test_set_and_workspace_of_one_name_collide() -> None:
    ws = (
        "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: chat\n  namespace: ml\n"
        "resource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n    matchLabels: {a: b}\n"
        "inference:\n  preset:\n    name: phi-4-mini-instruct\n"
    )
    compiled = compile_text(ws + "---\n" + set_text())
    assert any("defined twice" in m for _, _, m in found(compiled))


def test_explain_says_what_the_set_compiles_to() -> None:
    compiled = compile_text(
        set_text(replicas="1", limit="4", annotations={**KEDA, "kaito.sh/runtime": "vllm"})
    )
    (rw,) = compiled.resolved.workspaces
    data = explain(rw, CATALOG, PROM)
    iset = data["inferenceSet"]
    assert iset["workload"] == "StatefulSet/chat" and iset["nodePoolLimitNodes"] == 4
    assert iset["autoscaling"]["maxReplicas"] == 4
    text = render_text(data)
    assert "InferenceSet → StatefulSet/chat" in text and "scaled by KEDA ScaledObject/chat" in text


def test_rendered_set_validates_against_the_crds(manifest_validator_factory) -> None:
    texts = [
        set_text(replicas="2", limit="3"),
        set_text(name="auto", annotations=KEDA),
        set_text(
            name="big",
            preset="llama-3.3-70b-instruct",
            annotations={**KEDA, "scaledobject.kaito.sh/max-replicas": "2"},
            extra_inference="        presetOptions:\n          modelAccessSecret: hf\n",
        ),
    ]
    compiled = compile_text("---\n".join(texts), Target(autoscaling={"scaler": "kaito"}))
    assert compiled.ok, compiled.diagnostics
    manifests = [
        yaml.safe_load(t)
        for p, t in compiled.files.items()
        if p.endswith(".yaml") and not p.endswith("kustomization.yaml")
    ]
    assert {"ScaledObject", "LeaderWorkerSet", "StatefulSet", "NodePool"} <= {m["kind"] for m in manifests}
    manifest_validator_factory("azure").assert_valid(manifests, context="inferenceset")
