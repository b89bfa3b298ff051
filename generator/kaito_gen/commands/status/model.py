"""The rows' data model, the labels kaito-gen emits, and small readers over cluster JSON."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import click

Obj = Mapping[str, Any]

# Labels and annotations kaito-gen puts on what it emits (.notes/CONTRACT.md).
MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=kaito-gen"
WORKSPACE_LABEL = "kaito.sh/workspace"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
ANN_INSTANCE = "kaito-gen.io/instance-type"
ANN_PROVISIONER = "kaito-gen.io/provisioner"
ANN_NODE_COUNT = "kaito-gen.io/node-count"
ANN_NODEPOOL = "kaito-gen.io/nodepool"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")

KARPENTER = ("karpenter.sh", "v1")

# Waiting reasons that are simply "in progress", not something a user has to act on.
BENIGN_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
# NodeClaim lifecycle (Karpenter v1): a claim is Launched (cloud instance exists), then Registered (the
# Node joined), then Initialized (startup taints gone, resources advertised); Ready summarises them.
NODECLAIM_STAGES = ("Launched", "Registered", "Initialized")

MAX_MESSAGE = 600  # characters kept of one cluster-provided message
MAX_REASONS_TABLE = 6  # reasons shown per workspace under the table; --json shows up to MAX_REASONS
MAX_REASONS = 100
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
REQUEST_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds for every API call
MAX_FOLLOW_UPS = 200  # NodePool / Node look-ups per invocation

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")


# --------------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True)
class ClusterObjects:
    """What `fetch_objects` read: plain JSON dicts, exactly as the API server returned them.

    `unreadable` maps a resource ("nodepools", "nodeclaims", "nodes") to why it could not be read
    (forbidden, Karpenter not installed); readiness that depends on it becomes "Unknown".
    """

    statefulsets: Sequence[Obj] = ()
    jobs: Sequence[Obj] = ()
    pods: Sequence[Obj] = ()
    nodepools: Sequence[Obj] = ()
    nodeclaims: Sequence[Obj] = ()
    nodes: Sequence[Obj] = ()
    unreadable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    """Why something is not ready, pointed at the object that says so (`pod/phi-3-0`)."""

    object: str
    reason: str
    message: str


@dataclass(frozen=True)
class StatusRow:
    """One workspace. Condition columns hold "True" / "False" / "Unknown", or "" where Kaito leaves the
    column empty (JOBSTARTED of an inference workspace, INFERENCEREADY of a tuning one)."""

    namespace: str
    name: str
    mode: str  # "inference" | "tuning"
    instance: str
    resource_ready: str
    inference_ready: str
    job_started: str
    workspace_succeeded: str
    state: str
    age: str
    created: str
    provisioner: str
    node_pool: str
    target_node_count: int
    ready_node_count: int | None
    workload: Mapping[str, str | int]
    reasons: tuple[Reason, ...]


class StatusError(click.ClickException):
    """The cluster could not be read: one line on stderr, exit code 2 (the CLI's "invalid input,
    configuration or usage"). A ClickException, so it renders the same with or without the CLI's guard."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"kaito-gen: {self.format_message()}", file=file, err=file is None)


# --------------------------------------------------------------------------------------------------
# Small typed accessors over untrusted JSON


def _at(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _str(obj: Any, *path: str) -> str:
    value = _at(obj, *path)
    return value if isinstance(value, str) else ""


def _int(obj: Any, *path: str, default: int = 0) -> int:
    value = _at(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _map(obj: Any, *path: str) -> Mapping[str, Any]:
    value = _at(obj, *path)
    return value if isinstance(value, Mapping) else {}


def _list(obj: Any, *path: str) -> list[Mapping[str, Any]]:
    value = _at(obj, *path)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _name(obj: Obj) -> str:
    return _str(obj, "metadata", "name")


def _namespace(obj: Obj) -> str:
    return _str(obj, "metadata", "namespace")


def _condition(obj: Obj, ctype: str) -> Mapping[str, Any]:
    for cond in _list(obj, "status", "conditions"):
        if cond.get("type") == ctype:
            return cond
    return {}


def _clean(text: str) -> str:
    """Cluster messages go to a terminal: drop control characters (no escape-sequence injection), fold
    whitespace onto one line and bound the length."""
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def _cond_text(cond: Mapping[str, Any]) -> str:
    reason, message = _str(cond, "reason"), _str(cond, "message")
    return ": ".join(part for part in (reason, message) if part)


def parse_time(value: str) -> datetime | None:
    """RFC 3339 timestamp from the API server (`2025-06-01T09:00:00Z`), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def humanize_age(seconds: float) -> str:
    """kubectl's AGE column (apimachinery `duration.HumanDuration`): 45s, 5m30s, 42m, 5h10m, 20h, 3d4h,
    120d, 2y30d. More precision while an object is young, less as it ages."""
    secs = int(seconds)  # truncates towards zero, like Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        rest = secs % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


# --------------------------------------------------------------------------------------------------
# The pure core


@dataclass
class _Group:
    statefulsets: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class _Index:
    nodepools: Mapping[str, Obj]
    claims_by_pool: Mapping[str, Sequence[Obj]]
    nodes: Mapping[str, Obj]
    pods_by_workspace: Mapping[tuple[str, str], Sequence[Obj]]
    unreadable: Mapping[str, str]


def _workspace_of(obj: Obj) -> str:
    labels = _map(obj, "metadata", "labels")
    for key in (WORKSPACE_LABEL, "app.kubernetes.io/instance"):
        value = labels.get(key)
        if isinstance(value, str) and value:
            return value
    return _name(obj)


def _created_key(obj: Obj) -> tuple[datetime, str]:
    created = parse_time(_str(obj, "metadata", "creationTimestamp"))
    return (created or datetime.min.replace(tzinfo=UTC), _name(obj))
