"""`kaito-adapter push|pull`: LoRA adapters as Kaito adapter images (OCI image form) in any OCI registry.

    kaito-adapter push /mnt/results example.com/adapters/phi3:v1 --docker-config /root/.docker/config.json
    kaito-adapter pull example.com/adapters/phi3:v1 /mnt/adapter/phi3 --docker-config /root/.docker/cfg.json

stdout gets one JSON line describing the result; progress and errors go to stderr as `kaito-adapter: ...`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import requests

from kaito_runtime.adapter.errors import AdapterError, UsageError
from kaito_runtime.adapter.layout import check_adapter_dir
from kaito_runtime.adapter.options import connection_options, log, parse_size, session_for
from kaito_runtime.adapter.pull import pull_adapter
from kaito_runtime.adapter.push import push_adapter
from kaito_runtime.adapter.reference import parse_reference

EXIT_CODES = (
    "Exit codes: 0 ok, 1 other failure, 2 bad arguments, 3 not a complete adapter, 4 registry unusable "
    "(unreachable, TLS), 5 authentication, 6 image or tag not found, 7 digest mismatch."
)


_log = log


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """LoRA adapters as Kaito adapter images (one tar+gzip layer with data/adapter_*)."""


@main.command(epilog=EXIT_CODES)
@click.argument("directory", type=click.Path(path_type=Path))
@click.argument("image")
@connection_options
@click.option(
    "--base-model", help="Annotate the manifest with sh.kaito.model.name [default: from adapter_config]."
)
@click.option(
    "--require-sentinel/--no-require-sentinel",
    default=True,
    show_default=True,
    help="Refuse a directory without fine_tuning_completed.txt (the finished-training marker).",
)
def push(
    *,
    directory: Path,
    image: str,
    docker_config: tuple[Path, ...],
    plain_http: bool,
    ca_file: Path | None,
    timeout: float,
    base_model: str | None,
    require_sentinel: bool,
) -> None:
    """Publish the adapter in DIRECTORY as IMAGE (host/repository:tag)."""

    def run() -> dict[str, Any]:
        adapter = check_adapter_dir(directory, require_sentinel=require_sentinel)
        ref = parse_reference(image)
        if ref.digest:
            raise UsageError(f"cannot push to a digest reference {image!r}", "push to a tag")
        session = session_for(ref, docker_config, plain_http, ca_file, timeout)
        result = push_adapter(adapter, session, base_model or adapter.base_model, _log)
        _log(f"pushed {result.image}@{result.digest}")
        return {
            "image": result.image,
            "digest": result.digest,
            "layer": result.layer_digest,
            "bytes": result.size,
        }

    _run(run)


@main.command(epilog=EXIT_CODES)
@click.argument("image")
@click.argument("directory", type=click.Path(path_type=Path))
@connection_options
@click.option("--max-bytes", default="16Gi", show_default=True, help="Cap on the unpacked image size.")
def pull(
    *,
    image: str,
    directory: Path,
    docker_config: tuple[Path, ...],
    plain_http: bool,
    ca_file: Path | None,
    timeout: float,
    max_bytes: str,
) -> None:
    """Fetch adapter IMAGE into DIRECTORY (replaced atomically; all digests verified)."""

    def run() -> dict[str, Any]:
        ref = parse_reference(image)
        limit = parse_size(max_bytes)
        session = session_for(ref, docker_config, plain_http, ca_file, timeout)
        result = pull_adapter(session, directory, limit, _log)
        return {
            "image": result.image,
            "digest": result.digest,
            "dir": str(result.path),
            "files": result.files,
            "base_model": result.base_model,
        }

    _run(run)


def _run(action: Callable[[], dict[str, Any]]) -> None:
    try:
        result = action()
    except AdapterError as exc:
        _log(f"error: {exc.render()}")
        sys.exit(exc.exit_code)
    except requests.RequestException as exc:  # a transfer that broke after the probe succeeded
        _log(f"error: registry request failed: {exc}")
        sys.exit(4)
    except (OSError, ValueError) as exc:  # local I/O, or oras giving up on authentication mid-transfer
        _log(f"error: {exc}")
        sys.exit(1)
    click.echo(json.dumps(result, sort_keys=True))
