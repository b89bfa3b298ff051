"""Dataset URLs: Kaito's 7 refusals, then the harder cases (issue 12 item 5), at compile time."""

from __future__ import annotations

import pytest
from kaito_gen.compiler.rules import dataset_url_problem

KAITO_REFUSED = [
    "ftp://example.com/data.parquet",
    "file:///etc/passwd",
    "http://localhost/data.parquet",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://127.0.0.1/data.parquet",
    "http://10.1.2.3/data.parquet",
    "http://169.254.169.254/latest/meta-data/",
]

REFUSED = [
    ("http://%31%32%37.0.0.1/", "loopback"),
    ("http://%6c%6f%63%61%6c%68%6f%73%74/", "local machine"),
    ("http://100.64.0.1/", "shared address space"),
    ("http://100.127.255.254/", "shared address space"),
    ("http://100.100.100.200/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://169.254.170.2/v2/credentials", "metadata"),
    ("http://instance-data/", "metadata"),
    ("http://instance-data.ec2.internal/", "metadata"),
    ("http://metadata.google.internal./", "metadata"),
    ("http://metadata/", "metadata"),
    ("http://kubernetes.default.svc/", "internal"),
    ("http://minio.data.svc.cluster.local:9000/x.parquet", "internal"),
    ("http://ip-10-0-0-1.ec2.internal/", "internal"),
    ("http://fileserver/x.parquet", "single-label"),
    ("http://169.254.169.254.nip.io/", "embedded"),
    ("http://10.0.0.1.xip.io/", "embedded"),
    ("http://app.127-0-0-1.sslip.io/", "embedded"),
    ("http://7f000001.nip.io/", "embedded"),
    ("http://data.localtest.me/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "metadata"),
    ("http://[2002:c0a8:0101::]/", "private"),
    ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://192.0.2.1/", "private"),
    ("http://198.18.0.1/", "private"),
    ("http://user:pw@example.com/x", "credentials"),
    ("http://example.com%40127.0.0.1/x", "credentials"),
    ("http://example.com:99999/x", "not a valid URL"),
    ("http:///x.parquet", "no host"),
]

ALLOWED = [
    "https://huggingface.co/datasets/x/resolve/main/train.parquet",
    "https://example.com/data.parquet",
    "http://8.8.8.8/data.parquet",
    "https://8.8.8.8.nip.io/data.parquet",
    "https://[2606:4700::1111]/data.parquet",
    "https://storage.googleapis.com/bucket/x.jsonl",
]


@pytest.mark.parametrize("url", KAITO_REFUSED)
def test_kaitos_own_refusals_hold(url: str) -> None:
    assert dataset_url_problem(url)


@pytest.mark.parametrize(("url", "fragment"), REFUSED)
def test_harder_cases_are_refused(url: str, fragment: str) -> None:
    problem = dataset_url_problem(url)
    assert fragment in problem, problem


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_pass(url: str) -> None:
    assert dataset_url_problem(url) == ""
