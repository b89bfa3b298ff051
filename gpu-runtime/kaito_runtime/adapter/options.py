"""Registry connection and size options shared by `kaito-adapter` and `kaito-data pull-image`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from kaito_runtime.adapter.dockerconfig import Credentials, credentials_for, default_config_path, load_config
from kaito_runtime.adapter.reference import ImageRef
from kaito_runtime.adapter.registry import RegistrySession, open_session

F = TypeVar("F", bound=Callable[..., Any])


_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(text: str) -> int:
    """`1048576`, `500M`, `2Gi`, `10GiB` -> bytes (k/m/g/t decimal, ki/mi/gi/ti binary)."""
    match = _SIZE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (examples: 1048576, 500M, 2Gi)")
    number, unit = int(match.group(1)), str(match.group(2) or "").lower().rstrip("b")
    if unit.endswith("i"):
        return number * int(1024 ** ("kmgt".index(unit[0]) + 1))
    return number * _UNITS[unit]


def log(message: str) -> None:
    click.echo(f"kaito-adapter: {message}", err=True)


def connection_options(func: F) -> F:
    options = [
        click.option(
            "--docker-config",
            type=click.Path(dir_okay=False, path_type=Path),
            multiple=True,
            help="docker config.json with registry credentials; repeatable, the first file with credentials "
            "for the registry wins [default: $DOCKER_CONFIG/config.json, ~/.docker/config.json, else anonymous].",
        ),
        click.option(
            "--plain-http", is_flag=True, help="Talk HTTP instead of HTTPS (implied for loopback registries)."
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="CA bundle for TLS.",
        ),
        click.option(
            "--timeout", default=60.0, show_default=True, type=click.FloatRange(1), help="Per request (s)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def session_for(
    ref: ImageRef, docker_config: tuple[Path, ...], plain_http: bool, ca_file: Path | None, timeout: float
) -> RegistrySession:
    creds: Credentials | None = None
    # A pod may mount several pull secrets (one file each): the first with credentials wins.
    default = default_config_path(dict(os.environ), Path.home())
    paths = list(docker_config) or ([default] if default is not None else [])
    for path in paths:
        creds = credentials_for(load_config(path), ref, path)
        if creds is not None:
            break
    if paths and creds is None:
        log(f"no credentials for {ref.registry} in {', '.join(map(str, paths))}; trying anonymously")
    if plain_http and not ref.is_loopback():
        log(f"WARNING: plain HTTP to {ref.api_host}: credentials and adapter travel unencrypted")
    return open_session(ref, creds, plain_http=plain_http, ca_file=ca_file, timeout_s=timeout, log=log)
