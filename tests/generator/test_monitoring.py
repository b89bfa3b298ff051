"""kaito-gen.yaml ``monitoring``: ServiceMonitor / PodMonitor per inference bundle, off by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kaito_gen.compiler.emit.monitoring import emit_monitoring
from kaito_gen.compiler.load import Inputs, load_presets
from kaito_gen.compiler.pipeline import compile_inputs
from kaito_gen.compiler.plan import plan
from kaito_gen.compiler.resolve import resolve
from kaito_gen.compiler.validate import validate
from kaito_gen.config import parse_config
from kaito_gen.core.errors import InputError
from kaito_gen.core.yamlsrc import parse_documents
from kaito_gen.models.monitoring import Monitoring, duration_ms
from kaito_gen.models.target import Target

CATALOG = load_presets()
HEAD = "apiVersion: kaito-gen.io/v1alpha1\nkind: Config\n"
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
{body}"""
PRESET = "inference:\n  preset:\n    name: {model}\n"
TUNING = """\
tuning:
  preset:
    name: phi-3-mini-4k-instruct
  method: qlora
  input:
    urls:
    - https://example.com/data.parquet
  output:
    volumeSource:
      persistentVolumeClaim:
        claimName: out
"""


def ws(
    model: str = "phi-3-mini-4k-instruct", sku: str = "Standard_NC24ads_A100_v4", vllm: bool = False
) -> str:
    annotations = "  annotations:\n    kaito.sh/runtime: vllm\n" if vllm else ""
    return WS.format(annotations=annotations, sku=sku, body=PRESET.format(model=model))


def inputs(text: str) -> Inputs:
    docs, problems = parse_documents("ws.yaml", text)
    return Inputs(tuple(docs), tuple(problems), ("ws.yaml",))


def monitors(text: str, target: Target) -> list[dict[str, Any]]:
    resolved = resolve(validate(inputs(text), target), CATALOG, target)
    assert not [d for d in resolved.diagnostics if d.is_error], resolved.diagnostics
    return [m for wp in plan(resolved, target).workspaces for m in emit_monitoring(wp, target)]


def on(kind: str, **extra: Any) -> Target:
    return Target(monitoring=Monitoring(kind=kind, **extra))


# --- kaito-gen.yaml ------------------------------------------------------------------------------


def test_config_maps_onto_the_target(tmp_path: Path) -> None:
    text = HEAD + "monitoring:\n  kind: PodMonitor\n  interval: 1m\n  labels:\n    release: prom\n"
    target = parse_config("kaito-gen.yaml", text, tmp_path).target()
    assert target.monitoring == Monitoring(kind="PodMonitor", interval="1m", labels={"release": "prom"})


def test_default_is_off(tmp_path: Path) -> None:
    assert parse_config("kaito-gen.yaml", HEAD, tmp_path).target().monitoring.kind == "none"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("  kind: ServiceMonitor\n  intervall: 30s\n", 5, "monitoring.intervall"),
        ("  kind: Prometheus\n", 4, "monitoring.kind"),
        ("  interval: 30 seconds\n", 4, "monitoring.interval"),
        ("  interval: 10s\n  scrapeTimeout: 1m\n", 3, "longer than interval"),
        ("  interval: '0'\n", 3, "longer than 0"),
        ("  labels:\n    kaito.sh/workspace: x\n", 4, "set by kaito-gen"),
        ("  labels:\n    release: -bad-\n", 4, "not a valid label value"),
    ],
)
def test_bad_monitoring_config_is_a_positioned_error(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    with pytest.raises(InputError) as info:
        parse_config("kaito-gen.yaml", HEAD + "monitoring:\n" + body, tmp_path)
    (diag,) = info.value.diagnostics
    assert message in diag.render()
    assert diag.pos.line == line, diag.render()


def test_duration_ms() -> None:
    assert duration_ms("1m30s") == 90_000
    assert duration_ms("250ms") == 250
    assert duration_ms("0") == 0


# --- the emitter ---------------------------------------------------------------------------------


def test_off_emits_nothing_and_changes_no_output() -> None:
    assert monitors(ws(), Target()) == []
    off = compile_inputs(inputs(ws()), CATALOG, Target()).files
    pod = compile_inputs(inputs(ws()), CATALOG, on("PodMonitor")).files
    assert set(pod) - set(off) == {"ml/ws/podmonitor-ws.yaml"}
    # Besides the monitor, only the kustomization (it lists it) and the NetworkPolicy (it admits
    # Prometheus' namespace) change.
    changed = {"ml/ws/kustomization.yaml", "ml/ws/networkpolicy-ws.yaml"}
    assert {k: v for k, v in pod.items() if k in off and k not in changed} == {
        k: v for k, v in off.items() if k not in changed
    }
    assert all(pod[k] != off[k] for k in changed)


@pytest.mark.parametrize("vllm", [False, True], ids=["transformers", "vllm"])
def test_service_monitor_scrapes_the_main_service_only(vllm: bool) -> None:
    (sm,) = monitors(ws(vllm=vllm), on("ServiceMonitor", labels={"release": "prom"}))
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"] == {"matchLabels": {"kaito.sh/workspace": "ws"}}
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "30s")
    assert endpoint["relabelings"] == [
        {"sourceLabels": ["__meta_kubernetes_service_name"], "regex": "ws", "action": "keep"}
    ]


def test_pod_monitor_of_a_multi_node_vllm_group_selects_the_leaders() -> None:
    (pm,) = monitors(ws("deepseek-r1-0528", "Standard_NC80adis_H100_v5", vllm=True), on("PodMonitor"))
    assert pm["spec"]["selector"]["matchLabels"] == {
        "kaito.sh/workspace": "ws",
        "leaderworkerset.sigs.k8s.io/worker-index": "0",
    }
    (single,) = monitors(ws(vllm=True), on("PodMonitor", scrape_timeout="5s"))
    assert single["spec"]["selector"]["matchLabels"] == {"kaito.sh/workspace": "ws"}
    assert single["spec"]["podMetricsEndpoints"][0]["scrapeTimeout"] == "5s"


def test_the_ports_the_monitors_name_exist_on_the_pods_and_services() -> None:
    files = compile_inputs(inputs(ws(vllm=True)), CATALOG, on("ServiceMonitor")).files
    svc = yaml.safe_load(files["ml/ws/service-ws.yaml"])
    assert "http" in [p["name"] for p in svc["spec"]["ports"]]
    sts = yaml.safe_load(files["ml/ws/statefulset-ws.yaml"])
    (server,) = sts["spec"]["template"]["spec"]["containers"]
    assert {"name": "http", "containerPort": 5000, "protocol": "TCP"} in server["ports"]


def test_tuning_jobs_are_not_scraped() -> None:
    text = WS.format(annotations="", sku="Standard_NC24ads_A100_v4", body=TUNING)
    assert monitors(text, on("ServiceMonitor")) == []


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PodMonitor"])
def test_monitors_validate_against_the_prometheus_operator_crds(
    kind: str, manifest_validator_factory: Any
) -> None:
    validator = manifest_validator_factory("azure")
    docs = monitors(ws(vllm=True), on(kind, scrape_timeout="10s", labels={"release": "prom"}))
    docs += monitors(ws("deepseek-r1-0528", "Standard_NC80adis_H100_v5", vllm=True), on(kind))
    validator.assert_valid(docs, context=kind)
    broken = [dict(docs[0], spec={**docs[0]["spec"], "selector": "everything"})]
    with pytest.raises(AssertionError):
        validator.assert_valid(broken, context=kind)


def test_argo_cd_syncs_the_monitors_after_the_workloads() -> None:
    from kaito_gen.compiler.emit.bundle import Bundle
    from kaito_gen.compiler.emit.gitops import decorate

    target = on("ServiceMonitor")
    resolved = resolve(validate(inputs(ws()), target), CATALOG, target)
    (wp,) = plan(resolved, target).workspaces
    (sm,) = emit_monitoring(wp, target)
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ws"}}
    (bundle,) = decorate((Bundle("ml/ws", ("ws.yaml",), (sts, sm)),), "argocd", True)
    assert bundle.manifests[1]["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "1"}
    assert "annotations" not in bundle.manifests[0]["metadata"]
    assert "annotations" not in sm["metadata"], "decorate copies, never mutates"
    (flux,) = decorate((Bundle("ml/ws", ("ws.yaml",), (sm,)),), "flux", True)
    assert "annotations" not in flux.manifests[0]["metadata"]


def _policy_peers(target: Target) -> list[dict[str, Any]]:
    files = compile_inputs(inputs(ws()), CATALOG, target).files
    policies = [yaml.safe_load(b) for p, b in sorted(files.items()) if "networkpolicy-" in p]
    assert len(policies) == 1, sorted(files)
    return list(policies[0]["spec"]["ingress"][0]["from"])


def test_with_monitoring_on_the_network_policy_admits_prometheus_namespace() -> None:
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert prometheus not in _policy_peers(Target())
    assert prometheus in _policy_peers(on("ServiceMonitor"))
    other = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "obs"}}}
    assert other in _policy_peers(on("PodMonitor", prometheus_namespace="obs"))
    # Prometheus in the bundle's own namespace is already admitted by the namespace rule.
    assert _policy_peers(on("ServiceMonitor", prometheus_namespace="ml")) == _policy_peers(Target())
