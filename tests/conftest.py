"""Root conftest: only the session-wide manifest-validation fixtures live here."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.manifests import ManifestValidator, Provider, ValidatorFactory, locate_crd_root


@pytest.fixture(scope="session")
def crd_root() -> Path:
    """The CRD folder ($KAITO_GEN_CRD_DIR or ../shared/reference/crds); skips (fails under CI=true)."""
    return locate_crd_root()


@pytest.fixture(scope="session")
def manifest_validator_factory(crd_root: Path) -> ValidatorFactory:
    """``factory("azure")`` → the cached ManifestValidator of that provider profile."""

    def factory(provider: Provider) -> ManifestValidator:
        return ManifestValidator.for_provider(provider, crd_root)

    return factory
