"""Shared constants and helpers of the GitOps tests (imported by name: the test dir is on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import Result

REPO_ROOT = Path(__file__).resolve().parents[3]
SEEDS = REPO_ROOT / "examples" / "workspaces" / "seeds.yaml"

BASE_CONFIG = """\
apiVersion: kaito-gen.io/v1alpha1
kind: Config
sources:
  - "workspaces/**/*.yaml"
output: rendered
"""

Invoke = Callable[..., Result]
