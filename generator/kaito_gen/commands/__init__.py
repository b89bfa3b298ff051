"""The commands, each thin over the compiler stages; registered on the click group in kaito_gen.cli."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add every command to GROUP (idempotent: add_command replaces by name)."""
    from kaito_gen.commands.diff import diff
    from kaito_gen.commands.explain import explain
    from kaito_gen.commands.presets import presets
    from kaito_gen.commands.render import render
    from kaito_gen.commands.schema import schema
    from kaito_gen.commands.status import status
    from kaito_gen.commands.validate import validate

    for command in (render, validate, explain, diff, presets, schema, status):
        group.add_command(command)
