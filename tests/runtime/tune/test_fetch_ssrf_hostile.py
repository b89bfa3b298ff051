"""kaito-data fetch past Kaito's rules (issue 12 item 5): decoded hosts, metadata and internal names,
wildcard-DNS names, and the resolve-time check on every redirect, against a real server on 127.0.0.1.

The resolver is the fetcher's injected seam (no network, no patched socket): it maps names the way a
hostile DNS zone would, to 127.0.0.1 where the test server listens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kaito_runtime.data import FetchOptions, RefusedError, fetch_all
from kaito_runtime.data.errors import InvalidURLError
from kaito_runtime.data.ssrf import check_url
from tune_support import HTTPServer, body


@pytest.mark.parametrize(
    "url",
    [
        "http://%31%32%37.0.0.1/x.csv",
        "http://%6c%6f%63%61%6c%68%6f%73%74/x.csv",
        "http://100.100.100.200/x.csv",
        "http://[fd00:ec2::254]/x.csv",
        "http://instance-data/x.csv",
        "http://metadata/x.csv",
        "http://kubernetes.default.svc/x.csv",
        "http://minio.data.svc.cluster.local/x.csv",
        "http://ip-10-0-0-1.ec2.internal/x.csv",
        "http://fileserver/x.csv",
        "http://169.254.169.254.nip.io/x.csv",
        "http://10.0.0.1.xip.io/x.csv",
        "http://app.127-0-0-1.sslip.io/x.csv",
        "http://7f000001.nip.io/x.csv",
        "http://data.localtest.me/x.csv",
    ],
)
def test_hostile_hosts_are_refused_before_dns(url: str) -> None:
    with pytest.raises(RefusedError):
        check_url(url)


def test_credentials_hidden_in_an_encoded_host_are_refused() -> None:
    with pytest.raises(InvalidURLError):
        check_url("http://example.com%40127.0.0.1/x.csv")


@pytest.mark.parametrize("url", ["https://8.8.8.8.nip.io/x.csv", "https://huggingface.co/d/x.csv"])
def test_public_hosts_pass_before_dns(url: str) -> None:
    assert check_url(url).host


def _resolver(names: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        return names[host]

    return resolve


def test_every_redirect_is_resolved_and_checked(http_server: HTTPServer, tmp_path: Path) -> None:
    port = http_server.url("/").rsplit(":", 1)[1].split("/")[0]
    # Hop 1 is allowed (the test server); hop 2 names a host that *resolves* to 127.0.0.1.
    http_server.routes["/train.parquet"] = body(
        b"", status=302, headers={"Location": f"http://files.example.com:{port}/secret.parquet"}
    )
    http_server.routes["/secret.parquet"] = body(b"internal data")
    names = {"127.0.0.1": ["127.0.0.1"], "files.example.com": ["127.0.0.1"]}
    options = FetchOptions(dest=tmp_path / "d", attempts=1, backoff_s=0, allow_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(RefusedError) as refused:
        fetch_all([http_server.url("/train.parquet")], options, print, resolver=_resolver(names))
    assert refused.value.message.startswith(f"redirected to http://files.example.com:{port}/secret.parquet")
    assert "'files.example.com' resolves to 127.0.0.1, which is a loopback address" in refused.value.message
    assert http_server.hits == {"/train.parquet": 1}
    assert not (tmp_path / "d" / "train.parquet").exists()


def test_a_redirect_to_an_allowed_name_is_followed(http_server: HTTPServer, tmp_path: Path) -> None:
    port = http_server.url("/").rsplit(":", 1)[1].split("/")[0]
    http_server.routes["/train.parquet"] = body(
        b"", status=302, headers={"Location": f"http://files.example.com:{port}/real.parquet"}
    )
    http_server.routes["/real.parquet"] = body(b"rows")
    names = {"127.0.0.1": ["127.0.0.1"], "files.example.com": ["127.0.0.1"]}
    options = FetchOptions(
        dest=tmp_path / "d",
        attempts=1,
        backoff_s=0,
        allow_hosts=frozenset({"127.0.0.1", "files.example.com"}),
    )
    (result,) = fetch_all([http_server.url("/train.parquet")], options, print, resolver=_resolver(names))
    assert result.path.read_bytes() == b"rows"
    assert http_server.hits == {"/train.parquet": 1, "/real.parquet": 1}


def test_a_redirect_to_a_wildcard_dns_name_is_refused_before_connecting(
    http_server: HTTPServer, tmp_path: Path
) -> None:
    http_server.routes["/train.parquet"] = body(
        b"", status=302, headers={"Location": "http://169.254.169.254.nip.io/latest/meta-data"}
    )
    options = FetchOptions(dest=tmp_path / "d", attempts=1, backoff_s=0, allow_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(RefusedError, match=r"embeds 169\.254\.169\.254"):
        fetch_all(
            [http_server.url("/train.parquet")],
            options,
            print,
            resolver=_resolver({"127.0.0.1": ["127.0.0.1"]}),
        )
