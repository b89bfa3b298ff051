"""The faces of a :class:`~kaito_gen.review.diff.DiffReport`: text (a terminal), markdown (the PR
comment, one collapsible section per bundle) and JSON. Values are shown terraform-plan style::

    ~ spec.replicas: 1 → 2
    ~ spec.template.spec.containers[chat].args --model: microsoft/a → microsoft/b
    + spec.template.spec.volumes[adapters]: {"emptyDir": {}}
    ~ data.training_config.yaml:
        @@ -9 +9 @@
        -    r: 8
        +    r: 16
    ~ data.token: (secret data changed)
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

from kaito_gen.review.diff import SEVERITY, BundleDiff, Change, DiffReport, price_unit
from kaito_gen.review.values import SECRET_NOTE, ValueChange, show

COMMENT_MARKER = "<!-- kaito-gen-diff -->"  # lets the GitHub action update its own PR comment
# GitHub refuses comments over 65,536 characters; leave room for the marker and the notes.
MAX_COMMENT = 60_000


def _value(value: object, arg: str) -> str:
    if arg and value is None:
        return "(no value)"
    return show(value, plain=bool(arg))


def value_lines(change: ValueChange) -> list[str]:
    """One changed value as text lines: ``~ path: old → new``, or a header and its diff lines."""
    where = change.where
    if change.secret:
        note = {"~": SECRET_NOTE, "+": "(secret data added)", "-": "(secret data removed)"}[change.op]
        return [f"{change.op} {where}: {note}"]
    if change.lines:
        lines = [f"{change.op} {where}:"] + [f"    {line}" for line in change.lines]
        if change.more_lines:
            lines.append(f"    … and {change.more_lines} more diff lines")
        return lines
    if change.op == "~":
        return [f"~ {where}: {_value(change.old, change.arg)} → {_value(change.new, change.arg)}"]
    side = change.new if change.op == "+" else change.old
    if change.arg and side is None:  # a bare --flag
        return [f"{change.op} {where}"]
    return [f"{change.op} {where}: {_value(side, change.arg)}"]


def change_lines(change: Change) -> list[str]:
    lines = [line for v in change.values for line in value_lines(v)]
    if change.more_values:
        lines.append(f"… and {change.more_values} more changed values")
    if not change.values:  # a record from an older producer: paths only
        lines += list(change.fields)
        if change.more_fields:
            lines.append(f"… and {change.more_fields} more fields")
    return lines


def summary_line(report: DiffReport) -> str:
    if not report.changed:
        return f"No changes ({report.unchanged} bundles unchanged)."
    counts = [f"{report.count(k)} {k}" for k in SEVERITY if report.count(k)]
    return f"{len(report.bundles)} bundles change: " + ", ".join(counts) + f"; {report.unchanged} unchanged."


def cost_line(report: DiffReport) -> str | None:
    """``Cost change: $/h 3.67 → 7.35 (+3.68)``, over the bundles whose capacity changes."""
    if not any(b.capacity_before != b.capacity_after for b in report.bundles):
        return None
    totals = report.cost_totals()
    if totals is None:
        return "Cost change: unknown (a SKU has no price in the GPU table)."
    before, after = totals
    delta = after - before
    sign = "+" if delta >= 0 else "-"
    cents = Decimal("0.01")
    line = (
        f"Cost change: {price_unit(report.currency)} {before.quantize(cents)} → {after.quantize(cents)}"
        f" ({sign}{abs(delta).quantize(cents)})"
    )
    return line + (f" (prices: {report.price_source})" if report.price_source else "")


# --- text ---------------------------------------------------------------------------------------


def render_text(report: DiffReport) -> str:
    lines: list[str] = []
    marks = {"added": "+", "removed": "-", "changed": "~"}
    for b in report.bundles:
        lines.append(f"{marks[b.status]} {b.bundle} ({b.status}: {', '.join(b.kinds)})")
        for c in b.changes:
            lines.append(f"    {c.kind:<13} {c.resource or 'capacity'}: {c.summary}")
            lines.extend(f"        {line}" for line in change_lines(c))
    lines.append(summary_line(report))
    cost = cost_line(report)
    if cost:
        lines.append(cost)
    return "\n".join(lines) + "\n"


# --- markdown -----------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _fenced(lines: list[str], indent: str) -> list[str]:
    """A ```diff block that no backtick run in the content can close."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{indent}{fence}diff", *(f"{indent}{line}" for line in lines), f"{indent}{fence}"]


def _capacity_cell(b: BundleDiff, currency: str) -> str:
    if b.capacity_before == b.capacity_after and b.capacity_before:
        return "unchanged"
    before = b.capacity_before.describe(currency) if b.capacity_before else "–"
    after = b.capacity_after.describe(currency) if b.capacity_after else "–"
    return f"{before} → {after}"


def _details(b: BundleDiff, with_values: bool) -> list[str]:
    lines = ["", f"<details><summary><code>{b.bundle}</code>: {', '.join(b.kinds)}</summary>", ""]
    for c in b.changes:
        where = f"`{c.resource}`" if c.resource else "capacity"
        lines.append(f"- **{c.kind}** {where}: {_md(c.summary)}")
        body = change_lines(c) if with_values else []
        if body:
            lines += ["", *_fenced(body, "  "), ""]
    if lines[-1]:
        lines.append("")
    lines.append("</details>")
    return lines


def _markdown(report: DiffReport, with_values: bool, max_details: int | None) -> str:
    lines = [COMMENT_MARKER, "### kaito-gen diff", "", summary_line(report)]
    if not report.changed:
        return "\n".join(lines) + "\n"
    lines += ["", "| Workspace | Status | Change kinds | Capacity before → after |", "|---|---|---|---|"]
    for b in report.bundles:
        kinds = ", ".join(f"**{k}**" for k in b.kinds)
        lines.append(f"| `{b.bundle}` | {b.status} | {kinds} | {_md(_capacity_cell(b, report.currency))} |")
    cost = cost_line(report)
    if cost:
        lines += ["", _md(cost)]
    shown = report.bundles if max_details is None else report.bundles[:max_details]
    for b in shown:
        lines += _details(b, with_values)
    if not with_values:
        lines += ["", "_Values left out: the comment would pass GitHub's size limit. Run `kaito-gen diff`._"]
    if len(shown) < len(report.bundles):
        lines += ["", f"_… and {len(report.bundles) - len(shown)} more bundles: run `kaito-gen diff`._"]
    return "\n".join(lines) + "\n"


def render_markdown(report: DiffReport) -> str:
    """The PR comment; values first go, then whole sections, to stay under GitHub's size limit."""
    body = _markdown(report, with_values=True, max_details=None)
    if len(body) <= MAX_COMMENT:
        return body
    body = _markdown(report, with_values=False, max_details=None)
    keep = len(report.bundles)
    while len(body) > MAX_COMMENT and keep > 0:
        keep //= 2
        body = _markdown(report, with_values=False, max_details=keep)
    return body


# --- json ---------------------------------------------------------------------------------------


def render_json(report: DiffReport) -> str:
    delta = report.cost_delta()
    totals = report.cost_totals()
    payload = {
        "changed": report.changed,
        "unchanged": report.unchanged,
        "counts": {k: report.count(k) for k in SEVERITY},
        "currency": report.currency,
        "priceSource": report.price_source,
        "costDeltaPerHour": None if delta is None else str(delta),
        "costPerHour": None if totals is None else {"before": str(totals[0]), "after": str(totals[1])},
        "bundles": [b.to_json(report.currency) for b in report.bundles],
    }
    return json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
__all__ = ["COMMENT_MARKER", "RENDERERS", "render_json", "render_markdown", "render_text"]
