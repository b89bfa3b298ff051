"""Root conftest: only the session-wide manifest-validation fixtures live here.

support.manifests is imported inside the fixtures, so test sessions that never validate
manifests (the runtime suite) neither pay for nor depend on kaito_gen, celpy and the schemas.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support.manifests import ManifestValidator, Provider, ValidatorFactory


@pytest.fixture(scope="session")
def crd_root() -> Path:
    """The CRD folder ($KAITO_GEN_CRD_DIR or ../shared/reference/crds); skips (fails under CI=true)."""
    from support.manifests import locate_crd_root

    return locate_crd_root()


@pytest.fixture(scope="session")
def manifest_validator_factory(crd_root: Path) -> ValidatorFactory:
    """``factory("azure")`` → the cached ManifestValidator of that provider profile."""
    from support.manifests import ManifestValidator

    def factory(provider: Provider) -> ManifestValidator:
        return ManifestValidator.for_provider(provider, crd_root)

    return factory
