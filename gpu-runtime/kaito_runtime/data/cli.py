"""`kaito-data`: console script for the tuning Job's data init container.

    kaito-data fetch URL... --dest /mnt/data
    kaito-data pull-image IMAGE --dest /mnt/data [--docker-config FILE]...

stdout gets one JSON line per downloaded file ({"url", "file", "bytes", "sha256"}); progress and errors go
to stderr as `kaito-data: ...` lines. Exit codes: 0 all files downloaded, 1 a download failed, 2 bad
arguments or an unusable URL, 3 a URL refused by the SSRF policy.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kaito_runtime.adapter.options import connection_options, parse_size, session_for
from kaito_runtime.data.errors import FetchError
from kaito_runtime.data.fetch import FetchOptions, FetchResult, fetch_all


def _log(message: str) -> None:
    click.echo(f"kaito-data: {message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Tuning-input tools for kaito-gen's tuning Job."""


@main.command(
    epilog="Exit codes: 0 ok, 1 download failed, 2 bad arguments or URL, 3 refused by the SSRF policy."
)
@click.argument("urls", nargs=-1, required=True)
@click.option(
    "--dest", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write to."
)
@click.option("--max-bytes", default="50Gi", show_default=True, help="Size cap per file (e.g. 500M, 2Gi).")
@click.option("--attempts", default=3, show_default=True, type=click.IntRange(1, 20), help="Tries per URL.")
@click.option(
    "--backoff",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 300),
    help="First retry delay (s); doubles.",
)
@click.option(
    "--timeout", default=120.0, show_default=True, type=click.FloatRange(1), help="Socket idle timeout (s)."
)
@click.option(
    "--unsafe-allow-host",
    "allow_hosts",
    multiple=True,
    metavar="HOST",
    help="TESTS ONLY: exempt this exact host from the SSRF rules (e.g. 127.0.0.1). Never used by kaito-gen.",
)
def fetch(
    *,
    urls: tuple[str, ...],
    dest: Path,
    max_bytes: str,
    attempts: int,
    backoff: float,
    timeout: float,
    allow_hosts: tuple[str, ...],
) -> None:
    """Download each URL into DEST, named after the last segment of its path.

    Only http(s). Local, private, link-local and cloud-metadata hosts are refused, also when a public
    name resolves to them or a redirect points at them. A file appears only once it is complete.
    """
    options = FetchOptions(
        dest=dest,
        max_bytes=parse_size(max_bytes),
        attempts=attempts,
        backoff_s=backoff,
        read_timeout_s=timeout,
        connect_timeout_s=min(30.0, timeout),
        allow_hosts=frozenset(allow_hosts),
    )
    if allow_hosts:
        hosts = ", ".join(sorted(allow_hosts))
        _log(f"WARNING: SSRF rules disabled for {hosts} (--unsafe-allow-host, tests only)")
    try:
        results = fetch_all(urls, options, _log)
    except FetchError as exc:
        _log(f"error: {exc.render()}")
        sys.exit(exc.exit_code)
    except OSError as exc:  # --dest not creatable or writable, disk full
        _log(f"error: {exc}")
        sys.exit(1)
    for result in results:
        click.echo(_result_line(result))
    _log(f"fetched {len(results)} file(s) into {dest}")


def _result_line(result: FetchResult) -> str:
    return json.dumps(
        {"url": result.url, "file": str(result.path), "bytes": result.size, "sha256": result.sha256},
        sort_keys=True,
    )


@main.command("pull-image", epilog="Exit codes as for `kaito-adapter pull`.")
@click.argument("image")
@click.option(
    "--dest", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write to."
)
@connection_options
@click.option("--max-bytes", default="50Gi", show_default=True, help="Cap on the unpacked image size.")
def pull_image(
    *,
    image: str,
    dest: Path,
    docker_config: tuple[Path, ...],
    plain_http: bool,
    ca_file: Path | None,
    timeout: float,
    max_bytes: str,
) -> None:
    """Fetch the files under /data of dataset IMAGE into DEST (Kaito's `input.image`), digests verified."""
    from kaito_runtime.adapter.errors import AdapterError
    from kaito_runtime.adapter.pull import pull_adapter
    from kaito_runtime.adapter.reference import parse_reference

    try:
        ref = parse_reference(image)
        session = session_for(ref, docker_config, plain_http, ca_file, timeout)
        result = pull_adapter(session, dest, parse_size(max_bytes), _log, require_adapter=False)
    except AdapterError as exc:
        _log(f"error: {exc.render()}")
        sys.exit(exc.exit_code)
    click.echo(
        json.dumps({"image": result.image, "digest": result.digest, "files": result.files}, sort_keys=True)
    )
