"""`kaito-gen status`: the Kaito workspace table, read from live cluster objects.

Kaito users see `kubectl get workspace` columns (Instance, ResourceReady, InferenceReady, JobStarted,
WorkspaceSucceeded, State, Age) computed by the operator. kaito-gen has no operator, so this command
recomputes the same columns from what kaito-gen emitted (CONTRACT.md) and what the cluster made of it:

    NodePool (karpenter.sh/v1) + its NodeClaims  → RESOURCEREADY   (BYO: pods on Ready nodes)
    StatefulSet readyReplicas == replicas        → INFERENCEREADY  (inference workspaces)
    newest Job active/ready/succeeded/failed     → JOBSTARTED      (tuning workspaces)
    pods                                         → the waiting reasons Kaito hides in its controller log
                                                   (Unschedulable, ImagePullBackOff, OOMKilled, ...)

Layers, from the edge inwards:
* `status` (click) owns the clock, the kubeconfig and the exit codes;
* `fetch_objects` is the only code that talks to the API server (official `kubernetes` client, GET only);
* `build_rows(objects, now)` is pure: plain dicts in (the JSON `kubectl get -o json` prints), rows out;
* `render_table` / `rows_to_json` turn rows into text.

Exit codes: 0 when the table (possibly empty) was printed, whatever the workspaces' state — like
`kubectl get`; 2 when the cluster could not be read (bad kubeconfig, unreachable API server, 401/403) or
the command line is wrong.
"""

from kaito_gen.commands.status.command import make_status_command, status
from kaito_gen.commands.status.fetch import fetch_objects
from kaito_gen.commands.status.model import ClusterObjects, Reason, StatusError, StatusRow, humanize_age
from kaito_gen.commands.status.rows import build_rows
from kaito_gen.commands.status.table import render_table, rows_to_json

__all__ = [
    "ClusterObjects",
    "Reason",
    "StatusError",
    "StatusRow",
    "build_rows",
    "fetch_objects",
    "humanize_age",
    "make_status_command",
    "render_table",
    "rows_to_json",
    "status",
]
