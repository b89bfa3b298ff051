"""Prometheus scraping of an inference bundle: one prometheus-operator ServiceMonitor or PodMonitor.

Input: the WorkspacePlan and ``Target.monitoring`` (kaito-gen.yaml ``monitoring``). Output: nothing
unless ``kind`` is ``ServiceMonitor`` or ``PodMonitor`` and the bundle serves a preset model (an
``inference.template`` pod is the user's own, so its metrics port is unknown); tuning Jobs are never
scraped.

Both engines answer ``GET /metrics`` on the server port, container port ``http`` (5000). The
ServiceMonitor scrapes through the bundle's main Service; the headless Service carries the same
labels and the same port, so a ``keep`` relabeling on the Service name stops every pod from being
scraped twice. Multi-node vLLM: only the LeaderWorkerSet's leaders run the API server (the workers
are Ray nodes holding pipeline stages), which the leader-only Service already gives; the PodMonitor
selects worker index 0 for the same reason.
"""

from __future__ import annotations

from kaito_gen.compiler.emit.common import Manifest, manifest, metadata
from kaito_gen.compiler.plan import WorkspacePlan
from kaito_gen.models.target import Target

API = "monitoring.coreos.com/v1"
METRICS_PATH = "/metrics"
PORT_NAME = "http"  # the Service port and the container port of both engines
LWS_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"


def _endpoint(target: Target) -> Manifest:
    mon = target.monitoring
    out: Manifest = {"port": PORT_NAME, "path": METRICS_PATH, "scheme": "http", "interval": mon.interval}
    if mon.scrape_timeout is not None:
        out["scrapeTimeout"] = mon.scrape_timeout
    return out


def emit_monitoring(plan: WorkspacePlan, target: Target) -> list[Manifest]:
    mon = target.monitoring
    rw = plan.rw
    if mon.kind == "none" or rw.mode != "inference" or rw.model is None:
        return []
    meta = metadata(plan, rw.name, extra_labels=mon.labels)
    if mon.kind == "ServiceMonitor":
        endpoint = _endpoint(target)
        endpoint["relabelings"] = [
            {"sourceLabels": ["__meta_kubernetes_service_name"], "regex": rw.name, "action": "keep"}
        ]
        spec: Manifest = {
            "selector": {"matchLabels": dict(plan.selector)},
            "namespaceSelector": {"matchNames": [rw.namespace]},
            "endpoints": [endpoint],
        }
        return [manifest(API, "ServiceMonitor", meta, spec=spec)]
    selector = dict(plan.selector)
    if rw.engine == "vllm" and rw.node_count > 1:
        selector[LWS_WORKER_INDEX] = "0"
    spec = {
        "selector": {"matchLabels": dict(sorted(selector.items()))},
        "namespaceSelector": {"matchNames": [rw.namespace]},
        "podMetricsEndpoints": [_endpoint(target)],
    }
    return [manifest(API, "PodMonitor", meta, spec=spec)]
