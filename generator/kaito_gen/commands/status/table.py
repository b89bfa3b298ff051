"""Rows to text: the `kubectl get workspace`-style table and the JSON form."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from kaito_gen.commands.status.model import MAX_REASONS_TABLE, StatusRow, _clean

COLUMNS = (
    "NAME",
    "INSTANCE",
    "RESOURCEREADY",
    "INFERENCEREADY",
    "JOBSTARTED",
    "WORKSPACESUCCEEDED",
    "STATE",
    "AGE",
)
_GOOD = frozenset({"True", "Ready", "Succeeded", "Running"})
_BAD = frozenset({"False", "NotReady", "Failed"})


def _cells(row: StatusRow, all_namespaces: bool) -> list[str]:
    cells = [
        row.name,
        row.instance,
        row.resource_ready,
        row.inference_ready,
        row.job_started,
        row.workspace_succeeded,
        row.state,
        row.age,
    ]
    return [_clean(cell) for cell in ([row.namespace] if all_namespaces else []) + cells]


def _paint(cell: str, width: int, colour: bool) -> str:
    padded = cell.ljust(width)
    if not colour:
        return padded
    if cell in _GOOD:
        return click.style(padded, fg="green")
    if cell in _BAD:
        return click.style(padded, fg="red")
    if cell in ("Pending", "Unknown"):
        return click.style(padded, fg="yellow")
    return padded


def render_table(rows: Sequence[StatusRow], *, all_namespaces: bool = False, colour: bool = False) -> str:
    """kubectl-style columns (3 spaces apart), then the waiting reasons per workspace."""
    header = (["NAMESPACE"] if all_namespaces else []) + list(COLUMNS)
    body = [_cells(row, all_namespaces) for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = []
    for line in [header, *body]:
        painted = [_paint(cell, widths[i], colour and line is not header) for i, cell in enumerate(line)]
        lines.append("   ".join(painted).rstrip())

    reason_lines: list[tuple[str, ...]] = []
    for row in rows:
        label = _clean(f"{row.namespace}/{row.name}" if all_namespaces else row.name)
        reason_lines += [
            (label, _clean(r.object), _clean(r.reason), r.message) for r in row.reasons[:MAX_REASONS_TABLE]
        ]
        hidden = len(row.reasons) - MAX_REASONS_TABLE
        if hidden > 0:
            reason_lines.append((label, "", "", f"… and {hidden} more (--json lists them all)"))
    if reason_lines:
        reason_widths = [max(len(entry[i]) for entry in reason_lines) for i in range(3)]
        lines += ["", "Waiting reasons:"]
        for entry in reason_lines:
            cells = [cell.ljust(reason_widths[i]) for i, cell in enumerate(entry[:3])] + [entry[3]]
            lines.append(("  " + "   ".join(cells)).rstrip())
    return "\n".join(lines) + "\n"


def rows_to_json(rows: Sequence[StatusRow]) -> dict[str, Any]:
    """The `--json` document. Condition values are "True"/"False"/"Unknown", or null where the column does not
    apply to the workspace's mode."""

    def cond(value: str) -> str | None:
        return value or None

    return {
        "workspaces": [
            {
                "namespace": row.namespace,
                "name": row.name,
                "mode": row.mode,
                "instance": row.instance or None,
                "resourceReady": cond(row.resource_ready),
                "inferenceReady": cond(row.inference_ready),
                "jobStarted": cond(row.job_started),
                "workspaceSucceeded": cond(row.workspace_succeeded),
                "state": row.state,
                "age": row.age,
                "creationTimestamp": row.created or None,
                "provisioner": row.provisioner or None,
                "nodePool": row.node_pool or None,
                "targetNodeCount": row.target_node_count,
                "readyNodeCount": row.ready_node_count,
                "workload": dict(row.workload),
                "reasons": [
                    {"object": r.object, "reason": r.reason, "message": r.message} for r in row.reasons
                ],
            }
            for row in rows
        ]
    }


# --------------------------------------------------------------------------------------------------
# The cluster edge
