"""Small, reusable field checks: Kubernetes names, image references, dataset URLs (compiler/urls.py)."""

from __future__ import annotations

import re

from kaito_gen.compiler.urls import dataset_url_problem

__all__ = ["dataset_url_problem"]  # kept here for callers; the URL rules live in compiler/urls.py

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# distribution/reference grammar, simplified: [host[:port]/]path[:tag][@algo:hex]
IMAGE_REF = re.compile(
    r"^(?:(?P<host>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
# Kaito parses strength with strconv.ParseFloat and refuses values outside [0, 1].
# Decimal floats as Go writes them; hex floats, inf and NaN are refused here too.
STRENGTH = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def strength_problem(value: str) -> str:
    """Why ``value`` is not an adapter strength Kaito accepts ("" when it is)."""
    if not STRENGTH.match(value.replace("_", "x")):
        return f'strength {value!r} must be a number written as a string, e.g. "0.5"'
    number = float(value)
    if not 0.0 <= number <= 1.0:
        return f"strength {value!r} must be between 0 and 1"
    return ""


# Reserved selector keys Kaito strips from user matchLabels (KAITO.md §1.6).
RESERVED_SELECTOR_KEYS = frozenset(
    {
        "kaito.sh/workspace",
        "kaito.sh/ragengine",
        "kaito.sh/workspacenamespace",
        "kaito.sh/ragenginenamespace",
        "karpenter.kaito.sh/workspace-name",
        "karpenter.kaito.sh/workspace-namespace",
        "karpenter.kaito.sh/inferenceset",
        "karpenter.kaito.sh/inferenceset-namespace",
    }
)


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and DNS1123_LABEL.match(name) is not None


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and DNS1123_SUBDOMAIN.match(name) is not None


def label_key_problem(key: str) -> str:
    """Why ``key`` is not a valid label key, or ``""``."""
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns_subdomain(prefix):
        return f"label key prefix {prefix!r} is not a DNS subdomain"
    if not LABEL_NAME.match(name):
        return f"label key {key!r} must be ≤63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
    return ""


def label_value_problem(value: str) -> str:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return f"label value {value!r} must be ≤63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
    return ""


def is_image_ref(ref: str) -> bool:
    return len(ref) <= 512 and IMAGE_REF.match(ref) is not None


def image_ref_problem(ref: str) -> tuple[str, bool]:
    """(problem, fatal). Registries need lowercase repositories and hostnames without
    '_': such a reference is reported, but only as a warning, because it is usually a
    placeholder (the seeds' ``ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1``)."""
    if is_image_ref(ref):
        return "", False
    host, sep, rest = ref.partition("/")
    relaxed = (
        (host.replace("_", "-") + sep + rest.lower()) if sep and ("." in host or ":" in host) else ref.lower()
    )
    if is_image_ref(relaxed):
        return (
            f"{ref!r} is not a reference a registry accepts (uppercase or '_' in it); is it a placeholder?",
            False,
        )
    return f"{ref!r} is not a valid image reference", True
