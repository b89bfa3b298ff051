"""kaito-gen.yaml ``monitoring``: Prometheus scraping of the inference servers, opt-in.

Both engines serve Prometheus metrics at ``GET /metrics`` on the server port (5000, container port
``http``): kaito-serve's own registry (gpu-runtime/kaito_runtime/serve/app.py) and vLLM's OpenAI
server plus kaito-vllm's ``kaito_*`` counters (gpu-runtime/kaito_runtime/vllm/middleware.py). With
``kind: ServiceMonitor`` or ``PodMonitor`` every inference bundle gets one prometheus-operator
object (``monitoring.coreos.com/v1``) that scrapes it (compiler/emit/monitoring.py). Off by
default: a cluster without the prometheus-operator CRDs would refuse the whole sync.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictStr, field_validator, model_validator

from kaito_gen.models.base import Frozen

# The prometheus-operator's Duration (its CRDs' pattern), e.g. "30s", "1m30s".
PROM_DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
_UNIT_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
# The labels kaito-gen itself puts on every object (compiler/plan.py): not the user's to override.
RESERVED_LABELS = frozenset(
    {
        "app.kubernetes.io/name",
        "app.kubernetes.io/component",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "kaito.sh/workspace",
    }
)
MonitorKind = Literal["none", "ServiceMonitor", "PodMonitor"]


def duration_ms(text: str) -> int:
    """Milliseconds of a Duration that matches PROM_DURATION."""
    return sum(int(n) * _UNIT_MS[unit] for n, unit in re.findall(r"([0-9]+)(ms|y|w|d|h|m|s)", text))


def _label_key_problem(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain"
    if not _LABEL_NAME.match(name):
        return f"label key {key!r}: the name must be 1-63 alphanumerics, '-', '_' or '.'"
    if key in RESERVED_LABELS:
        return f"label key {key!r} is set by kaito-gen on every object"
    return ""


class Monitoring(Frozen):
    """What scrapes each inference bundle: ``kind`` ``none`` (default), ``ServiceMonitor`` (through
    the bundle's Service) or ``PodMonitor`` (the serving pods directly)."""

    kind: MonitorKind = "none"
    interval: StrictStr = Field(default="30s", pattern=PROM_DURATION, max_length=32)
    # None: Prometheus' own default (its global scrape_timeout, 10s), capped at `interval`.
    scrape_timeout: StrictStr | None = Field(default=None, pattern=PROM_DURATION, max_length=32)
    # Labels on the ServiceMonitor / PodMonitor, so that a Prometheus' serviceMonitorSelector /
    # podMonitorSelector picks them (kube-prometheus-stack selects `release: <its release name>`).
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=64)
    # The namespace Prometheus runs in: a bundle's NetworkPolicy lets it reach the metrics port. The
    # default matches the Prometheus address KEDA triggers use (prometheus-operated.monitoring.svc).
    prometheus_namespace: StrictStr = Field(
        default="monitoring", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            problem = _label_key_problem(key)
            if problem:
                raise ValueError(problem)
            if not _LABEL_VALUE.match(value):
                raise ValueError(f"label {key!r}: value {value!r} is not a valid label value")
        return dict(sorted(labels.items()))

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> Monitoring:
        if duration_ms(self.interval) == 0:
            raise ValueError("interval must be longer than 0")
        if self.scrape_timeout is not None and duration_ms(self.scrape_timeout) > duration_ms(self.interval):
            # Prometheus refuses such a scrape config and keeps its old one.
            raise ValueError(
                f"scrapeTimeout {self.scrape_timeout} is longer than interval {self.interval}; "
                "Prometheus refuses such a scrape config"
            )
        return self
