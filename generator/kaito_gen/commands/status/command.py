"""The click command: owns the clock, the kubeconfig and the exit codes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from kaito_gen.commands.status.fetch import connect, fetch_objects
from kaito_gen.commands.status.model import _DNS_LABEL, MANAGED_BY_SELECTOR
from kaito_gen.commands.status.rows import build_rows
from kaito_gen.commands.status.table import render_table, rows_to_json


def _dns_label(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _DNS_LABEL.match(value):
        raise click.BadParameter(f"{value!r} is not a valid Kubernetes name (lowercase DNS-1123 label)")
    return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


def make_status_command(clock: Callable[[], datetime] = _utc_now) -> click.Command:
    """The `status` command with an injected clock (tests pass a fixed one; the CLI uses the real time)."""

    @click.command("status")
    @click.option(
        "-n",
        "--namespace",
        callback=_dns_label,
        help="Namespace to read (default: the kubeconfig context's).",
    )
    @click.option("-A", "--all-namespaces", is_flag=True, help="Read every namespace.")
    @click.option(
        "--kubeconfig",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
    )
    @click.option("--context", help="Kubeconfig context (default: current-context).")
    @click.option("-w", "--workspace", callback=_dns_label, help="Only this workspace.")
    @click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (every reason, counts) instead of the table."
    )
    def status(
        *,
        namespace: str | None,
        all_namespaces: bool,
        kubeconfig: Path | None,
        context: str | None,
        workspace: str | None,
        as_json: bool,
    ) -> None:
        """Show kaito-gen workspaces as Kaito's `kubectl get workspace` table, read-only.

        Readiness comes from the NodePool and its NodeClaims (BYO: the pods' nodes), the StatefulSet,
        the newest Job and the pods; reasons such as Unschedulable, ImagePullBackOff, CrashLoopBackOff,
        OOMKilled and NodeClaims that never launched are listed under the table.

        Exit codes: 0 table printed (also when nothing is ready, or nothing found); 2 the cluster could
        not be read (kubeconfig, connection, 401/403) or bad options.
        """
        if namespace and all_namespaces:
            raise click.UsageError("--namespace and --all-namespaces exclude each other")
        api_client, context_namespace, host = connect(kubeconfig, context)
        target = None if all_namespaces else (namespace or context_namespace)
        try:
            objects = fetch_objects(api_client, host, target, workspace)
        finally:
            api_client.close()
        rows = build_rows(objects, clock())
        if as_json:
            click.echo(json.dumps(rows_to_json(rows), indent=2))
            return
        if not rows:
            scope = "any namespace" if target is None else f"namespace {target}"
            what = f"workspace {workspace}" if workspace else "kaito-gen workspaces"
            click.echo(
                f"No {what} found in {scope} "
                f"(looked for StatefulSets and Jobs labelled {MANAGED_BY_SELECTOR}).",
                err=True,
            )
            return
        colour = "NO_COLOR" not in os.environ  # click.echo strips the styling anyway when not on a TTY
        click.echo(render_table(rows, all_namespaces=target is None, colour=colour), nl=False)

    return status


status = make_status_command()
