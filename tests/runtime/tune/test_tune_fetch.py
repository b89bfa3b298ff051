"""`kaito-data fetch`: SSRF rules (before DNS, after DNS, on redirects), names, retries, caps, atomicity.

The CLI runs as a real subprocess against a real HTTP server on 127.0.0.1. Loopback is exactly what the
SSRF rules forbid, so those tests pass the test-only `--unsafe-allow-host 127.0.0.1`; the refusal of
127.0.0.1 without it is tested too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from kaito_runtime.adapter.options import parse_size
from kaito_runtime.data import FetchOptions, RefusedError, fetch_all
from kaito_runtime.data.errors import InvalidURLError
from kaito_runtime.data.fetch import file_name_for, plan
from kaito_runtime.data.ssrf import address_refusal, check_url
from tune_support import HTTPServer, body, run_cli

ALLOW = ("--unsafe-allow-host", "127.0.0.1")


def _empty(directory: Path) -> bool:
    return not directory.exists() or list(directory.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/data.parquet",
        "http://LOCALHOST./data.parquet",
        "http://api.localhost/data.parquet",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata.google/x.json",
        "http://instance-data.ec2.internal/latest",
        "http://127.0.0.1/x.csv",
        "http://10.1.2.3/x.csv",
        "http://192.168.1.1/x.csv",
        "http://172.16.0.1/x.csv",
        "http://0.0.0.0/x.csv",
        "http://224.0.0.1/x.csv",
        "http://100.64.0.1/x.csv",
        "http://[::1]/x.csv",
        "http://[fe80::1]/x.csv",
        "http://[fd00::1]/x.csv",
        "http://[::ffff:169.254.169.254]/x.csv",
        "http://[64:ff9b::a9fe:a9fe]/x.csv",
        "http://[2002:7f00:1::]/x.csv",
        "http://[ff02::1]/x.csv",
    ],
)
def test_ssrf_refuses_local_and_metadata_hosts_before_dns(url: str) -> None:
    with pytest.raises(RefusedError):
        check_url(url)


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_ssrf_accepts_public_addresses(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip)) is None


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/x", "http://user:pw@example.com/x"],
)
def test_only_plain_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(InvalidURLError):
        check_url(url)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/data/train.parquet?sig=abc&se=2030#frag", "train.parquet"),
        ("https://example.com/a%20b.jsonl", "a b.jsonl"),
        ("https://example.com/dolly.csv#part", "dolly.csv"),
    ],
)
def test_file_name_comes_from_the_path_without_query_or_fragment(url: str, name: str) -> None:
    assert file_name_for(url) == name


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "https://example.com", "https://example.com/..", "https://example.com/%2e%2e"],
)
def test_a_url_without_a_file_name_is_refused(url: str) -> None:
    with pytest.raises(InvalidURLError):
        file_name_for(url)


def test_two_urls_with_the_same_file_name_are_refused_before_downloading() -> None:
    with pytest.raises(InvalidURLError, match="also the name"):
        plan(["https://a.example.com/x/train.parquet", "https://b.example.com/y/train.parquet?v=2"])


def test_a_public_name_that_resolves_to_a_private_address_is_refused(tmp_path: Path) -> None:
    # The resolver is the one seam of the fetcher: here a "public" name answers with the metadata IP,
    # as a DNS-rebinding attacker would arrange.
    options = FetchOptions(dest=tmp_path / "d", attempts=1, backoff_s=0)
    with pytest.raises(RefusedError, match=r"resolves to 169\.254\.169\.254"):
        fetch_all(
            ["http://data.example.com/train.parquet"],
            options,
            print,
            resolver=lambda h, p: ["169.254.169.254"],
        )
    with pytest.raises(RefusedError, match=r"resolves to 10\.0\.0\.7"):
        fetch_all(
            ["https://data.example.com/train.parquet"],
            options,
            print,
            resolver=lambda h, p: ["93.184.216.34", "10.0.0.7"],  # one bad address spoils the answer
        )
    assert _empty(tmp_path / "d")


@pytest.mark.parametrize(
    ("text", "size"), [("1048576", 1048576), ("500M", 500_000_000), ("2Gi", 2 << 30), ("1KiB", 1024)]
)
def test_size_parsing(text: str, size: int) -> None:
    assert parse_size(text) == size


# ---------------------------------------------------------------- the CLI against a real server


def test_fetch_downloads_each_url_atomically(
    http_server: HTTPServer, tmp_path: Path, env: dict[str, str]
) -> None:
    parquet, jsonl = b"PAR1" + bytes(range(256)) * 40, b'{"text": "hello"}\n' * 100
    http_server.routes["/blob/train.parquet"] = body(parquet)
    http_server.routes["/files/extra.jsonl"] = body(jsonl)
    dest = tmp_path / "data"
    result = run_cli(
        "kaito-data",
        "fetch",
        http_server.url("/blob/train.parquet?sv=2024&sig=secret"),
        http_server.url("/files/extra.jsonl#x"),
        "--dest",
        dest,
        *ALLOW,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["extra.jsonl", "train.parquet"]  # no .part left over
    assert (dest / "train.parquet").read_bytes() == parquet
    assert (dest / "extra.jsonl").read_bytes() == jsonl
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["sha256"] for line in lines] == [
        hashlib.sha256(parquet).hexdigest(),
        hashlib.sha256(jsonl).hexdigest(),
    ]
    assert "SSRF rules disabled for 127.0.0.1" in result.stderr  # the escape hatch is loud


def test_fetch_refuses_loopback_without_the_test_escape_hatch(
    http_server: HTTPServer, tmp_path: Path, env: dict[str, str]
) -> None:
    http_server.routes["/train.parquet"] = body(b"data")
    result = run_cli(
        "kaito-data", "fetch", http_server.url("/train.parquet"), "--dest", tmp_path / "d", env=env
    )
    assert result.returncode == 3
    assert "127.0.0.1 is a loopback address" in result.stderr
    assert http_server.hits == {}  # refused before any request
    assert _empty(tmp_path / "d")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/iam", "169.254.169.254 is a link-local address"),
        ("http://localhost/train.parquet", "host 'localhost' is not allowed"),
        ("http://[::1]:8080/train.parquet", "::1 is a loopback address"),
    ],
)
def test_fetch_cli_refuses_ssrf_urls(url: str, message: str, tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cli("kaito-data", "fetch", url, "--dest", tmp_path / "d", env=env)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "http://169.254.169.254/latest/meta-data/",
            "redirected to http://169.254.169.254/latest/meta-data/",
        ),
        ("http://localhost:1/x.parquet", "host 'localhost' is not allowed"),
    ],
)
def test_redirects_are_checked_again(
    target: str, message: str, http_server: HTTPServer, tmp_path: Path, env: dict[str, str]
) -> None:
    http_server.routes["/train.parquet"] = body(b"", status=302, headers={"Location": target})
    result = run_cli(
        "kaito-data", "fetch", http_server.url("/train.parquet"), "--dest", tmp_path / "d", *ALLOW, env=env
    )
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert http_server.hits == {"/train.parquet": 1}
    assert _empty(tmp_path / "d")


def test_transient_errors_are_retried_with_backoff(
    http_server: HTTPServer, tmp_path: Path, env: dict[str, str]
) -> None:
    calls = {"n": 0}

    def flaky(request: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        body(b"busy", status=503)(request) if calls["n"] < 3 else body(b"finally")(request)

    http_server.routes["/train.csv"] = flaky
    result = run_cli(
        "kaito-data",
        "fetch",
        http_server.url("/train.csv"),
        "--dest",
        tmp_path / "d",
        "--backoff",
        "0.05",
        *ALLOW,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "train.csv").read_bytes() == b"finally"
    assert result.stderr.count("retrying in") == 2
    assert calls["n"] == 3


def test_permanent_http_errors_are_not_retried(
    http_server: HTTPServer, tmp_path: Path, env: dict[str, str]
) -> None:
    result = run_cli(
        "kaito-data", "fetch", http_server.url("/missing.parquet"), "--dest", tmp_path / "d", *ALLOW, env=env
    )
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr
    assert http_server.hits == {"/missing.parquet": 1}


def test_unreachable_url_fails_clearly_after_its_attempts(tmp_path: Path, env: dict[str, str]) -> None:
    from tune_support import free_port

    url = f"http://127.0.0.1:{free_port()}/train.parquet"  # nothing listens there
    result = run_cli(
        "kaito-data",
        "fetch",
        url,
        "--dest",
        tmp_path / "d",
        "--attempts",
        "2",
        "--backoff",
        "0.05",
        *ALLOW,
        env=env,
    )
    assert result.returncode == 1
    assert "Connection refused (gave up after 2 attempts)" in result.stderr
    assert "Traceback" not in result.stderr
    assert _empty(tmp_path / "d")


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "chunked-overflow"])
def test_size_cap_stops_the_download_and_leaves_nothing(
    announce: bool, http_server: HTTPServer, tmp_path: Path, env: dict[str, str]
) -> None:
    data = b"x" * 5000

    def oversized(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        if announce:
            request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)  # without a length, the body ends when the connection closes
        request.close_connection = True

    http_server.routes["/big.parquet"] = oversized
    result = run_cli(
        "kaito-data",
        "fetch",
        http_server.url("/big.parquet"),
        "--dest",
        tmp_path / "d",
        "--max-bytes",
        "1000",
        *ALLOW,
        env=env,
    )
    assert result.returncode == 1
    assert "cap of 1000" in result.stderr
    assert _empty(tmp_path / "d")


def test_an_empty_body_is_a_failure(http_server: HTTPServer, tmp_path: Path, env: dict[str, str]) -> None:
    http_server.routes["/empty.jsonl"] = body(b"")
    result = run_cli(
        "kaito-data", "fetch", http_server.url("/empty.jsonl"), "--dest", tmp_path / "d", *ALLOW, env=env
    )
    assert result.returncode == 1
    assert "empty body" in result.stderr
    assert _empty(tmp_path / "d")
